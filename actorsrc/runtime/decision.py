"""Deciding a batch of commands against an actor's state: the synchronous heart of the actor.

`decide_batch` runs every command of a batch in order against the evolving state and collects the
events to append; `BatchDecision.complete` applies the append's result and replies to each caller.
Nothing here awaits, so the same code serves the actor's task and its task-free fast path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from actorsrc.errors import CommandIdConflictError, InvalidDecisionError, UnregisteredEventError
from actorsrc.records import AppendResult, NewEvent, next_event_id
from actorsrc.runtime.command_digest import command_digest, describe
from actorsrc.runtime.command_envelope import READ_STATE, CommandEnvelope
from actorsrc.runtime.outcome import CommandOutcome

if TYPE_CHECKING:
    from actorsrc.runtime.registry import AggregateEntry


class Crash(Exception):
    """The actor's state is unknown; the callers concerned have had their error already.

    `rest` holds the batch's commands that were never decided, to be queued again.
    """

    def __init__(self, reason: str, cause: BaseException, rest: list[CommandEnvelope] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause
        self.rest = rest or []


class Decided:
    """A command accepted in this batch: its events and where they sit in the append."""

    __slots__ = ("envelope", "events", "offset", "outcome", "version")

    def __init__(self, envelope: CommandEnvelope, events: tuple[Any, ...], offset: int, version: int) -> None:
        self.envelope = envelope
        self.events = events
        self.offset = offset
        self.version = version
        self.outcome: CommandOutcome[Any] | None = None


class BatchDecision:
    __slots__ = (
        "accepted",
        "batch",
        "evolve_failure",
        "handled",
        "new_events",
        "reads",
        "rejected",
        "repeats",
        "rest",
        "state",
        "version",
    )

    def __init__(self, batch: list[CommandEnvelope], state: Any, version: int) -> None:
        self.batch = batch
        self.state = state
        self.version = version
        self.accepted: list[Decided] = []
        self.rejected: list[tuple[CommandEnvelope, Exception]] = []
        self.reads: list[tuple[CommandEnvelope, Any]] = []
        self.repeats: list[tuple[CommandEnvelope, CommandOutcome[Any] | Decided]] = []
        self.new_events: list[NewEvent] = []
        self.evolve_failure: tuple[CommandEnvelope, Exception] | None = None
        self.handled = batch
        self.rest: list[CommandEnvelope] = []

    def fail(self, error: BaseException) -> None:
        """The append failed: every decided caller gets `error` (rejections and reads relied on it too)."""
        for envelope in self.handled:
            fail(envelope, error)

    def reply(self, stream_id: str, result: AppendResult | None, position_before: int) -> int:
        """Answer every caller of the batch; returns the stream's last position afterwards."""
        first_position = result.first_position if result is not None else 0
        last_position = result.last_position if result is not None else position_before
        for decided in self.accepted:
            count = len(decided.events)
            if count:
                position = first_position + decided.offset + count - 1
            else:  # the stream's last event at that point of the batch
                position = first_position + decided.offset - 1 if decided.offset else position_before
            digest = decided.envelope.command_digest
            decided.outcome = CommandOutcome(stream_id, decided.version, position, decided.events, False, digest)
            reply = decided.envelope.reply
            if not reply.done():
                reply.set_result(decided.outcome)
        for envelope, earlier in self.repeats:
            original = earlier.outcome if isinstance(earlier, Decided) else earlier
            if not envelope.reply.done() and original is not None:
                envelope.reply.set_result(dataclasses.replace(original, duplicate=True))
        for envelope, error in self.rejected:
            fail(envelope, error)
        for envelope, read in self.reads:
            if not envelope.reply.done():
                envelope.reply.set_result(read)
        return last_position


