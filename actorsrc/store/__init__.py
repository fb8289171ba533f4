"""Event stores: the protocol and its adapters."""

from actorsrc.store.base import ANY, NO_STREAM, EventStore, ExpectedVersion, SnapshotStore, StreamState
from actorsrc.store.limits import StoreLimits
from actorsrc.store.sqlite import SQLiteEventStore

__all__ = [
    "ANY",
    "NO_STREAM",
    "EventStore",
    "ExpectedVersion",
    "SQLiteEventStore",
    "SnapshotStore",
    "StoreLimits",
    "StreamState",
]
