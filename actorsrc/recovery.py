"""Rebuild an aggregate instance's state from the store: what recovery, tools and tests all use.

With snapshots enabled, the newest usable snapshot is the starting point and only the events after it
are replayed. A snapshot with another schema version, or one that no longer decodes, is skipped with
a log line: a full replay is slower but always right.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from actorsrc.codec import EventCodec
from actorsrc.domain import Aggregate
from actorsrc.errors import EventDecodeError
from actorsrc.observability import logger
from actorsrc.records import Snapshot
from actorsrc.store.base import EventStore, PayloadReader, SnapshotStore, StoredPayload, check_int, has_capability

S = TypeVar("S")

_codecs: dict[int, tuple[Aggregate[Any, Any, Any], EventCodec]] = {}


def codec_for(aggregate: Aggregate[Any, Any, Any]) -> EventCodec:
    """The codec of `aggregate`'s events and state, built once per aggregate value."""
    cached = _codecs.get(id(aggregate))
    if cached is None or cached[0] is not aggregate:
        state_type = aggregate.state_type or type(aggregate.initial)
        codec = EventCodec(
            aggregate.events, aggregate.schema_versions, state_type, aggregate.upcasters, aggregate.renamed_events
        )
        cached = _codecs[id(aggregate)] = (aggregate, codec)
    return cached[1]


@dataclass(frozen=True, slots=True)
class LoadedState(Generic[S]):
    """An instance's state with the stream version and global position of its last event.

    `snapshot_version` is the version of the snapshot recovery started from (0: none), and
    `events_replayed` the number of events folded on top of it.
    """

    state: S
    version: int
    position: int
    snapshot_version: int = 0
    events_replayed: int = 0


async def load_state(
    store: EventStore,
    aggregate: Aggregate[S, Any, Any],
    aggregate_id: str,
    *,
    use_snapshot: bool = True,
    to_version: int | None = None,
    at: datetime | None = None,
) -> LoadedState[S]:
    """Fold the stored events of one instance (after its newest usable snapshot, if any).

    Time travel: `to_version` stops after that stream version; `at` (a timezone-aware datetime)
    stops after the last event recorded at or before that moment.
    """
    if to_version is not None:
        check_int("to_version", to_version, 0)
    if at is not None:
        require_aware(at)
    stream_id = aggregate.stream_id(aggregate_id)
    codec = codec_for(aggregate)
    state, version, position = aggregate.initial, 0, 0
    if use_snapshot and at is None and aggregate.snapshots_enabled and has_capability(store, SnapshotStore):
        snapshot = await store.load_snapshot(stream_id)
        usable = snapshot is not None and (to_version is None or snapshot.version <= to_version)
        if snapshot is not None and usable and (restored := _restore(aggregate, codec, snapshot)) is not None:
            state, version, position = restored, snapshot.version, snapshot.position
    snapshot_version = version
    if to_version is not None and to_version <= version:
        rows: list[StoredPayload] = []
    elif at is None and has_capability(store, PayloadReader):  # the lean path: most of replay's time is here
        rows = await store.read_stream_payloads(stream_id, version + 1, to_version)
    else:
        records = await store.read_stream(stream_id, from_version=version + 1, to_version=to_version)
        if at is not None:
            records = list(itertools.takewhile(lambda record: record.recorded_at <= at, records))
        rows = [(r.version, r.position, r.type, r.schema_version, r.data) for r in records]
    decode = codec.decode_stored
    evolve = aggregate.evolve
    for row_version, _, type_name, schema_version, data in rows:
        state = evolve(state, decode(stream_id, row_version, type_name, schema_version, data))
    if rows:
        version, position = rows[-1][0], rows[-1][1]
    return LoadedState(state, version, position, snapshot_version, len(rows))


def require_aware(moment: datetime) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"a point in time must be a timezone-aware datetime (e.g. datetime(2026, 7, 4, tzinfo=UTC)), got {moment!r}"
        )
    return moment


def _restore(aggregate: Aggregate[S, Any, Any], codec: EventCodec, snapshot: Snapshot) -> S | None:
    if snapshot.schema_version != aggregate.snapshot_schema_version:
        logger.info(
            "snapshot.ignored",
            stream_id=snapshot.stream_id,
            snapshot_version=snapshot.version,
            reason=f"schema version {snapshot.schema_version}, current {aggregate.snapshot_schema_version}",
        )
        return None
    try:
        state: S = codec.decode_state(snapshot.stream_id, snapshot.version, snapshot.data)
    except EventDecodeError as exc:
        logger.warning(
            "snapshot.ignored", stream_id=snapshot.stream_id, snapshot_version=snapshot.version, reason=exc.reason
        )
        return None
    return state
