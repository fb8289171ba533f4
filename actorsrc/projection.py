"""Read-side handlers as values: projections into SQL read models, and process managers (sagas).

Like aggregates, they are plain values registered on the runtime; the dispatcher feeds each one the
global log from its own checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from actorsrc.codec import EventCodec, Upcaster
from actorsrc.domain import Aggregate
from actorsrc.errors import ConfigurationError
from actorsrc.messages import Metadata, RecordedEvent

E = TypeVar("E")
S = TypeVar("S")

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, slots=True)
class EventEnvelope(Generic[E]):
    """A decoded event with where and when it was recorded."""

    event: E
    type: str
    stream_id: str
    version: int
    position: int
    recorded_at: datetime
    metadata: Metadata


def envelope_of(codec: EventCodec, record: RecordedEvent) -> EventEnvelope[Any]:
    """Decode a stored row (renamed and upcast as needed) into an envelope."""
    return EventEnvelope(
        codec.decode_record(record),
        codec.current_name(record.type),
        record.stream_id,
        record.version,
        record.position,
        record.recorded_at,
        record.metadata,
    )


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """What a handler does when its own code keeps failing on an event.

    It retries `retries` times with exponential backoff from `backoff` seconds (capped at
    `max_backoff`), then either parks the event in the dead-letter table and moves on (`"park"`),
    or stops the handler where it is (`"stop"`) until someone fixes it and restarts it.

    A batch whose handling runs longer than `timeout` seconds (None: no limit) counts as a failure
    (`HandlerTimeoutError`): it is rolled back and retried event by event under this policy.

    The policy is for the handler's own failures: its code raising, a batch timing out, an event that
    does not decode. Failures of the read model or the event store under it (a full disk, a lock, a
    lost connection) are retried with backoff until they clear; they never park or skip an event.
    """

    retries: int = 3
    backoff: float = 0.05
    max_backoff: float = 2.0
    then: Literal["park", "stop"] = "park"
    timeout: float | None = 30.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_backoff < self.backoff:
            raise ConfigurationError(f"invalid failure policy {self!r}")
        if self.then not in ("park", "stop"):
            raise ConfigurationError(f"failure policy `then` must be 'park' or 'stop', got {self.then!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigurationError(
                f"failure policy `timeout` must be a number of seconds > 0 or None, got {self.timeout!r}"
            )

    def delay(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))


def _event_codec(
    name: str, events: Mapping[str, type[Any]] | None, aggregates: Iterable[Aggregate[Any, Any, Any]]
) -> EventCodec:
    """A codec for the handler's event types, with the aggregates' schema versions, upcasters and renames
    (types given directly in `events` are read at schema version 1)."""
    merged: dict[str, type[Any]] = {}
    versions: dict[str, int] = {}
    upcasters: dict[tuple[str, int], Upcaster] = {}
    renamed: dict[str, str] = {}
    for aggregate in aggregates:
        merged.update(aggregate.events)
        versions.update(aggregate.schema_versions)
        upcasters.update(aggregate.upcasters)
        renamed.update(aggregate.renamed_events)
    merged.update(events or {})
    if not merged:
        raise ConfigurationError(f"handler {name!r} subscribes to no event types; give `events` or `aggregates`")
    return EventCodec(merged, versions, object, upcasters, renamed)


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > 128:
        raise ConfigurationError(
            f"{kind} name {name!r} must start with a letter and hold only letters, digits, '_', '.', '-'"
        )


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
        _check_name("projection", self.name)
        if self.batch_size < 1:
            raise ConfigurationError(f"projection {self.name!r}: batch_size must be >= 1")

    def event_codec(self) -> EventCodec:
        return _event_codec(self.name, self.events, self.aggregates)


@dataclass(frozen=True, slots=True)
class Send:
    """A command a process manager sends to an aggregate instance."""

    aggregate: Aggregate[Any, Any, Any]
    aggregate_id: str
    command: Any


@dataclass(frozen=True, slots=True)
class ProcessManager(Generic[S]):
    """Reacts to events by sending commands (a saga), with durable state per instance.

    `key(envelope)` names the instance an event belongs to (an order id, say), or None to ignore the
    event. `react(state, envelope)` returns the instance's next state and the commands to send. Each
    command carries a deterministic id made of the manager's name, the event's id and the command's
    index, so a retried or replayed event never performs a command twice. A command the target
    rejects with a `DomainError` is logged and counts as handled (model such outcomes as events); the
    manager remembers it, so a replay does not send it again, where it might now be accepted.
    """

    name: str
    key: Callable[[EventEnvelope[Any]], str | None]
    initial: S
    react: Callable[[S, EventEnvelope[Any]], tuple[S, Sequence[Send]]]
    events: Mapping[str, type[Any]] | None = None
    aggregates: Sequence[Aggregate[Any, Any, Any]] = ()
    state_type: type[Any] | None = None
    failure: FailurePolicy = field(default_factory=FailurePolicy)
    batch_size: int = 200

    def __post_init__(self) -> None:
        _check_name("process manager", self.name)
        if self.batch_size < 1:
            raise ConfigurationError(f"process manager {self.name!r}: batch_size must be >= 1")

    def event_codec(self) -> EventCodec:
        return _event_codec(self.name, self.events, self.aggregates)


Handler = Projection | ProcessManager[Any]
