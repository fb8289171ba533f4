"""A handle to one aggregate instance: what callers send commands through."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Generic, TypeVar

from actorsrc.errors import ConfigurationError, WaitTimeoutError
from actorsrc.projection import Handler, ProcessManager, Projection
from actorsrc.runtime.ask_checks import check_flag, check_timeout
from actorsrc.runtime.command_envelope import READ_STATE
from actorsrc.runtime.outcome import CommandOutcome
from actorsrc.runtime.sender import DEFAULT_ASK, AskOptions, CommandSender, HandlerWaits

if TYPE_CHECKING:
    from actorsrc.runtime.registry import AggregateEntry

S = TypeVar("S")
C = TypeVar("C")
E = TypeVar("E")


class AggregateRef(Generic[S, C, E]):
    """Sends commands to one aggregate instance."""

    __slots__ = ("_entry", "_sender", "_waits", "aggregate_id")

    def __init__(self, sender: CommandSender, entry: AggregateEntry, aggregate_id: str, waits: HandlerWaits) -> None:
        self._sender = sender
        self._entry = entry
        self.aggregate_id = aggregate_id
        self._waits = waits

    async def ask(
        self,
        command: C,
        *,
        timeout: float | None = None,
        command_id: str | None = None,
        causation_id: str | None = None,
        correlation_id: str | None = None,
        wait_for_space: bool = True,
        consistency: Iterable[Handler | str] = (),
    ) -> CommandOutcome[E]:
        """Send `command` and wait until its events are durable.

        Returns the outcome (new version, global position, events). Raises the aggregate's
        `DomainError` if the command is rejected, `AskTimeoutError` after `timeout` seconds (default:
        the runtime's `default_timeout`), and `MailboxFullError` when the mailbox is full and
        `wait_for_space` is false.

        `command_id` makes the command idempotent on this instance: sending the same id again, however
        much later, returns the original outcome (with ``duplicate=True``) and writes nothing. Only
        commands that wrote events are remembered. `causation_id` and `correlation_id` are recorded in
        the events' metadata (both default to the command id).

        `consistency=[projection, ...]` returns only once those handlers have processed the command's
        events (read-your-writes in one call); the wait shares the `timeout`.

        Every argument is checked before the command is sent, so a mistake writes nothing:
        `UnknownCommandError` for a command the aggregate does not declare, `ConfigurationError` for a
        handler that is not registered or a bad timeout, id or flag, `LimitExceededError` for an id over
        512 characters.
        """
        if timeout is not None:
            check_timeout(timeout)
        if wait_for_space is not True and wait_for_space is not False:
            check_flag("wait_for_space", wait_for_space)
        if consistency:
            handlers = self._registered_handlers(consistency)
            started = asyncio.get_running_loop().time()
        options = (
            DEFAULT_ASK
            if timeout is None
            and command_id is None
            and causation_id is None
            and correlation_id is None
            and wait_for_space is True
            else AskOptions(timeout, command_id, causation_id, correlation_id, wait_for_space)
        )
        outcome: CommandOutcome[E] = await self._sender.send(self._entry, self.aggregate_id, command, options)
        if consistency:
            limit = timeout if timeout is not None else self._sender.default_timeout or 30.0
            remaining = max(0.001, limit - (asyncio.get_running_loop().time() - started))
            for handler in handlers:
                try:
                    await self._waits.wait_for(handler, outcome.position, remaining)
                except WaitTimeoutError as exc:  # say that the write happened, so nobody sends it again
                    raise WaitTimeoutError(
                        f"{exc}; the command itself was carried out ({outcome.stream_id!r} version "
                        f"{outcome.version}, position {outcome.position}): do not send it again",
                        outcome=outcome,
                    ) from exc
        return outcome

    def _registered_handlers(self, consistency: Iterable[Handler | str]) -> tuple[Handler | str, ...]:
        """The handlers to wait for, each registered with the runtime, or `ConfigurationError`."""
        if isinstance(consistency, str | Projection | ProcessManager):
            raise ConfigurationError(
                "consistency takes a list of handlers or handler names, e.g. "
                f"consistency=[{consistency if isinstance(consistency, str) else consistency.name}]; "
                "the command was not sent"
            )
        handlers = tuple(consistency)
        for handler in handlers:
            if not isinstance(handler, str | Projection | ProcessManager):
                raise ConfigurationError(
                    f"ask(consistency=...): {handler!r} is neither a handler nor a handler name; "
                    "the command was not sent"
                )
            try:
                self._waits.check(handler)
            except ConfigurationError as exc:
                raise ConfigurationError(f"ask(consistency=...): {exc}; the command was not sent") from None
        return handlers

    async def state(self, *, timeout: float | None = None) -> S:
        """The instance's current state, as its actor holds it.

        The query waits in the mailbox like a command, so it sees the effect of every command sent
        before it; it writes nothing.
        """
        if timeout is not None:
            check_timeout(timeout)
        options = DEFAULT_ASK if timeout is None else AskOptions(timeout)
        state: S = await self._sender.send(self._entry, self.aggregate_id, READ_STATE, options)
        return state

    def __repr__(self) -> str:
        return f"AggregateRef({self._entry.aggregate.name!r}, {self.aggregate_id!r})"
