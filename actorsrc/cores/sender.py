"""The `CommandSender` of a runtime on cores: an instance placed on this process's part gets the command
locally; any other goes to its part's process over that part's Unix socket.

A part with no process (restarting) is asked again with backoff until the caller's timeout, then
`ShardMovingError`. Every routed command carries a command id (one is made when the caller gave none,
marked fresh for the first attempt only), so a retry after a lost reply is recognised by the owner's
store and never runs twice.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Coroutine
from typing import Any

from actorsrc.backoff import exponential_backoff
from actorsrc.cluster import wire
from actorsrc.cores.link import PartLink, PartUnreachable
from actorsrc.cores.placement import part_of
from actorsrc.cores.settings import Cores
from actorsrc.errors import AskTimeoutError, RuntimeClosedError, ShardMovingError
from actorsrc.runtime.ask_checks import checked_limit
from actorsrc.runtime.command_envelope import READ_STATE, StateQuery
from actorsrc.runtime.registry import AggregateEntry
from actorsrc.runtime.sender import AskOptions, CommandSender


class CoresSender:
    """Implements `CommandSender` for a runtime that owns part `index` of `cores`."""

    def __init__(self, local: CommandSender, cores: Cores, index: int) -> None:
        self.local = local
        self.cores = cores
        self.index = index
        self.count = cores.count
        self.links = {part: PartLink(cores, part) for part in range(cores.count) if part != index}
        self.accepting = False
        self.routed = 0
        self.retried = 0
        # Routed command ids: random per sender, then counted (unique without a uuid4 per command).
        self._id_prefix = secrets.token_hex(8)
        self._id_counter = itertools.count()

    def _new_id(self) -> str:
        return f"{self._id_prefix}-{next(self._id_counter):x}"

    @property
    def default_timeout(self) -> float | None:
        return self.local.default_timeout

    def send(
        self, entry: AggregateEntry, aggregate_id: str, command: object | StateQuery, options: AskOptions
    ) -> Coroutine[Any, Any, Any]:
        # A plain function handing back the right coroutine: no extra coroutine frame per ask.
        stream_id = entry.aggregate.stream_id(aggregate_id)
        part = part_of(stream_id, self.count)
        if part == self.index:
            return self.local.send(entry, aggregate_id, command, options)
        return self._route(entry, aggregate_id, command, options, stream_id, part)

    async def _route(
        self,
        entry: AggregateEntry,
        aggregate_id: str,
        command: object | StateQuery,
        options: AskOptions,
        stream_id: str,
        part: int,
    ) -> Any:
        if not self.accepting:
            raise RuntimeClosedError("the runtime is closed or not started; it accepts no commands")
        aggregate = entry.aggregate
        limit = checked_limit(aggregate, command, options, self.default_timeout)
        command_id, causation_id, correlation_id = options.command_id, options.causation_id, options.correlation_id
        fresh = options.fresh_id
        if command_id is None and command is not READ_STATE:
            # Made here, so the first attempt cannot have run before: the owner skips the store lookup.
            command_id, fresh = self._new_id(), True
        command_type, payload = wire.command_payload(command)
        loop = asyncio.get_running_loop()
        deadline = None if limit is None else loop.time() + limit
        link = self.links[part]
        attempt = 0
        why = ""
        while True:
            if not self.accepting:
                raise RuntimeClosedError(
                    "the runtime closed while this command was being routed; it was not sent again"
                )
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise ShardMovingError(
                    f"part {part} of {self.count} ({stream_id!r}) had no process to take "
                    f"{type(command).__qualname__} within {limit} s ({why}); it was not carried out, or its "
                    f"retry will be recognised by its command id {command_id!r}"
                )
            request = wire.CommandRequest(
                aggregate.name,
                aggregate_id,
                command_type,
                payload,
                command_id,
                causation_id,
                correlation_id,
                remaining,
                options.wait_for_space,
                fresh,
            )
            try:
                reply = await link.exchange(request, deadline)
            except PartUnreachable as exc:
                why = str(exc)
            except TimeoutError:
                raise AskTimeoutError(
                    f"{aggregate.name} {aggregate_id!r} (part {part}) did not reply to "
                    f"{type(command).__qualname__} within {limit} s; the command may still be carried out "
                    f"(a retry with command id {command_id!r} is recognised)"
                ) from None
            else:
                self.routed += 1
                if type(reply) is wire.OutcomeReply:
                    return wire.outcome_of(entry, reply)
                if isinstance(reply, wire.StateReply):
                    return wire.state_of(entry, stream_id, reply)
                if isinstance(reply, wire.FailureReply):
                    raise wire.error_of(reply)
                assert isinstance(reply, wire.MovingReply)
                why = reply.reason
            self.retried += 1
            fresh = False  # it may have run: a retry is looked up
            attempt += 1
            pause = exponential_backoff(0.005, 0.25, 0.5, attempt)
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - loop.time()))
            await asyncio.sleep(pause)

    async def close(self) -> None:
        self.accepting = False
        await asyncio.gather(*(link.close() for link in self.links.values()))


def _protocol_check(sender: CoresSender) -> CommandSender:
    return sender
