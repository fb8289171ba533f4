"""What is stored: events on their way in (`NewEvent`) and on their way out (`RecordedEvent`)."""

from __future__ import annotations

import itertools
import os
from datetime import datetime

import msgspec

# Event ids: a random per-process prefix and a counter. Unique without a syscall per event
# (uuid4 reads os.urandom each time, ~1.7 us here; this is ~0.2 us).
_event_id_prefix = os.urandom(8).hex()
_event_counter = itertools.count(1)


def _new_prefix_after_fork() -> None:
    global _event_id_prefix
    _event_id_prefix = os.urandom(8).hex()


os.register_at_fork(after_in_child=_new_prefix_after_fork)


def next_event_id() -> str:
    """A new globally unique event id (32 hex characters)."""
    return f"{_event_id_prefix}{next(_event_counter):016x}"


class Metadata(msgspec.Struct, frozen=True, array_like=True, omit_defaults=True):
    """Who and what caused an event. Stored beside the payload, encoded compactly."""

    event_id: str
    command_id: str | None = None
    causation_id: str | None = None
    correlation_id: str | None = None
    command_digest: str | None = None
    """A digest of the command that caused the event, so a reused command id with another command is caught."""


class NewEvent(msgspec.Struct, frozen=True):
    """An encoded event ready to append."""

    type: str
    data: bytes
    metadata: Metadata
    schema_version: int = 1


class RecordedEvent(msgspec.Struct, frozen=True):
    """An event as the store holds it: its place in its stream and in the global log."""

    stream_id: str
    version: int
    position: int
    type: str
    schema_version: int
    data: bytes
    metadata: Metadata
    recorded_at: datetime


class AppendResult(msgspec.Struct, frozen=True):
    """Where an append landed: the stream's new version and the global positions used."""

    stream_id: str
    first_version: int
    last_version: int
    first_position: int
    last_position: int
    recorded_at: datetime


class Snapshot(msgspec.Struct, frozen=True):
    """An aggregate instance's state as of `version` (whose last event sits at global `position`)."""

    stream_id: str
    version: int
    position: int
    schema_version: int
    data: bytes
    taken_at: datetime | None = None  # set by the store
