"""The event store contract every adapter fulfils (SQLite now, PostgreSQL later).

`actorsrc.testing.store_contract` holds the suite that proves an adapter does.
"""

from __future__ import annotations

import asyncio
import enum
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeGuard, TypeVar, runtime_checkable

from actorsrc.errors import InvalidStreamIdError, LimitExceededError
from actorsrc.hashing import SLICES
from actorsrc.records import AppendResult, Metadata, NewEvent, RecordedEvent, Snapshot
from actorsrc.sql.encoding import MAX_SQL_INT
from actorsrc.store.limits import DEFAULT_LIMITS, StoreLimits, check_append_size, over_limits

MAX_STREAM_ID_LENGTH = 512
MAX_METADATA_ID_LENGTH = 512
"""Event type names and metadata ids (event, command, causation, correlation): the longest text accepted."""


class StreamState(enum.Enum):
    """Expectations about a stream that are not a version number."""

    NO_STREAM = "no stream"
    """The stream must not exist yet (version 0)."""
    ANY = "any version"
    """Append whatever the stream's version; no concurrency check."""

    def __str__(self) -> str:
        return self.value


NO_STREAM = StreamState.NO_STREAM
ANY = StreamState.ANY

ExpectedVersion = int | StreamState
"""A version number (0 means no stream yet), `NO_STREAM` or `ANY`."""

Fence = tuple[int, int]
"""(shard, token) carried by an append: refused if the store's fence for that shard is above the token."""


def validate_stream_id(stream_id: object) -> str:
    """Return `stream_id` if it is a usable stream id, else raise `InvalidStreamIdError`."""
    if not isinstance(stream_id, str):
        raise InvalidStreamIdError(f"stream id must be a str, got {type(stream_id).__name__}: {stream_id!r}")
    if not stream_id or stream_id.isspace():
        raise InvalidStreamIdError(f"stream id must not be empty or blank, got {stream_id!r}")
    if len(stream_id) > MAX_STREAM_ID_LENGTH:
        raise InvalidStreamIdError(
            f"stream id is {len(stream_id)} characters, over the limit of {MAX_STREAM_ID_LENGTH}: {stream_id[:40]!r}..."
        )
    if "\x00" in stream_id or not (stream_id.isascii() or is_utf8_text(stream_id)):
        raise InvalidStreamIdError(f"stream id must be valid UTF-8 text without NUL characters: {stream_id!r}")
    return stream_id


