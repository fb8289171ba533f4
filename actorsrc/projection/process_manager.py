"""`ProcessManager` (a saga): reacts to events by sending commands, each a `Send`, with durable state."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from actorsrc.codec import EventCodec
from actorsrc.domain import Aggregate
from actorsrc.errors import ConfigurationError
from actorsrc.projection.envelope import EventEnvelope
from actorsrc.projection.failure import FailurePolicy
from actorsrc.projection.handler_codec import check_handler_name, handler_codec

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Send:
    """A command a process manager sends to an aggregate instance."""

    aggregate: Aggregate[Any, Any, Any]
    aggregate_id: str
    command: Any


@dataclass(frozen=True, slots=True)
class ProcessManager(Generic[S]):
    """Reacts to events by sending commands (a saga), with durable state per instance.

    `key(envelope)` names the instance an event belongs to (an order id, say), or None to ignore the
    event. `react(state, envelope)` returns the instance's next state and the commands to send. Each
    command carries a deterministic id made of the manager's name, the event's id and the command's
    index, so a retried or replayed event never performs a command twice. A command the target
    rejects with a `DomainError` is logged and counts as handled (model such outcomes as events); the
    manager remembers it, so a replay does not send it again, where it might now be accepted.
    """

    name: str
    key: Callable[[EventEnvelope[Any]], str | None]
    initial: S
    react: Callable[[S, EventEnvelope[Any]], tuple[S, Sequence[Send]]]
    events: Mapping[str, type[Any]] | None = None
    aggregates: Sequence[Aggregate[Any, Any, Any]] = ()
    state_type: type[Any] | None = None
    failure: FailurePolicy = field(default_factory=FailurePolicy)
    batch_size: int = 200

    def __post_init__(self) -> None:
        check_handler_name("process manager", self.name)
        if self.batch_size < 1:
            raise ConfigurationError(f"process manager {self.name!r}: batch_size must be >= 1")

    def event_codec(self) -> EventCodec:
        return handler_codec(self.name, self.events, self.aggregates)
