"""actorsrc: event-sourced systems built from async actors.

What a program needs first is importable from here (`__all__` below lists it by topic: aggregates, runtime,
cluster, cores, stores, stored records, read side, state and history, event names, errors); the rest lives in
named submodules: `actorsrc.store` (and `actorsrc.store.postgres`), `actorsrc.readmodel` (and
`actorsrc.readmodel.postgres`), `actorsrc.projection`, `actorsrc.runtime`, `actorsrc.cluster` (aggregates across
processes over NATS), `actorsrc.cores` (one runtime process per core), `actorsrc.timetravel`, `actorsrc.records`
(stored records), `actorsrc.recovery` (rebuilding an instance's state from the store), `actorsrc.sql` (database
plumbing shared by the stores and the read models), `actorsrc.lint` (the event-name lint), `actorsrc.testing`
(testkits, the store contract, fault injection).
"""

from actorsrc.app import App
from actorsrc.cluster.settings import Cluster
from actorsrc.cores.settings import Cores
from actorsrc.domain import Aggregate, fold
from actorsrc.errors import (
    ActorsrcError,
    AggregateFailedError,
    AskTimeoutError,
    ClusterError,
    ClusterUnavailableError,
    CodecError,
    CommandIdConflictError,
    ConcurrencyError,
    ConfigurationError,
    CoresError,
    CoresLayoutError,
    DomainError,
    EventDecodeError,
    FencedAppendError,
    ForeignDatabaseError,
    HandlerTimeoutError,
    InvalidDecisionError,
    InvalidStreamIdError,
    LimitExceededError,
    MailboxFullError,
    NoFreePartError,
    OutcomeUnknownError,
    PersistTimeoutError,
    ReadModelError,
    RecoveryError,
    RemoteCommandError,
    RuntimeClosedError,
    ShardMovingError,
    StoreClosedError,
    StoreError,
    StoreUnavailableError,
    UnknownCommandError,
    UnknownEventTypeError,
    UnregisteredEventError,
    WaitTimeoutError,
)
from actorsrc.lint import NamingWarning, check_event_names
from actorsrc.projection import EventEnvelope, FailurePolicy, ProcessManager, Projection, Send
from actorsrc.readmodel import ParkedEvent, SQLiteReadModel
from actorsrc.records import AppendResult, Metadata, NewEvent, RecordedEvent, Snapshot
from actorsrc.recovery import LoadedState, codec_for, load_state
from actorsrc.runtime import (
    AggregateRef,
    CommandOutcome,
    HandlerStatus,
    ReadSettings,
    Runtime,
    RuntimeStats,
    StoreBreakerPolicy,
    StoreStatus,
    SupervisorPolicy,
    WriteSettings,
)
from actorsrc.store import (
    ANY,
    NO_STREAM,
    EventStore,
    ExpectedVersion,
    SnapshotStore,
    SQLiteEventStore,
    StoreLimits,
    StreamState,
)
from actorsrc.timetravel import replay_projection, stream_history
from actorsrc.tuning import tune_gc

__version__ = "0.1.0"

__all__ = [
    # aggregates
    "Aggregate",
    "fold",
    # runtime
    "App",
    "AggregateRef",
    "CommandOutcome",
    "HandlerStatus",
    "ReadSettings",
    "Runtime",
    "RuntimeStats",
    "StoreBreakerPolicy",
    "StoreStatus",
    "SupervisorPolicy",
    "WriteSettings",
    "tune_gc",
    # cluster (the `cluster` extra: NATS JetStream)
    "Cluster",
    # every core of one machine (actorsrc.cores)
    "Cores",
    # stores
    "ANY",
    "NO_STREAM",
    "EventStore",
    "ExpectedVersion",
    "SQLiteEventStore",
    "SnapshotStore",
    "StoreLimits",
    "StreamState",
    # stored records (actorsrc.records)
    "AppendResult",
    "Metadata",
    "NewEvent",
    "RecordedEvent",
    "Snapshot",
    # read side
    "EventEnvelope",
    "FailurePolicy",
    "ParkedEvent",
    "ProcessManager",
    "Projection",
    "SQLiteReadModel",
    "Send",
    # state and history
    "LoadedState",
    "codec_for",
    "load_state",
    "replay_projection",
    "stream_history",
    # event names
    "NamingWarning",
    "check_event_names",
    # errors
    "ActorsrcError",
    "AggregateFailedError",
    "AskTimeoutError",
    "ClusterError",
    "ClusterUnavailableError",
    "CodecError",
    "CommandIdConflictError",
    "ConcurrencyError",
    "ConfigurationError",
    "CoresError",
    "CoresLayoutError",
    "DomainError",
    "EventDecodeError",
    "FencedAppendError",
    "ForeignDatabaseError",
    "HandlerTimeoutError",
    "InvalidDecisionError",
    "InvalidStreamIdError",
    "LimitExceededError",
    "MailboxFullError",
    "NoFreePartError",
    "OutcomeUnknownError",
    "PersistTimeoutError",
    "ReadModelError",
    "RecoveryError",
    "RemoteCommandError",
    "RuntimeClosedError",
    "ShardMovingError",
    "StoreClosedError",
    "StoreError",
    "StoreUnavailableError",
    "UnknownCommandError",
    "UnknownEventTypeError",
    "UnregisteredEventError",
    "WaitTimeoutError",
    # version
    "__version__",
]
