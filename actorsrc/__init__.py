"""actorsrc: event-sourced systems built from async actors."""

from actorsrc.domain import Aggregate, fold
from actorsrc.errors import (
    ActorsrcError,
    AskTimeoutError,
    CodecError,
    ConcurrencyError,
    ConfigurationError,
    DomainError,
    EventDecodeError,
    InvalidStreamIdError,
    MailboxFullError,
    RecoveryError,
    RuntimeClosedError,
    StoreClosedError,
    StoreError,
    UnknownCommandError,
    UnknownEventTypeError,
    UnregisteredEventError,
)
from actorsrc.loading import LoadedState, codec_for, load_state
from actorsrc.messages import AppendResult, Metadata, NewEvent, RecordedEvent
from actorsrc.runtime import AggregateRef, CommandOutcome, Runtime
from actorsrc.store import ANY, NO_STREAM, EventStore, ExpectedVersion, SQLiteEventStore, StreamState

__version__ = "0.1.0"

__all__ = [
    "ANY",
    "NO_STREAM",
    "ActorsrcError",
    "Aggregate",
    "AggregateRef",
    "AppendResult",
    "AskTimeoutError",
    "CodecError",
    "CommandOutcome",
    "ConcurrencyError",
    "ConfigurationError",
    "DomainError",
    "EventDecodeError",
    "EventStore",
    "ExpectedVersion",
    "InvalidStreamIdError",
    "LoadedState",
    "MailboxFullError",
    "Metadata",
    "NewEvent",
    "RecordedEvent",
    "RecoveryError",
    "Runtime",
    "RuntimeClosedError",
    "SQLiteEventStore",
    "StoreClosedError",
    "StoreError",
    "StreamState",
    "UnknownCommandError",
    "UnknownEventTypeError",
    "UnregisteredEventError",
    "__version__",
    "codec_for",
    "fold",
    "load_state",
]
