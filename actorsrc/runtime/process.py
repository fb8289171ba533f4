"""Runs a process manager: events in, commands out, state and checkpoint saved together.

Commands go out before the state and checkpoint commit. If the process dies in between, the events
are delivered again and the same commands go out again with the same deterministic ids, which the
target aggregates recognise as duplicates: a command's effect happens once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from actorsrc.errors import DomainError
from actorsrc.observability import logger
from actorsrc.projection import EventEnvelope, ProcessManager, Send
from actorsrc.readmodel.sqlite import SQLiteReadModel, load_process_state, save_process_state

if TYPE_CHECKING:
    from actorsrc.runtime.runtime import Runtime

_encode = msgspec.json.Encoder().encode


def command_id_for(manager: str, envelope: EventEnvelope[Any], index: int) -> str:
    """The id of the `index`-th command `manager` sends for `envelope`: the same on every replay."""
    return f"{manager}:{envelope.metadata.event_id}:{index}"


class ProcessRunner:
    def __init__(self, manager: ProcessManager[Any], runtime: Runtime, read_model: SQLiteReadModel) -> None:
        self.manager = manager
        self.runtime = runtime
        self.read_model = read_model
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(manager.state_type or type(manager.initial))
        self.commands_sent = 0
        self.commands_rejected = 0

    async def _load(self, key: str) -> Any:
        name = self.manager.name
        raw = await self.read_model.run(lambda conn: load_process_state(conn, name, key))
        return self.manager.initial if raw is None else self._decoder.decode(raw)

    async def apply(
        self,
        envelopes: list[EventEnvelope[Any]],
        checkpoint: tuple[str, int] | None,
        also: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        manager = self.manager
        states: dict[str, Any] = {}
        for envelope in envelopes:
            key = manager.key(envelope)
            if key is None:
                continue
            state = states[key] if key in states else await self._load(key)
            state, sends = manager.react(state, envelope)
            states[key] = state
            for index, send in enumerate(sends):
                await self._send(send, envelope, index)
        encoded = {key: _encode(state) for key, state in states.items()}

        def save(conn: sqlite3.Connection) -> None:
            for key, data in encoded.items():
                save_process_state(conn, manager.name, key, data)
            if also is not None:
                also(conn)

        await self.read_model.transaction(save, checkpoint=checkpoint)

    async def _send(self, send: Send, envelope: EventEnvelope[Any], index: int) -> None:
        ref = self.runtime.ref(send.aggregate, send.aggregate_id)
        try:
            await ref.ask(
                send.command,
                command_id=command_id_for(self.manager.name, envelope, index),
                causation_id=envelope.metadata.event_id,
                correlation_id=envelope.metadata.correlation_id,
            )
            self.commands_sent += 1
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
