"""The in-process `CommandSender`: checks an ask, then queues it in the actor's mailbox (creating the
actor on first use), waiting for room when the mailbox or the live-actor cap is full."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from actorsrc.errors import MailboxFullError, RuntimeClosedError
from actorsrc.runtime.actor import AggregateActor
from actorsrc.runtime.ask_checks import checked_limit
from actorsrc.runtime.command_envelope import CommandEnvelope, StateQuery
from actorsrc.runtime.deadlines import Deadlines
from actorsrc.runtime.directory import ActorDirectory
from actorsrc.runtime.host import ActorHost
from actorsrc.runtime.registry import AggregateEntry
from actorsrc.runtime.sender import AskOptions
from actorsrc.runtime.waiting import Waiter, abandon

OnReply = Callable[["asyncio.Future[Any]"], object]
"""What `LocalSender.submit` calls with a command's reply future once it is answered."""
_Bucket = dict["asyncio.Future[Any]", Any]  # the asks due in one deadline tick (see `Deadlines`)


class LocalSender:
    """Implements `CommandSender` for the actors of one `Runtime`; refuses commands unless `accepting`."""

    def __init__(
        self, host: ActorHost, directory: ActorDirectory, mailbox_capacity: int, default_timeout: float | None
    ) -> None:
        self.host = host
        self.directory = directory
        self.mailbox_capacity = mailbox_capacity
        self.default_timeout = default_timeout
        self.accepting = False
        # A cluster's check that this node serves the instance's shard (raises `ShardMovingError` if not);
        # run at delivery, also for a command that waited for room, so none lands on a shard given away.
        self.gate: Callable[[AggregateEntry, str], None] | None = None
        self._deadlines: Deadlines | None = None
        self._later: set[asyncio.Task[None]] = set()  # submitted commands waiting for room

    async def send(
        self, entry: AggregateEntry, aggregate_id: str, command: object | StateQuery, options: AskOptions
    ) -> Any:
        envelope, bucket = self._envelope(entry, aggregate_id, command, options)
        reply = envelope.reply
        try:
            waiter = self._deliver_now(entry, aggregate_id, envelope)
            if waiter is not None:
                self._check_wait(entry, aggregate_id, waiter, options)
                await self._deliver_when_possible(
                    envelope, waiter, lambda: self._deliver_now(entry, aggregate_id, envelope)
                )
            return await reply
        except BaseException:
            if reply.done() and not reply.cancelled():
                reply.exception()  # retrieved: a late timeout must not log "never retrieved"
            else:
                reply.cancel()  # the actor skips a command whose caller is gone
            raise
        finally:
            if bucket is not None:
                bucket.pop(reply, None)

    def submit(
        self,
        entry: AggregateEntry,
        aggregate_id: str,
        command: object | StateQuery,
        options: AskOptions,
        on_reply: OnReply,
    ) -> None:
        """`send` without a coroutine, for answering many commands at once (a routed batch) without a task
        each: queues the command now and calls `on_reply(reply)` from the loop once it is answered (the
        future holds the outcome, the state, or the error: `AskTimeoutError` included). What `send` raises
        before anything is queued is raised here; a command waiting for room waits in a task of its own."""
        envelope, bucket = self._envelope(entry, aggregate_id, command, options)
        reply = envelope.reply
        callback = on_reply if bucket is None else functools.partial(_answered, bucket, on_reply)
        reply.add_done_callback(callback)
        try:
            waiter = self._deliver_now(entry, aggregate_id, envelope)
            if waiter is not None:
                self._check_wait(entry, aggregate_id, waiter, options)
                task = asyncio.get_running_loop().create_task(
                    self._deliver_later(envelope, waiter, lambda: self._deliver_now(entry, aggregate_id, envelope))
                )
                self._later.add(task)
                task.add_done_callback(self._later.discard)
        except BaseException:
            reply.remove_done_callback(callback)  # raised instead: nothing was queued
            reply.cancel()
            if bucket is not None:
                bucket.pop(reply, None)
            raise

    def _envelope(
        self, entry: AggregateEntry, aggregate_id: str, command: object | StateQuery, options: AskOptions
    ) -> tuple[CommandEnvelope, _Bucket | None]:
        """The checked ask's envelope and the deadline bucket its reply is in (None: no timeout)."""
        aggregate = entry.aggregate
        limit = checked_limit(aggregate, command, options, self.default_timeout)
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        envelope = CommandEnvelope(
            command, options.command_id, reply, options.causation_id, options.correlation_id, options.fresh_id
        )
        # A shared timer per tick that fails the reply is far cheaper than a cancel scope per command.
        if limit is None:
            return envelope, None
        deadlines = self._deadlines
        if deadlines is None or deadlines.loop is not loop:
            deadlines = self._deadlines = Deadlines(loop)
        return envelope, deadlines.add(reply, limit, aggregate.name, aggregate_id, command)

    def _check_wait(self, entry: AggregateEntry, aggregate_id: str, waiter: Waiter, options: AskOptions) -> None:
        """A command that found no room may wait for it only if its ask allows."""
        if not options.wait_for_space:
            abandon(waiter)
            raise MailboxFullError(
                f"no room for a command to {entry.aggregate.stream_id(aggregate_id)!r}: its mailbox holds "
                f"{self.mailbox_capacity} commands, or all {len(self.directory)} live actors are busy"
            )

    def _deliver_now(self, entry: AggregateEntry, aggregate_id: str, envelope: CommandEnvelope) -> Waiter | None:
        """Queue `envelope`, or return a waiter that resolves when it is worth trying again."""
        if not self.accepting:
            raise RuntimeClosedError("the runtime is closed or not started; it accepts no commands")
        if self.gate is not None:
            self.gate(entry, aggregate_id)
        found = self.directory.lookup(
            (entry.aggregate.name, aggregate_id), lambda: AggregateActor(self.host, entry, aggregate_id)
        )
        if not isinstance(found, AggregateActor):
            return found  # at the live-actor cap with every actor busy
        actor = found
        if len(actor.mailbox) >= self.mailbox_capacity:
            return actor.wait_for_space()
        actor.last_used = asyncio.get_running_loop().time()
        actor.deliver(envelope)
        if not actor.running:
            actor.start()
        return None

    async def _deliver_when_possible(
        self, envelope: CommandEnvelope, waiter: Waiter, deliver: Callable[[], Waiter | None]
    ) -> None:
        pending: Waiter | None = waiter
        try:
            while pending is not None:
                # The reply future carries the timeout: stop waiting when it expires.
                await asyncio.wait([pending[0], envelope.reply], return_when=asyncio.FIRST_COMPLETED)
                if envelope.reply.done():
                    return
                pending = deliver()  # None once delivered; if it raises, `finally` passes the wake-up on
        finally:
            if pending is not None:
                abandon(pending)

    async def _deliver_later(
        self, envelope: CommandEnvelope, waiter: Waiter, deliver: Callable[[], Waiter | None]
    ) -> None:
        """A submitted command's wait for room: what `send` would raise fails its reply instead."""
        reply = envelope.reply
        try:
            await self._deliver_when_possible(envelope, waiter, deliver)
        except asyncio.CancelledError:
            reply.cancel()  # never queued
            raise
        except Exception as exc:  # never queued (closed, or the shard moved)
            if not reply.done():
                reply.set_exception(exc)

    def wake_all_waiters(self) -> None:
        """Closing: every caller waiting for room or space wakes up, and is told the runtime closed."""
        self.directory.wake_all()
        for actor in self.directory.actors.values():
            actor.wake_space_waiters(len(actor.space_waiters or ()))


def _answered(bucket: _Bucket, on_reply: OnReply, reply: asyncio.Future[Any]) -> None:
    bucket.pop(reply, None)  # answered: its deadline no longer concerns anyone
    on_reply(reply)
