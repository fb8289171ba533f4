"""Given events, a process manager sent these commands and holds this state: a saga tested as a value.

    given_process(fulfilment, on(order, "o-1", OrderPlaced("ann", 500, lines))).then_sends(
        Send(payment, "pay-o-1", CapturePayment("o-1", 500))
    ).then_state("o-1", stage="awaiting_payment")

Each event is encoded as the store would hold it and decoded through the manager's own codec, so `react`
sees what it would see from the log; events the manager does not subscribe to, or whose `key` is None, are
skipped as the runtime skips them. Each command sent must be one its target declares, and each state must
read back from its stored bytes as an equal value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic, Self, TypeVar

import msgspec

from actorsrc.domain import Aggregate
from actorsrc.projection import EventEnvelope, ProcessManager, Send
from actorsrc.recovery import codec_for
from actorsrc.runtime.ask_checks import check_command
from actorsrc.testing.aggregate_testkit import stored_form
from actorsrc.testing.expectations import list_mismatch, show, value_mismatch
from actorsrc.testing.given_streams import DEFAULT_ID, streams_of

S = TypeVar("S")

_UNSET: Any = object()


def show_send(send: Send) -> str:
    """A command sent, as the messages print it: target instance and command."""
    return f"{send.aggregate.name} {send.aggregate_id!r} <- {show(send.command)}"


def given_process(
    manager: ProcessManager[S],
    *given: Any,
    aggregate: Aggregate[Any, Any, Any] | None = None,
    aggregate_id: str = DEFAULT_ID,
) -> ProcessOutcome[S]:
    """Feed `given` (bare events, or `on(aggregate, id, ...)` groups, in order) to `manager`."""
    if not isinstance(manager, ProcessManager):
        raise TypeError(f"given_process() takes a ProcessManager first, got {manager!r}")
    groups = streams_of(given, aggregate, aggregate_id, manager.aggregates, f"process manager {manager.name!r}")
    reader = manager.event_codec()
    state_type = manager.state_type or type(manager.initial)
    states: dict[str, S] = {}
    sends: list[Send] = []
    versions: dict[str, int] = {}
    position = 0
    for group in groups:
        codec = codec_for(group.aggregate)
        for event in group.events:
            stored = stored_form(codec, event)
            position += 1
            version = versions[group.stream_id] = versions.get(group.stream_id, 0) + 1
            if not reader.reads(stored.type):
                continue
            decoded = reader.decode_stored(group.stream_id, version, stored.type, stored.schema_version, stored.data)
            envelope = EventEnvelope(
                decoded,
                reader.current_name(stored.type),
                group.stream_id,
                version,
                position,
                datetime.now(UTC),
                stored.metadata,
            )
            key = manager.key(envelope)
            if key is None:
                continue
            state, sent = manager.react(states.get(key, manager.initial), envelope)
            for send in sent:
                if not isinstance(send, Send):
                    raise TypeError(f"{manager.name}.react returned {send!r} among its commands; return Send values")
                check_command(send.aggregate, send.command, given_to="when")
            read_back = msgspec.json.decode(msgspec.json.encode(state), type=state_type)
            problem = value_mismatch(
                f"{manager.name}: state of {key!r} read back from its stored bytes", state, read_back
            )
            if problem is not None:
                raise AssertionError(problem)
            states[key] = state
            sends.extend(sent)
    return ProcessOutcome(manager, tuple(sends), states)


class ProcessOutcome(Generic[S]):
    """The commands a process manager sent, in order, and each instance's state after the given events."""

    __slots__ = ("manager", "sends", "states")

    def __init__(self, manager: ProcessManager[S], sends: tuple[Send, ...], states: dict[str, S]) -> None:
        self.manager = manager
        self.sends = sends
        self.states = states

    def then_sends(self, *expected: Send) -> Self:
        """Exactly these commands were sent, in order (none: nothing was sent)."""
        __tracebackhide__ = True  # pytest shows the test's line, not the kit's
        problem = list_mismatch(f"{self.manager.name}: the commands sent", list(expected), list(self.sends), show_send)
        if problem is not None:
            raise AssertionError(problem)
        return self

    def state(self, key: str) -> S:
        """The state of instance `key`; `AssertionError` if no event reached it."""
        __tracebackhide__ = True  # pytest shows the test's line, not the kit's
        try:
            return self.states[key]
        except KeyError:
            known = ", ".join(repr(k) for k in self.states) or "none"
            raise AssertionError(
                f"{self.manager.name}: no event reached instance {key!r} (instances: {known})"
            ) from None

    def then_state(self, key: str, expected: S = _UNSET, **fields: object) -> Self:
        """Instance `key`'s state equals `expected`, or has these attribute values (or both)."""
        __tracebackhide__ = True  # pytest shows the test's line, not the kit's
        state = self.state(key)
        if expected is not _UNSET:
            problem = value_mismatch(f"{self.manager.name}: state of {key!r}", expected, state)
            if problem is not None:
                raise AssertionError(problem)
        wrong = [
            f"  {name}: expected {show(value)}, got {show(getattr(state, name, '<no such attribute>'))}"
            for name, value in fields.items()
            if getattr(state, name, _UNSET) != value
        ]
        if wrong:
            raise AssertionError(f"{self.manager.name}: state of {key!r} differs\n" + "\n".join(wrong))
        return self
