"""The sending port: what an `AggregateRef` talks to, and the options of one `ask`.

`LocalSender` delivers into this process's actors; routing a command elsewhere is another
implementation of `CommandSender`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import msgspec

if TYPE_CHECKING:
    from actorsrc.projection import Handler
    from actorsrc.runtime.command_envelope import StateQuery
    from actorsrc.runtime.registry import AggregateEntry


class AskOptions(msgspec.Struct, frozen=True):
    """How one command is sent (see `AggregateRef.ask`); checked by the sender before anything is queued."""

    timeout: float | None = None  # None: the sender's default_timeout
    command_id: str | None = None
    causation_id: str | None = None
    correlation_id: str | None = None
    wait_for_space: bool = True
    fresh_id: bool = False  # set by a cluster's router: `command_id` was made for this send (see CommandEnvelope)


DEFAULT_ASK = AskOptions()


class CommandSender(Protocol):
    @property
    def default_timeout(self) -> float | None:
        """The timeout of an ask that gives none (None: wait forever)."""

    async def send(
        self, entry: AggregateEntry, aggregate_id: str, command: object | StateQuery, options: AskOptions
    ) -> Any:
        """Deliver `command` to the instance and return its outcome (or the state, for `READ_STATE`)."""


class HandlerWaits(Protocol):
    """Read-your-writes: waiting until a handler has processed a position."""

    def check(self, handler: Handler | str) -> None:
        """`ConfigurationError` unless `handler` is registered."""

    async def wait_for(self, handler: Handler | str, position: int, timeout: float) -> None: ...
