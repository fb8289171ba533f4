"""An application spec: what a program (or the `actorsrc` command) needs to run a system.

    shop = App(aggregates=[order, payment, shipment], handlers=[orders_by_customer, fulfilment],
               db="shop.db", read_db="shop-read.db")
    async with shop.run() as runtime: ...

The command line finds it by import path: ``actorsrc projections --app examples.shop.app:shop list``.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actorsrc.domain import Aggregate
from actorsrc.errors import ConfigurationError
from actorsrc.projection import Handler
from actorsrc.readmodel.sqlite import SQLiteReadModel
from actorsrc.runtime.runtime import Runtime
from actorsrc.runtime.settings import ReadSettings, WriteSettings
from actorsrc.runtime.store_health import StoreBreakerPolicy
from actorsrc.runtime.supervision import SupervisorPolicy
from actorsrc.store.sqlite import SQLiteEventStore


@dataclass(frozen=True, slots=True)
class App:
    aggregates: Sequence[Aggregate[Any, Any, Any]]
    handlers: Sequence[Handler] = ()
    db: str = "actorsrc.db"
    read_db: str | None = None  # default: next to `db`, with "-read" before the suffix
    # The runtime's settings (see `Runtime`), passed as they are.
    write: WriteSettings = field(default_factory=WriteSettings)
    read: ReadSettings = field(default_factory=ReadSettings)
    supervisor: SupervisorPolicy = field(default_factory=SupervisorPolicy)
    store_breaker: StoreBreakerPolicy = field(default_factory=StoreBreakerPolicy)

    def read_db_for(self, db: str) -> str:
        if self.read_db is not None and db == self.db:
            return self.read_db
        path = Path(db)
        return str(path.with_name(f"{path.stem}-read{path.suffix or '.db'}"))

    @asynccontextmanager
    async def run(self, db: str | None = None, read_db: str | None = None) -> AsyncIterator[Runtime]:
        """Open the store and read model and run the runtime over them."""
        events_path = db or self.db
        async with (
            SQLiteEventStore.open(events_path) as store,
            SQLiteReadModel.open(read_db or self.read_db_for(events_path)) as read_model,
            Runtime(
                store,
                self.aggregates,
                handlers=self.handlers,
                read_model=read_model,
                write=self.write,
                read=self.read,
                supervisor=self.supervisor,
                store_breaker=self.store_breaker,
            ) as runtime,
        ):
            yield runtime


def load_app(spec: str) -> App:
    """The `App` named by ``package.module:attribute``."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"--app must look like package.module:attribute, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot import {module_name!r} for --app: {exc} (a module of your own in the current directory "
            "needs PYTHONPATH=.)"
        ) from exc
    if not hasattr(module, attribute):
        raise ConfigurationError(f"module {module_name!r} has no attribute {attribute!r} for --app")
    app = getattr(module, attribute)
    if not isinstance(app, App):
        raise ConfigurationError(f"{spec!r} is {app!r}, not an actorsrc App")
    return app
