"""Time travel: a stream's history, and a projection replayed up to a moment into a scratch read model.

Aggregate state as of a version or moment is `load_state(..., to_version=k)` / `load_state(..., at=t)`.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from actorsrc.domain import Aggregate
from actorsrc.projection import EventEnvelope, Projection, envelope_of
from actorsrc.readmodel.sqlite import SQLiteReadModel
from actorsrc.recovery import codec_for, require_aware
from actorsrc.store.base import EventStore, check_int


async def stream_history(
    store: EventStore, aggregate: Aggregate[Any, Any, Any], aggregate_id: str
) -> list[EventEnvelope[Any]]:
    """Every event of one instance, decoded (and upcast), with its version, position and time."""
    codec = codec_for(aggregate)
    records = await store.read_stream(aggregate.stream_id(aggregate_id))
    return [envelope_of(codec, record) for record in records]


async def replay_projection(
    store: EventStore,
    projection: Projection,
    into: SQLiteReadModel,
    *,
    to_position: int | None = None,
    until: datetime | None = None,
    batch_size: int = 2000,
) -> int:
    """Build `projection` from scratch in `into` (a scratch read model: a file or ":memory:") from the
    start of the log up to `to_position` and/or the moment `until`; the live read model is untouched.

    Returns the position of the last event applied. Use it for temporal queries ("what did this read
    model say last Tuesday?"): query `into` afterwards.
    """
    if to_position is not None:
        check_int("to_position", to_position, 0)
    if until is not None:
        require_aware(until)
    codec = projection.event_codec()
    handle = projection.handle

    def start_over(conn: sqlite3.Connection) -> None:
        projection.reset(conn)
        projection.setup(conn)

    await into.transaction(start_over)
    reached = 0
    while True:
        records = await store.read_all(reached, batch_size)
        records = [
            r
            for r in records
            if (to_position is None or r.position <= to_position) and (until is None or r.recorded_at <= until)
        ]
        if not records:
            return reached
        envelopes = [envelope_of(codec, r) for r in records if codec.reads(r.type)]

        def apply(conn: sqlite3.Connection, envelopes: list[EventEnvelope[Any]] = envelopes) -> None:
            for envelope in envelopes:
                handle(conn, envelope)

        reached = records[-1].position
        await into.transaction(apply, checkpoint=(projection.name, reached))
