"""`Projection`: builds a read model from events, the same definition on every read model."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from actorsrc.codec import EventCodec
from actorsrc.domain import Aggregate
from actorsrc.errors import ConfigurationError
from actorsrc.projection.envelope import EventEnvelope
from actorsrc.projection.failure import FailurePolicy
from actorsrc.projection.handler_codec import check_handler_name, handler_codec


def _nothing(db: Any) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Projection:
    """Builds an SQL read model from events.

    `handle(db, envelope)` runs inside the transaction that also moves the projection's checkpoint,
    so each event's effect lands exactly once. `setup(db)` creates the tables (idempotently); `reset(db)`
    drops them before a rebuild. Events of types outside `events` (and the `aggregates`' event types)
    are skipped.

    Written as plain functions over ``db.execute(sql, params)`` / ``db.executemany`` /
    ``db.executescript`` with ``?`` placeholders (the sqlite3 subset; `actorsrc.readmodel.portable`), a
    projection runs unchanged on every read model: on `SQLiteReadModel` (a file or ":memory:") `db` is
    the `sqlite3.Connection` itself, on the read model's thread; on `PostgresReadModel` it is a
    `PortableConnection` over the transaction, the code in a worker thread. For PostgreSQL only, the
    three may instead be `async def` over the asyncpg connection (``$1`` placeholders, one hop fewer
    per statement); SQLite refuses those.

    A batch that runs longer than `failure.timeout` is rolled back and counts as a failure: the statement
    it is in is interrupted; Python code between statements cannot be stopped: on SQLite a handler stuck
    there stops the projection and holds the read model's connection until it returns, on PostgreSQL its
    later statements are refused.
    """

    name: str
    handle: Callable[[Any, EventEnvelope[Any]], Any]  # (db, envelope) -> None, or async (asyncpg only)
    setup: Callable[[Any], Any] = _nothing
    reset: Callable[[Any], Any] = _nothing
    events: Mapping[str, type[Any]] | None = None
    aggregates: Sequence[Aggregate[Any, Any, Any]] = ()
    failure: FailurePolicy = field(default_factory=FailurePolicy)
    batch_size: int = 1000

    def __post_init__(self) -> None:
        check_handler_name("projection", self.name)
        if self.batch_size < 1:
            raise ConfigurationError(f"projection {self.name!r}: batch_size must be >= 1")

    def event_codec(self) -> EventCodec:
        return handler_codec(self.name, self.events, self.aggregates)