def is_utf8_text(text: str) -> bool:
    """Whether `text` encodes as UTF-8 (a lone surrogate does not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_SQL_INT:
        raise ValueError(f"{name} must be an int from {minimum} to 2**63-1, got {value!r}")
    return value


# C0 and C1 control characters, NUL included: PostgreSQL cannot store NUL in text, and a tab or newline
# in an id or type name is a bug upstream, not data. Both stores refuse them the same way.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")
_METADATA_IDS = ("command_id", "causation_id", "correlation_id", "command_digest")


def check_slices(slices: object) -> tuple[int, int] | None:
    """`slices` of a `read_all`: None (every slice) or (low, high) with 0 <= low < high <= SLICES."""
    if slices is None:
        return None
    if (
        type(slices) is not tuple
        or len(slices) != 2
        or not all(type(bound) is int for bound in slices)
        or not 0 <= slices[0] < slices[1] <= SLICES
    ):
        raise ValueError(f"slices must be a tuple (low, high) of ints with 0 <= low < high <= {SLICES}, got {slices!r}")
    return slices


def _check_fence_part(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}: {value!r}")
    if not 0 <= value <= MAX_SQL_INT:
        raise ValueError(f"{what} must be from 0 to 2**63-1, got {value!r}")
    return value


def check_fence_token(shard: object, token: object) -> Fence:
    """A shard and its fencing token: non-negative ints (`TypeError` / `ValueError` naming the value)."""
    return _check_fence_part("shard", shard), _check_fence_part("fencing token", token)


def check_fence(fence: object) -> Fence:
    """The `fence` of an append: a (shard, token) tuple of non-negative ints."""
    if type(fence) is not tuple or len(fence) != 2:
        raise TypeError(f"fence must be a tuple (shard, token), got {fence!r}")
    return check_fence_token(fence[0], fence[1])


def _check_text(stream_id: str, what: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if _plain(value):  # the common case, cheaply
        return
    if not isinstance(value, str) or not value or len(value) > MAX_METADATA_ID_LENGTH or not is_utf8_text(value):
        raise TypeError(
            f"append to {stream_id!r}: {what} must be a non-empty UTF-8 str of at most {MAX_METADATA_ID_LENGTH}"
            f" characters, got {value!r}"
        )
    if CONTROL_CHARACTERS.search(value):
        raise ValueError(
            f"append to {stream_id!r}: {what} must not contain control characters (NUL, tab, newline, ...),"
            f" got {value!r}"
        )


def validate_expected_version(expected: object) -> ExpectedVersion:
    if isinstance(expected, StreamState):
        return expected
    if isinstance(expected, bool) or not isinstance(expected, int) or not 0 <= expected <= MAX_SQL_INT:
        raise ValueError(f"expected version must be an int >= 0, NO_STREAM or ANY, got {expected!r}")
    return expected


def _plain(text: object) -> bool:
    """A short printable ASCII str: what ids and type names nearly always are (isprintable() on ASCII
    refuses exactly the control characters)."""
    return type(text) is str and 0 < len(text) <= MAX_METADATA_ID_LENGTH and text.isascii() and text.isprintable()


_known_types: set[str] = set()  # type names already found plain: an app has a few dozen, checked once each


def _well_formed(event: object) -> TypeGuard[NewEvent]:
    """The common case in one pass: plain ids and type name. The runtime passes the same str object as
    command, causation and correlation id (or event and correlation id), so each is scanned once."""
    if type(event) is not NewEvent or type(event.data) is not bytes or type(event.schema_version) is not int:
        return False
    metadata = event.metadata
    type_name = event.type
    if type(metadata) is not Metadata or type(type_name) is not str or not 1 <= event.schema_version < 2**31:
        return False
    if type_name not in _known_types:
        if not _plain(type_name):
            return False
        if len(_known_types) < 10_000:
            _known_types.add(type_name)
    event_id = metadata.event_id
    command_id = metadata.command_id
    causation_id = metadata.causation_id
    correlation_id = metadata.correlation_id
    return (
        _plain(event_id)
        and (command_id is None or _plain(command_id))
        and (causation_id is None or causation_id is command_id or _plain(causation_id))
        and (
            correlation_id is None
            or correlation_id is command_id
            or correlation_id is event_id
            or _plain(correlation_id)
        )
        and (metadata.command_digest is None or _plain(metadata.command_digest))
    )


def _checked_event(stream_id: str, event: Any) -> NewEvent:
    """The slow path for an event that is not in the plain common form: say what is wrong, or accept it."""
    if not isinstance(event, NewEvent):
        raise TypeError(f"append to {stream_id!r}: {event!r} is not a NewEvent")
    _check_text(stream_id, "event type", event.type, optional=False)
    if not isinstance(event.data, bytes):
        raise TypeError(f"append to {stream_id!r}: {event.type} data must be bytes, got {type(event.data).__name__}")
    version = event.schema_version
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 2**31:
        raise TypeError(f"append to {stream_id!r}: {event.type} schema_version must be an int >= 1, got {version!r}")
    metadata = event.metadata
    if not isinstance(metadata, Metadata):
        raise TypeError(f"append to {stream_id!r}: {event.type} metadata must be Metadata, got {metadata!r}")
    _check_text(stream_id, "metadata.event_id", metadata.event_id, optional=False)
    for field_name in _METADATA_IDS:
        _check_text(stream_id, f"metadata.{field_name}", getattr(metadata, field_name), optional=True)
    return event


def validate_new_events(stream_id: str, events: object, limits: StoreLimits = DEFAULT_LIMITS) -> list[NewEvent]:
    """The events of an append, checked field by field and against `limits` before anything is written.

    Type names and metadata ids must be non-empty UTF-8 text of at most 512 characters without control
    characters (`TypeError` / `ValueError`); sizes over `limits` raise `LimitExceededError`.
    """
    if not isinstance(events, Sequence) or isinstance(events, str | bytes):
        raise TypeError(f"append to {stream_id!r}: events must be a sequence of NewEvent, got {events!r}")
    if not events:
        raise ValueError(f"append to {stream_id!r} needs at least one event")
    total = 0
    for event in events:
        if _well_formed(event):  # the common case, checked in one pass; otherwise find what is wrong
            total += len(event.data)
        else:
            total += len(_checked_event(stream_id, event).data)
    if over_limits(len(events), total, limits):
        check_append_size(stream_id, events, total, limits)
    return list(events)


def expectation_holds(expected: ExpectedVersion, actual: int) -> bool:
    if expected is ANY:
        return True
    if expected is NO_STREAM:
        return actual == 0
    return expected == actual


@runtime_checkable
class EventStore(Protocol):
    """Append-only storage of event streams with a gapless global log."""

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: ExpectedVersion
    ) -> AppendResult:
        """Append `events` atomically if the stream is at `expected_version`.

        Raises `ConcurrencyError` (and writes nothing) when it is not. Returns once durable.
        """
        ...

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        """Events of one stream with from_version <= version <= to_version, in version order."""
        ...

    async def read_all(
        self, after_position: int = 0, limit: int = 1000, *, slices: tuple[int, int] | None = None
    ) -> list[RecordedEvent]:
        """Up to `limit` events of the global log with position > after_position, in order.

        With ``slices=(low, high)``, only events whose stream's slice (`actorsrc.hashing.slice_of`, stored
        with each event) is in [low, high), still in position order and up to `limit`; `ValueError` unless
        0 <= low < high <= 1024. Positions are then not contiguous.

        If a row in that range does not decode (corrupt metadata, an impossible timestamp, ...), raises
        `EventDecodeError` for the first such row, with its stream, version and `position`. The rows
        before it are still readable: ``read_all(after_position, limit=error.position - after_position - 1)``
        returns them (when that limit is at least 1), and ``read_all(error.position)`` continues after it,
        so a subscriber can deal with that one event and go on.

        With `slices`, a read that meets an undecodable row after decodable ones returns those (a batch
        shorter than `limit`, ending before it), so the error is raised only when the undecodable row is
        the first of those slices after `after_position`: there are no rows before it to read, the same
        read with ``limit=error.position - after_position - 1`` raises again, ``read_all(error.position - 1,
        1, slices=...)`` re-reads it, and ``read_all(error.position, slices=...)`` continues after it.
        """
        ...

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version; 0 if it does not exist."""
        ...

    async def find_commands(self, stream_id: str, command_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """For each of `command_ids` already recorded on the stream: its (first, last) event version.

        A command id travels in the metadata of the events it caused, and the store remembers it per
        stream, forever, so a repeated command is recognised however long ago it ran.
        """
        ...

    async def last_position(self) -> int:
        """The global position of the newest event; 0 if the store is empty."""
        ...


@runtime_checkable
class SnapshotStore(Protocol):
    """Stores that keep snapshots of aggregate state, so recovery replays only the tail."""

    async def save_snapshot(self, snapshot: Snapshot, *, keep: int = 2) -> None:
        """Store `snapshot` and prune the stream's older snapshots, keeping the newest `keep`."""
        ...

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        """The newest snapshot of a stream, or None."""
        ...


def validate_snapshot(snapshot: object, keep: object, limits: StoreLimits = DEFAULT_LIMITS) -> Snapshot:
    if not isinstance(snapshot, Snapshot):
        raise TypeError(f"expected a Snapshot, got {snapshot!r}")
    validate_stream_id(snapshot.stream_id)
    if snapshot.version < 1 or snapshot.position < 1 or snapshot.schema_version < 1:
        raise ValueError(f"snapshot of {snapshot.stream_id!r}: version, position and schema_version must be >= 1")
    if not isinstance(snapshot.data, bytes):
        raise TypeError(f"snapshot of {snapshot.stream_id!r}: data must be bytes")
    if len(snapshot.data) > limits.max_append_bytes:
        raise LimitExceededError(
            f"snapshot of {snapshot.stream_id!r} is {len(snapshot.data)} bytes, over the limit of"
            f" {limits.max_append_bytes} (StoreLimits.max_append_bytes)",
            what="max_append_bytes",
            size=len(snapshot.data),
            limit=limits.max_append_bytes,
        )
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep must be an int >= 1, got {keep!r}")
    return snapshot


@runtime_checkable
class AppendNotifier(Protocol):
    """Stores that can tell in-process subscribers about new appends at once."""

    def add_append_listener(self, listener: Callable[[int], None]) -> Callable[[], None]: ...


StoredPayload = tuple[int, int, str, int, bytes]
"""(version, position, type, schema version, data) of a stored event: all that replay needs."""


@runtime_checkable
class PayloadReader(Protocol):
    """Stores with a lean read for replay: no metadata decoding, no timestamps."""

    async def read_stream_payloads(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[StoredPayload]: ...


_P = TypeVar("_P")
_capabilities: dict[tuple[type, type], bool] = {}


def has_capability(store: object, protocol: type[_P]) -> TypeGuard[_P]:
    """`isinstance(store, protocol)` for a runtime-checkable Protocol, cached per store class (the
    check inspects every protocol member, ~15 us, and recovery asks it for every actor)."""
    key = (type(store), protocol)
    found = _capabilities.get(key)
    if found is None:
        found = _capabilities[key] = isinstance(store, protocol)
    return found


@runtime_checkable
class StreamPresenceHint(Protocol):
    """Stores that can say, without a query, that a stream surely does not exist (`actorsrc.store.presence`).

    A hint only: True may be wrong either way for streams other processes wrote; the runtime never answers
    a command from it alone.
    """

    def may_hold_stream(self, stream_id: str) -> bool: ...


@runtime_checkable
class AppendSubmitter(Protocol):
    """Stores that queue an append without a coroutine and hand back a future (group-committing ones).

    The runtime then completes a healthy actor's batch in a callback, without a task per batch.
    """

    def submit_append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion,
        *,
        fence: Fence | None = None,
    ) -> asyncio.Future[AppendResult]: ...


@runtime_checkable
class FencingStore(Protocol):
    """Stores that keep a single writer per shard, even against a zombie node that still thinks it owns it.

    A node that takes a shard over raises the shard's fence to its new token (greater than any earlier
    owner's) before it writes; every append then carries ``fence=(shard, token)``, and one whose token is
    below the shard's fence is refused with `FencedAppendError`, inside the transaction that would have
    written it, so the old owner can write nothing once `raise_fence` has returned.
    """

    async def raise_fence(self, shard: int, token: int) -> int:
        """Set the shard's fence to max(its fence, `token`), ordered with appends (an append in flight
        either committed before, or is checked against the new fence); returns the fence now in force.
        Persistent: the fence survives restarts."""
        ...

    async def fences(self) -> dict[int, int]:
        """Every shard's fence (for status displays)."""
        ...

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion,
        *,
        fence: Fence | None = None,
    ) -> AppendResult:
        """`EventStore.append`; with `fence`, refused with `FencedAppendError` (nothing written) if the
        stored fence of its shard is above its token. Appends without `fence` are never checked."""
        ...