def decide_batch(
    entry: AggregateEntry,
    state: Any,
    version: int,
    batch: list[CommandEnvelope],
    recorded: dict[str, CommandOutcome[Any]],
) -> BatchDecision:
    """Decide each command in order; `recorded` holds outcomes of command ids handled before."""
    aggregate = entry.aggregate
    encode = entry.codec.encode
    decide, evolve = aggregate.decide, aggregate.evolve
    decision = BatchDecision(batch, state, version)
    new_events = decision.new_events
    in_batch: dict[str, Decided] = {}
    for index, envelope in enumerate(batch):
        if envelope.command is READ_STATE:  # answered with the state after the commands before it
            decision.reads.append((envelope, state))
            continue
        command_id = envelope.command_id
        if command_id is not None:
            envelope.command_digest = digest = command_digest(envelope.command)
            earlier = recorded.get(command_id) or in_batch.get(command_id)
            if earlier is not None:  # handled before: the original outcome, nothing new
                conflict = _conflict(aggregate.name, command_id, digest, earlier, envelope.command)
                if conflict is None:
                    decision.repeats.append((envelope, earlier))
                else:
                    decision.rejected.append((envelope, conflict))
                continue
        try:
            produced = decide(state, envelope.command)
            if type(produced) is not list and type(produced) is not tuple:  # the usual cases cost these checks
                produced = _as_events(aggregate.name, envelope.command, produced)
            encoded = [
                NewEvent(name, data, envelope.metadata(next_event_id()), schema_version)
                for name, schema_version, data in map(encode, produced)
            ]
        except UnregisteredEventError as exc:  # decide returned something that is not one of its events
            decision.rejected.append((envelope, _unregistered(aggregate.name, envelope.command, exc)))
            continue
        except Exception as exc:  # a DomainError, or a bug in decide: that caller's error only
            decision.rejected.append((envelope, exc))
            continue
        events = tuple(produced)
        try:
            next_state = state
            for event in events:
                next_state = evolve(next_state, event)
        except Exception as exc:  # evolve must not fail: the actor cannot trust its state any more
            decision.evolve_failure = (envelope, exc)
            # Commands after this one were not decided: back to the mailbox, for after the restart.
            decision.handled, decision.rest = batch[: index + 1], batch[index + 1 :]
            break
        decided = Decided(envelope, events, len(new_events), version + len(events))
        decision.accepted.append(decided)
        if command_id is not None and events:  # only commands that wrote events are remembered
            in_batch[command_id] = decided
        new_events.extend(encoded)
        state, version = next_state, version + len(events)
    decision.state, decision.version = state, version
    return decision


def _as_events(aggregate: str, command: object, produced: object) -> Sequence[Any]:
    """`produced` if it is a sequence of events, else `InvalidDecisionError` naming the aggregate and command."""
    if isinstance(produced, Sequence) and not isinstance(produced, str | bytes | bytearray):
        return produced
    raise InvalidDecisionError(
        f"{aggregate}.decide returned {describe(produced)} for {type(command).__qualname__}; return a list of events "
        "(an empty list to change nothing)"
    )


def _unregistered(aggregate: str, command: object, error: UnregisteredEventError) -> InvalidDecisionError:
    invalid = InvalidDecisionError(
        f"{aggregate}.decide returned an object that is not one of its events for {type(command).__qualname__}: {error}"
    )
    invalid.__cause__ = error
    return invalid


def _conflict(
    aggregate: str, command_id: str, digest: str | None, earlier: CommandOutcome[Any] | Decided, command: object
) -> CommandIdConflictError | None:
    """`CommandIdConflictError` if `command_id` was used before for another command, else None.

    Commands without a digest (events written before digests existed, or a command msgspec cannot
    encode) cannot be compared: they count as the same command, as they always did.
    """
    earlier_digest = earlier.envelope.command_digest if isinstance(earlier, Decided) else earlier.command_digest
    if digest is None or earlier_digest is None or digest == earlier_digest:
        return None
    return CommandIdConflictError(
        f"{aggregate}: command id {command_id!r} was used before for another command, so {describe(command)} "
        "was not carried out; a command id names one command: retry only that same command with it, and give a "
        "new command a new id"
    )


def fail(envelope: CommandEnvelope, error: BaseException) -> None:
    if not envelope.reply.done():
        envelope.reply.set_exception(error)
