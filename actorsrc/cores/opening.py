"""`Runtime.for_cores`: claim a part, open its store, and run a runtime on it; release it all on exit."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from actorsrc.cores.claim import claim_part
from actorsrc.cores.layout import check_layout
from actorsrc.cores.settings import Cores
from actorsrc.domain import Aggregate
from actorsrc.errors import ConfigurationError
from actorsrc.store.base import EventStore

R = TypeVar("R")

PART_VARIABLE = "ACTORSRC_CORES_PART"
"""The part a process tries first (set by `actorsrc.cores.run` for its children); any free one otherwise."""


@asynccontextmanager
async def open_runtime(
    runtime_class: Callable[..., AbstractAsyncContextManager[R]],
    cores: Cores,
    aggregates: Iterable[Aggregate[Any, Any, Any]],
    *,
    store: EventStore | None = None,
    **options: Any,
) -> AsyncIterator[R]:
    """`runtime_class` (`Runtime`, passed in: the runtime imports this module) on a claimed part of `cores`."""
    from actorsrc.store.sqlite import SQLiteEventStore

    if not isinstance(cores, Cores):
        raise ConfigurationError(f"Runtime.for_cores takes a Cores(directory, count), got {cores!r}")
    if "cores" in options or "cluster" in options:
        raise ConfigurationError("Runtime.for_cores sets cores= itself and runs without cluster=")
    check_layout(cores)
    claim = claim_part(cores, prefer=_preferred())
    claim.shared_store = store is not None
    try:
        if store is not None:
            async with runtime_class(store, aggregates, cores=claim, **options) as runtime:
                yield runtime
            return
        async with (
            SQLiteEventStore.open(cores.database_path(claim.index)) as part_store,
            runtime_class(part_store, aggregates, cores=claim, **options) as runtime,
        ):
            yield runtime
    finally:
        claim.release()  # last: nobody may take the part while its store is still open here


def _preferred() -> int | None:
    value = os.environ.get(PART_VARIABLE, "")
    return int(value) if value.isdigit() else None
