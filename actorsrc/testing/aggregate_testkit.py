"""Given events, when a command, then events or a rejection: an aggregate tested as a value.

In the manner of Akka's EventSourcedBehaviorTestKit and Commanded's aggregate cases::

    given(account, AccountOpened("ann", 0)).when(Credit(70)).then(AccountCredited(70))
    given(account).when(Credit(1)).then_rejected(NotOpen, match="needs an open account")

`when` runs the pure `decide` and `evolve` (no event loop, no store) and checks what the runtime would
refuse: a command type the aggregate does not declare (`UnknownCommandError`, raised at once), a decision
that is not a list of registered events (`InvalidDecisionError`), and an event that does not fit its
declared types (`CodecError`, the strict codec's refusal). Those last two count as the command's
rejection, as they do for a caller of `ask`. Every given and decided event must also read back from its
stored bytes as an equal value, or replay would see another event than the live actor did, and with
snapshots enabled the state must read back from a snapshot.

`await given(...).when_sent(command)` checks the same end to end: the given events are appended to a
stream of `SQLiteEventStore.open(":memory:")`, the command goes through a real `Runtime` with `ask`, and
the state recovered from the store must equal the live actor's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Generic, Self, TypeVar

import anyio

from actorsrc.codec import EventCodec
from actorsrc.domain import Aggregate
from actorsrc.errors import (
    CodecError,
    DomainError,
    EventDecodeError,
    InvalidDecisionError,
    UnregisteredEventError,
)
from actorsrc.records import Metadata, NewEvent, next_event_id
from actorsrc.recovery import codec_for, load_state
from actorsrc.runtime import Runtime
from actorsrc.runtime.ask_checks import check_command
from actorsrc.store import NO_STREAM, SQLiteEventStore
from actorsrc.testing.expectations import list_mismatch, show, value_mismatch

S = TypeVar("S")
C = TypeVar("C")
E = TypeVar("E")

_UNSET: Any = object()


def given(aggregate: Aggregate[S, C, E], *events: E) -> AggregateScenario[S, C, E]:
    """A scenario on `aggregate` whose history is `events` (none: a new instance)."""
    return AggregateScenario(aggregate, events)


def stored_form(codec: EventCodec, event: object) -> NewEvent:
    """`event` as the store would receive it, after checking it reads back as an equal value."""
    name, schema_version, data = codec.encode(event)
    decoded = codec.decode_stored("testkit", 1, name, schema_version, data)
    if decoded != event:
        raise AssertionError(
            f"{type(event).__qualname__} does not read back from its stored bytes as an equal value, so replay "
            f"would see another event than the live actor did:\n  written: {show(event)}\n"
            f"  read back: {show(decoded)}"
        )
    return NewEvent(name, data, Metadata(next_event_id()), schema_version)


def check_snapshot(codec: EventCodec, state: object, header: str) -> None:
    """The state reads back from a snapshot as an equal value, or an `AssertionError` saying why not."""
    try:
        read_back = codec.decode_state("testkit", 1, codec.encode_state(state))
    except (CodecError, EventDecodeError) as exc:
        raise AssertionError(f"{header}: the state after cannot be snapshotted and read back: {exc}") from exc
    problem = value_mismatch(f"{header}: the state after, read back from a snapshot", state, read_back)
    if problem is not None:
        raise AssertionError(problem)


class AggregateScenario(Generic[S, C, E]):
    """An aggregate with a history: `when(command)` decides a command against the state it folds to."""

    __slots__ = ("aggregate", "history", "state")

    def __init__(self, aggregate: Aggregate[S, C, E], history: Sequence[E]) -> None:
        if not isinstance(aggregate, Aggregate):
            raise TypeError(f"given() takes an Aggregate first, got {aggregate!r}")
        self.aggregate = aggregate
        self.history = tuple(history)
        codec = codec_for(aggregate)
        for event in self.history:  # a history the store could not hold is a mistake in the test
            stored_form(codec, event)
        self.state: S = aggregate.replay(self.history)

    def _describe(self, command: object) -> str:
        if self.history:
            names = ", ".join(type(event).__name__ for event in self.history)
            history = f"given {len(self.history)} event(s) ({names})"
        else:
            history = "given no events"
        return f"{self.aggregate.name}: {history}, when {show(command)}"

    def when(self, command: C) -> Decision[S, C, E]:
        """Decide `command`: its events and the state after them, or the error it was rejected with."""
        aggregate = self.aggregate
        check_command(aggregate, command, given_to="when")
        codec = codec_for(aggregate)
        try:
            produced = aggregate.decide(self.state, command)
            if not isinstance(produced, Sequence) or isinstance(produced, str | bytes | bytearray):
                raise InvalidDecisionError(
                    f"{aggregate.name}.decide returned {type(produced).__qualname__} for "
                    f"{type(command).__qualname__}; return a list of events (an empty list to change nothing)"
                )
            events = tuple(produced)
            for event in events:
                codec.encode(event)
        except UnregisteredEventError as exc:
            error: Exception = InvalidDecisionError(
                f"{aggregate.name}.decide returned an object that is not one of its events for "
                f"{type(command).__qualname__}: {exc}"
            )
            error.__cause__ = exc
            return Decision(self, command, (), error, self.state)
        except Exception as exc:  # a DomainError, a CodecError, or a bug in decide: the command's rejection
            return Decision(self, command, (), exc, self.state)
        for event in events:
            stored_form(codec, event)
        state = self.state
        for event in events:
            state = aggregate.evolve(state, event)
        if aggregate.snapshots_enabled:
            check_snapshot(codec, state, self._describe(command))
        return Decision(self, command, events, None, state)

    async def when_sent(
        self, command: C, *, aggregate_id: str = "test", command_id: str | None = None, timeout: float = 10.0
    ) -> Decision[S, C, E]:
        """`when`, end to end: the history in an in-memory SQLite store, `command` sent with `ask`.

        With `command_id`, the command is sent twice: the second must come back as a duplicate with the
        same events and write nothing. The state recovered from the store must equal the live state.
        """
        aggregate = self.aggregate
        check_command(aggregate, command, given_to="when")
        codec = codec_for(aggregate)
        stream_id = aggregate.stream_id(aggregate_id)
        error: Exception | None = None
        events: tuple[E, ...] = ()
        with anyio.fail_after(timeout):
            async with SQLiteEventStore.open(":memory:") as store:
                if self.history:
                    await store.append(stream_id, [stored_form(codec, event) for event in self.history], NO_STREAM)
                async with Runtime(store, [aggregate]) as runtime:
                    ref = runtime.ref(aggregate, aggregate_id)
                    try:
                        outcome = await ref.ask(command, command_id=command_id)
                    except Exception as exc:
                        error = exc
                    else:
                        events = tuple(outcome.events)
                        if command_id is not None:
                            again = await ref.ask(command, command_id=command_id)
                            if not again.duplicate or tuple(again.events) != events or again.version != outcome.version:
                                raise AssertionError(
                                    f"{self._describe(command)}: sent again with command id {command_id!r}, it was "
                                    f"not recognised as a duplicate of the first: {again!r} after {outcome!r}"
                                )
                    state: S = await ref.state()
                stored = await store.read_stream(stream_id, from_version=len(self.history) + 1)
                recovered = await load_state(store, aggregate, aggregate_id, use_snapshot=False)
        written = [codec.decode_record(record) for record in stored]
        problem = list_mismatch(f"{self._describe(command)}: events in the store against the outcome", events, written)
        if problem is not None:
            raise AssertionError(problem)
        problem = value_mismatch(f"{self._describe(command)}: state recovered from the store", state, recovered.state)
        if problem is not None:
            raise AssertionError(f"{problem}\n  (expected is the live actor's state; is evolve deterministic?)")
        return Decision(self, command, events, error, state)


class Decision(Generic[S, C, E]):
    """What `when` found: the events and state after the command, or the error that rejected it.

    Check it with `then(*events)`, `then_rejected(ErrorType, match=...)` and `then_state(...)`; each
    returns the decision (or the error) so checks chain, and `when(...)` continues from the new state.
    """

    __slots__ = ("command", "error", "events", "scenario", "state")

    def __init__(
        self, scenario: AggregateScenario[S, C, E], command: C, events: tuple[E, ...], error: Exception | None, state: S
    ) -> None:
        self.scenario = scenario
        self.command = command
        self.events = events
        self.error = error
        self.state = state

    @property
    def _header(self) -> str:
        return self.scenario._describe(self.command)

    def _rejected(self, expectation: str) -> AssertionError:
        error = self.error
        failure = AssertionError(
            f"{self._header}: expected {expectation}, but the command was rejected with "
            f"{type(error).__qualname__}: {error}"
        )
        failure.__cause__ = error
        return failure

    def then(self, *expected: E) -> Self:
        """The command was accepted and produced exactly `expected`, in order (none: no events)."""
        __tracebackhide__ = True  # pytest shows the test's line, not the kit's
        if self.error is not None:
            described = ", ".join(show(event) for event in expected) or "nothing"
            raise self._rejected(f"events {described}")
        problem = list_mismatch(f"{self._header}: the events decided", list(expected), list(self.events))
        if problem is not None:
            raise AssertionError(problem)
        return self

    def then_rejected(self, error: type[BaseException] = DomainError, *, match: str | None = None) -> BaseException:
        """The command was rejected with an `error` whose message matches the `match` regex; returns it."""
        __tracebackhide__ = True  # pytest shows the test's line, not the kit's
        found = self.error
        if found is None:
            events = "\n".join(f"    {show(event)}" for event in self.events) or "    (none)"
            raise AssertionError(
                f"{self._header}: expected a rejection with {error.__qualname__}, but the command was accepted; "
                f"events:\n{events}"
            )
        if not isinstance(found, error):
            raise self._rejected(f"a rejection with {error.__qualname__}")
        if match is not None and not re.search(match, str(found)):
            raise AssertionError(
                f"{self._header}: rejected with {type(found).__qualname__} as expected, but its message "
                f"{str(found)!r} does not match {match!r}"
            )
        return found

    def then_state(self, expected: S = _UNSET, **fields: object) -> Self:
        """The state after the command equals `expected`, or has these attribute values (or both)."""
        __tracebackhide__ = True  # pytest shows the test's line, not the kit's
        if expected is _UNSET and not fields:  # an expectation of nothing would pass whatever happened
            raise TypeError("then_state() needs the expected state or some of its fields, e.g. then_state(balance=5)")
        if self.error is not None:
            raise self._rejected("a new state")
        if expected is not _UNSET:
            problem = value_mismatch(f"{self._header}: the state after", expected, self.state)
            if problem is not None:
                raise AssertionError(problem)
        wrong = [
            f"  {name}: expected {show(value)}, got {show(getattr(self.state, name, '<no such attribute>'))}"
            for name, value in fields.items()
            if getattr(self.state, name, _UNSET) != value
        ]
        if wrong:
            raise AssertionError(f"{self._header}: the state after differs\n" + "\n".join(wrong))
        return self

    def when(self, command: C) -> Decision[S, C, E]:
        """Continue: decide `command` against the state after this decision."""
        return given(self.scenario.aggregate, *self.scenario.history, *self.events).when(command)
