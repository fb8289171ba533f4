"""Limits that protect a store's process: sizes of what is appended, and queue lengths (backpressure).

A 50 MB event is accepted by SQLite and PostgreSQL alike, and then stalls every other actor's commit
behind it; an unbounded queue turns a slow disk into unbounded memory. Each limit is checked before
anything is written and refused with `LimitExceededError` (sizes) or by waiting (queues).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from actorsrc.errors import ConfigurationError, LimitExceededError
from actorsrc.records import NewEvent

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class StoreLimits:
    """What an event store accepts. Pass ``limits=StoreLimits(...)`` to the store to change them."""

    max_event_bytes: int = 1 * MiB
    """Largest encoded event payload (`NewEvent.data`); 1 MiB, KurrentDB's default maximum append size."""
    max_append_events: int = 50_000
    """Most events in one append (one actor's batch)."""
    max_append_bytes: int = 16 * MiB
    """Largest total payload of one append, and largest snapshot."""
    max_queued_appends: int = 10_000
    """Appends waiting for the next group commit beyond which `append` waits for room (backpressure).
    `submit_append`, the runtime's path, never waits: each actor has at most one append in flight, so the
    runtime's cap on live actors already bounds what it queues."""
    max_queued_reads: int = 10_000
    """Reads waiting for the next read hop beyond which a read waits for room."""
    max_queued_snapshots: int = 1_000
    """Snapshots waiting for the next commit beyond which a new one is refused at once (`StoreError`): a
    snapshot is an optimisation, and the runtime logs ``snapshot.failed`` and goes on."""

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"StoreLimits.{field.name} must be an int >= 1, got {value!r}")


DEFAULT_LIMITS = StoreLimits()


def over_limits(count: int, total: int, limits: StoreLimits) -> bool:
    """Whether an append of `count` events with `total` payload bytes needs a closer look: one cheap test
    per append, so that the common case pays nothing per event beyond summing the sizes."""
    return count > limits.max_append_events or total > limits.max_event_bytes or total > limits.max_append_bytes


def check_append_size(stream_id: str, events: Sequence[NewEvent], total: int, limits: StoreLimits) -> None:
    """Raise `LimitExceededError` if an append of `events` (payloads summing to `total` bytes) is too big."""
    if len(events) > limits.max_append_events:
        raise LimitExceededError(
            f"append to {stream_id!r} has {len(events)} events, over the limit of {limits.max_append_events}"
            " (StoreLimits.max_append_events); split it into several appends",
            what="max_append_events",
            size=len(events),
            limit=limits.max_append_events,
        )
    for index, event in enumerate(events):
        size = len(event.data)
        if size > limits.max_event_bytes:
            raise LimitExceededError(
                f"append to {stream_id!r}: event {index} ({event.type}) is {size} bytes encoded, over the limit of"
                f" {limits.max_event_bytes} (StoreLimits.max_event_bytes); keep large blobs outside the store"
                " and put a reference in the event",
                what="max_event_bytes",
                size=size,
                limit=limits.max_event_bytes,
            )
    if total > limits.max_append_bytes:
        raise LimitExceededError(
            f"append to {stream_id!r} is {total} bytes encoded, over the limit of {limits.max_append_bytes}"
            " (StoreLimits.max_append_bytes); split it into several appends",
            what="max_append_bytes",
            size=total,
            limit=limits.max_append_bytes,
        )
