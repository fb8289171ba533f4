"""What a caller gets back from a command, and what travels through a mailbox."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from actorsrc.records import Metadata

E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class CommandOutcome(Generic[E]):
    """A command's durable result.

    `version` is the stream's version after the command; `position` is the global position of its
    last event (or of the stream's last event when the command produced none), the position to wait
    for when reading your own writes. `duplicate` is True when the command id had been handled
    before: the outcome is the original one and nothing new was written. `command_digest` is the
    digest of the command that produced it when it was sent with a command id (see `command_digest`
    in the events' metadata), None otherwise or for events written before digests existed.
    """

    stream_id: str
    version: int
    position: int
    events: tuple[E, ...]
    duplicate: bool = False
    command_digest: str | None = field(default=None, repr=False, compare=False)


class StateQuery:
    """Mailbox marker for a state query: answered in order with commands, writes nothing."""

    def __repr__(self) -> str:
        return "READ_STATE"


READ_STATE: Any = StateQuery()


class Envelope:
    """A command in a mailbox with the future its caller awaits."""

    __slots__ = ("causation_id", "command", "command_digest", "command_id", "correlation_id", "reply")

    def __init__(
        self,
        command: Any,
        command_id: str | None,
        reply: asyncio.Future[Any],
        causation_id: str | None = None,
        correlation_id: str | None = None,
    ) -> None:
        self.command = command
        self.command_id = command_id
        self.reply = reply
        self.causation_id = causation_id
        self.correlation_id = correlation_id
        self.command_digest: str | None = None  # set when a command with an id is decided

    def metadata(self, event_id: str) -> Metadata:
        """Metadata of an event this command causes: the chain command -> event -> command -> ... ."""
        command_id = self.command_id
        return Metadata(
            event_id,
            command_id,
            self.causation_id or command_id,
            self.correlation_id or command_id or event_id,
            self.command_digest,
        )
