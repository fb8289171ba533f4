"""Every error actorsrc raises derives from `ActorsrcError`, so callers can catch the family at once.

Errors say what happened, with the offending value, and what to do about it.
"""

from __future__ import annotations


class ActorsrcError(Exception):
    """Root of every error raised by actorsrc."""


class DomainError(ActorsrcError):
    """A command was rejected by the domain; nothing was written.

    Subclass it in domain code (``class InsufficientFunds(DomainError)``); the runtime sends it
    back to the caller unchanged and the actor keeps serving.
    """


class ConfigurationError(ActorsrcError, ValueError):
    """An aggregate, store or runtime was set up with values that cannot work."""


class InvalidStreamIdError(ActorsrcError, ValueError):
    """A stream id or aggregate id is empty, too long or not a string."""


class UnknownCommandError(ActorsrcError, TypeError):
    """A command was sent to an aggregate that does not declare its type."""


class ConcurrencyError(ActorsrcError):
    """An append's expected version did not match the stream; nothing was written."""

    def __init__(self, stream_id: str, expected: object, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, but the append expected {expected}; "
            "reload the stream and decide again"
        )


class CodecError(ActorsrcError):
    """Base for errors turning events into bytes and back."""


class UnregisteredEventError(CodecError, TypeError):
    """An event object's class is not in its aggregate's `events` mapping."""


class UnknownEventTypeError(CodecError):
    """A stored event names a type that no registered class maps to."""

    def __init__(self, stream_id: str, version: int, type_name: str, known: list[str]) -> None:
        self.stream_id = stream_id
        self.version = version
        self.type_name = type_name
        super().__init__(
            f"stream {stream_id!r} version {version} holds event type {type_name!r}, which is not "
            f"registered (known: {', '.join(sorted(known)) or 'none'}); add it to the aggregate's "
            "`events` mapping or an upcaster that renames it"
        )


class EventDecodeError(CodecError):
    """A stored event (its payload, metadata or timestamp) does not decode.

    `position` is the row's place in the global log when the failing read knew it (reads of the
    global log always do), so that a subscriber can deal with that one event and go on.
    """

    def __init__(
        self, stream_id: str, version: int, type_name: str, reason: str, *, position: int | None = None
    ) -> None:
        self.stream_id = stream_id
        self.version = version
        self.type_name = type_name
        self.reason = reason
        self.position = position
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"stream {stream_id!r} version {version}{where} ({type_name}) does not decode: {reason}")


class InvalidDecisionError(ActorsrcError, TypeError):
    """An aggregate's `decide` returned something other than a sequence of registered events."""


class LimitExceededError(ActorsrcError, ValueError):
    """A value is over a configured limit (event size, batch size, metadata size); nothing was written.

    `what` names the limit, `size` the offending size and `limit` the maximum allowed.
    """

    def __init__(self, message: str, *, what: str, size: int, limit: int) -> None:
        self.what = what
        self.size = size
        self.limit = limit
        super().__init__(message)


class CommandIdConflictError(ActorsrcError):
    """A command id was used again with a different command: idempotency keys name one command only."""


class StoreClosedError(ActorsrcError):
    """The event store was used after it was closed (or before it was opened)."""


class StoreError(ActorsrcError):
    """The event store failed to complete an operation (I/O, database or driver error)."""


class ForeignDatabaseError(StoreError):
    """The file or schema opened as a store holds data that is not an actorsrc store; it was left untouched."""


class OutcomeUnknownError(StoreError):
    """An append may or may not have been written (the link failed mid-commit and could not be settled).

    Retry the command with the same command id: if it was written, the retry is recognised and
    returns the original outcome; if not, it is carried out once.
    """


class StoreUnavailableError(StoreError):
    """The event store is failing; commands are refused at once until a probe finds it healthy again."""


class ReadModelError(StoreError):
    """The read-model database failed (I/O, lock, lost connection): retried until it works, never parked."""


class RuntimeClosedError(ActorsrcError):
    """A command was sent to a runtime that is closing or closed."""


class AskTimeoutError(ActorsrcError, TimeoutError):
    """No reply arrived within the `ask` timeout; the command may still be carried out."""


class WaitTimeoutError(ActorsrcError, TimeoutError):
    """A handler did not reach the awaited position in time (it may be behind, stopped or rebuilding).

    From `ask(..., consistency=[...])`, the command itself was carried out: `outcome` holds its
    `CommandOutcome` (None when the wait was not for a command).
    """

    def __init__(self, message: str, *, outcome: object = None) -> None:
        super().__init__(message)
        self.outcome = outcome


class MailboxFullError(ActorsrcError):
    """An actor's mailbox is full and the caller asked not to wait."""


class AggregateFailedError(ActorsrcError):
    """An aggregate instance crashed too often and is refusing commands until its cool-down passes."""


class PersistTimeoutError(StoreError):
    """An append did not complete within the runtime's `persist_timeout`; its outcome is unknown."""


class RecoveryError(ActorsrcError):
    """An actor could not rebuild its state from the store; its commands fail until it can."""


class HandlerTimeoutError(ActorsrcError, TimeoutError):
    """A projection or process manager took longer than its `FailurePolicy.timeout` over one batch."""


class FencedAppendError(ActorsrcError):
    """An append carried a shard's fencing token older than the store's fence for that shard: another
    node has owned the shard since. Nothing was written; the command is retried on the new owner."""

    def __init__(self, stream_id: str, shard: int, token: int, fence: int) -> None:
        super().__init__(
            f"append to {stream_id!r} refused: shard {shard} is fenced at token {fence}, this writer holds "
            f"{token} (another node owns the shard now)"
        )
        self.stream_id = stream_id
        self.shard = shard
        self.token = token
        self.fence = fence


class ClusterError(ActorsrcError):
    """The cluster could not do what was asked (see the subclasses)."""


class ClusterUnavailableError(ClusterError):
    """NATS is unreachable, or has no JetStream, so the node cannot join its cluster."""


class ShardMovingError(ClusterError):
    """The command's shard had no owner (it was moving between nodes) for the whole of the ask's timeout.
    The command was not carried out by any node, or was and its retry will be recognised by command id."""


class RemoteCommandError(ClusterError):
    """The owning node failed the command with an error this process cannot rebuild as its own type;
    `remote_type` names it and the message is the remote one."""

    def __init__(self, remote_type: str, message: str) -> None:
        super().__init__(f"{remote_type}: {message}")
        self.remote_type = remote_type


class CoresError(ActorsrcError):
    """Running one runtime per core (`actorsrc.cores`) could not do what was asked (see the subclasses)."""


class CoresLayoutError(CoresError, ConfigurationError):
    """The directory holds a store split into another number of parts than the `Cores(count=...)` asked;
    `found` is that number. Start every process with the count the directory was split into."""

    def __init__(self, message: str, *, directory: str, count: int, found: int) -> None:
        super().__init__(message)
        self.directory = directory
        self.count = count
        self.found = found


class NoFreePartError(CoresError):
    """Every part of the directory is claimed by a running process: start no more processes than parts."""
