"""What a caller gets back from a command, and what travels through a mailbox."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class CommandOutcome(Generic[E]):
    """A command's durable result.

    `version` is the stream's version after the command; `position` is the global position of its
    last event (or of the stream's last event when the command produced none), the position to wait
    for when reading your own writes.
    """

    stream_id: str
    version: int
    position: int
    events: tuple[E, ...]


class StateQuery:
    """Mailbox marker for a state query: answered in order with commands, writes nothing."""

    def __repr__(self) -> str:
        return "READ_STATE"


READ_STATE: Any = StateQuery()


class Envelope:
    """A command in a mailbox with the future its caller awaits."""

    __slots__ = ("command", "command_id", "reply")

    def __init__(self, command: Any, command_id: str | None, reply: asyncio.Future[Any]) -> None:
        self.command = command
        self.command_id = command_id
        self.reply = reply
