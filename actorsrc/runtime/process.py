"""Runs a process manager: events in, commands out, state and checkpoint saved together.

Commands go out before the state and checkpoint commit. If the process dies in between, the events
are delivered again and the same commands go out again with the same deterministic ids, which the
target aggregates recognise as duplicates: a command's effect happens once.

A target remembers only commands that wrote events, so the runner itself remembers the ids of
commands that were rejected or wrote nothing (in the same commit as its checkpoint, and kept across
rebuilds): a replay does not send them again, where they might now be accepted. The one gap: a
process killed after such a command and before that commit sends it once more on restart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import anyio
import msgspec

from actorsrc.errors import DomainError, HandlerTimeoutError
from actorsrc.observability import logger
from actorsrc.projection import EventEnvelope, ProcessManager, Send
from actorsrc.readmodel.base import Checkpoint, ReadModel

if TYPE_CHECKING:
    from actorsrc.domain import Aggregate
    from actorsrc.runtime.ref import AggregateRef


class Addressing(Protocol):
    """How a process manager reaches the aggregates it sends commands to."""

    def ref(self, aggregate: Aggregate[Any, Any, Any], aggregate_id: str) -> AggregateRef[Any, Any, Any]: ...


_encode = msgspec.json.Encoder().encode


def _independent_groups(
    planned: dict[str, list[tuple[Send, EventEnvelope[Any], str]]],
) -> list[list[tuple[Send, EventEnvelope[Any], str]]]:
    """Partition the sends so that two sharing a manager instance or a target stream land in one group,
    each group in event (position) order."""
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    sends = [(key, item) for key, items in planned.items() for item in items]
    for key, (send, _, _) in sends:
        parent[root(f"k:{key}")] = root(f"t:{send.aggregate.stream_id(send.aggregate_id)}")
    groups: dict[str, list[tuple[Send, EventEnvelope[Any], str]]] = {}
    for key, item in sorted(sends, key=lambda pair: (pair[1][1].position, pair[1][2])):
        groups.setdefault(root(f"k:{key}"), []).append(item)
    return list(groups.values())


def command_id_for(manager: str, envelope: EventEnvelope[Any], index: int) -> str:
    """The id of the `index`-th command `manager` sends for `envelope`: the same on every replay."""
    return f"{manager}:{envelope.metadata.event_id}:{index}"


class ProcessRunner:
    def __init__(self, manager: ProcessManager[Any], addressing: Addressing, read_model: ReadModel) -> None:
        self.manager = manager
        self.addressing = addressing
        self.read_model = read_model
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(manager.state_type or type(manager.initial))
        self.commands_sent = 0
        self.commands_rejected = 0

    async def _load(self, key: str) -> Any:
        name = self.manager.name
        raw = await self.read_model.load_process_state(name, key)
        return self.manager.initial if raw is None else self._decoder.decode(raw)

    async def apply(
        self,
        envelopes: list[EventEnvelope[Any]],
        checkpoint: Checkpoint | None,
        unpark: int | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """React to `envelopes`, send the commands, then save states and the checkpoint in one commit.

        The manager's own failures (`key`, `react`, a command that fails other than by the store)
        raise as themselves; sending that takes longer than `timeout` seconds raises
        `HandlerTimeoutError`; the read model's and the store's failures raise as `StoreError`s."""
        manager = self.manager
        keyed = [(key, envelope) for envelope in envelopes if (key := manager.key(envelope)) is not None]
        states: dict[str, Any] = {}
        for key, _ in keyed:
            if key not in states:
                states[key] = await self._load(key)
        planned: dict[str, list[tuple[Send, EventEnvelope[Any], str]]] = {}  # per instance, in event order
        for key, envelope in keyed:
            state, sends = manager.react(states[key], envelope)
            states[key] = state
            planned.setdefault(key, []).extend(
                (send, envelope, command_id_for(manager.name, envelope, i)) for i, send in enumerate(sends)
            )
        ids = [command_id for sends in planned.values() for _, _, command_id in sends]
        settled_before = await self.read_model.settled_commands(manager.name, ids) if ids else set()
        settled_now: dict[str, str] = {}
        failures: list[BaseException] = []

        async def send_in_order(sends: list[tuple[Send, EventEnvelope[Any], str]]) -> None:
            try:
                for send, envelope, command_id in sends:
                    if command_id not in settled_before:
                        outcome = await self._send(send, envelope, command_id)
                        if outcome is not None:
                            settled_now[command_id] = outcome
            except Exception as exc:  # the first failure is re-raised as itself, after the others finish
                failures.append(exc)

        # Commands that share an instance or a target go out in event order; independent ones go out
        # together, so a batch costs a few group commits rather than one per command.
        with anyio.move_on_after(timeout) as deadline:
            async with anyio.create_task_group() as tg:
                for group in _independent_groups(planned):
                    tg.start_soon(send_in_order, group)
        if deadline.cancelled_caught:
            raise HandlerTimeoutError(
                f"process manager {manager.name!r} took longer than its timeout of {timeout} s sending {len(ids)} "
                f"commands for positions {envelopes[0].position}-{envelopes[-1].position}; the batch is retried "
                "(commands that went through are recognised by their ids)"
            )
        if failures:
            raise failures[0]
        encoded = {key: _encode(state) for key, state in states.items()}
        await self.read_model.save_process(manager.name, encoded, settled_now, checkpoint, unpark)

    async def _send(self, send: Send, envelope: EventEnvelope[Any], command_id: str) -> str | None:
        """Send one command; returns how it settled when the target will not remember it."""
        ref = self.addressing.ref(send.aggregate, send.aggregate_id)
        try:
            outcome = await ref.ask(
                send.command,
                command_id=command_id,
                causation_id=envelope.metadata.event_id,
                correlation_id=envelope.metadata.correlation_id,
            )
        except DomainError as rejected:
            self.commands_rejected += 1
            logger.warning(
                "process.command_rejected",
                manager=self.manager.name,
                position=envelope.position,
                command=type(send.command).__name__,
                aggregate_id=send.aggregate_id,
                error=str(rejected),
            )
            return f"rejected: {type(rejected).__name__}: {rejected}"[:1000]
        self.commands_sent += 1
        return None if outcome.events else "accepted, no events"
