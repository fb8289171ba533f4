"""What travels through an actor's mailbox: a command (or a state query) with the future its caller awaits."""

from __future__ import annotations

import asyncio
from typing import Any, Final, final

from actorsrc.records import Metadata


@final
class StateQuery:
    """Mailbox marker for a state query: answered in order with commands, writes nothing.

    Its one instance is `READ_STATE`; compare with `is`.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "READ_STATE"


READ_STATE: Final[StateQuery] = StateQuery()
"""Sent in place of a command to read the instance's state (see `AggregateRef.state`)."""


class CommandEnvelope:
    """A command (or `READ_STATE`) in a mailbox with the future its caller awaits and the ask's ids."""

    __slots__ = ("causation_id", "command", "command_digest", "command_id", "correlation_id", "fresh_id", "reply")

    def __init__(
        self,
        command: object | StateQuery,
        command_id: str | None,
        reply: asyncio.Future[Any],
        causation_id: str | None = None,
        correlation_id: str | None = None,
        fresh_id: bool = False,
    ) -> None:
        self.command = command
        self.command_id = command_id
        self.reply = reply
        self.causation_id = causation_id
        self.correlation_id = correlation_id
        # The command id was made for this very send (a routed command's first attempt): it cannot be in
        # the store yet, so the actor neither looks it up nor keeps its outcome in memory.
        self.fresh_id = fresh_id
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
