"""actorsrc: event-sourced systems built from async actors."""

from actorsrc.domain import Aggregate, fold
from actorsrc.errors import (
    ActorsrcError,
    AggregateFailedError,
    AskTimeoutError,
    CodecError,
    ConcurrencyError,
    ConfigurationError,
    DomainError,
    EventDecodeError,
    InvalidStreamIdError,
    MailboxFullError,
    PersistTimeoutError,
    RecoveryError,
    RuntimeClosedError,
    StoreClosedError,
    StoreError,
    UnknownCommandError,
    UnknownEventTypeError,
    UnregisteredEventError,
    WaitTimeoutError,
)
from actorsrc.loading import LoadedState, codec_for, load_state
from actorsrc.messages import AppendResult, Metadata, NewEvent, RecordedEvent, Snapshot
from actorsrc.naming import NamingWarning, check_event_names
from actorsrc.projection import EventEnvelope, FailurePolicy, ProcessManager, Projection, Send
from actorsrc.readmodel import ParkedEvent, SQLiteReadModel
from actorsrc.runtime import AggregateRef, CommandOutcome, Runtime, RuntimeStats, SupervisorPolicy
from actorsrc.store import (
    ANY,
    NO_STREAM,
    EventStore,
    ExpectedVersion,
    SnapshotStore,
    SQLiteEventStore,
    StreamState,
)
from actorsrc.tuning import tune_gc

__version__ = "0.1.0"

__all__ = [
    "ANY",
    "ActorsrcError",
    "Aggregate",
    "AggregateFailedError",
    "AggregateRef",
    "AppendResult",
    "AskTimeoutError",
    "CodecError",
    "CommandOutcome",
    "ConcurrencyError",
    "ConfigurationError",
    "DomainError",
    "EventDecodeError",
    "EventEnvelope",
    "EventStore",
    "ExpectedVersion",
    "FailurePolicy",
    "InvalidStreamIdError",
    "LoadedState",
    "MailboxFullError",
    "Metadata",
    "NO_STREAM",
    "NamingWarning",
    "NewEvent",
    "ParkedEvent",
    "PersistTimeoutError",
    "ProcessManager",
    "Projection",
    "RecordedEvent",
    "RecoveryError",
    "Runtime",
    "RuntimeClosedError",
    "RuntimeStats",
    "SQLiteEventStore",
    "SQLiteReadModel",
    "Send",
    "Snapshot",
    "SnapshotStore",
    "StoreClosedError",
    "StoreError",
    "StreamState",
    "SupervisorPolicy",
    "UnknownCommandError",
    "UnknownEventTypeError",
    "UnregisteredEventError",
    "WaitTimeoutError",
    "__version__",
    "check_event_names",
    "codec_for",
    "fold",
    "load_state",
    "tune_gc",
]
