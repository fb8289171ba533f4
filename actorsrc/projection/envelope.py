"""`EventEnvelope`: a decoded event with where and when it was recorded, as handlers receive it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec

from actorsrc.codec import EventCodec
from actorsrc.records import Metadata, RecordedEvent

E = TypeVar("E")


class EventEnvelope(msgspec.Struct, Generic[E], frozen=True):
    """A decoded event with where and when it was recorded. (A frozen struct: made once per event handled,
    ~0.15 us where a frozen dataclass takes ~0.9.)"""

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
