"""Coalescing routed commands: what is asked of one shard in one turn of the event loop goes in one message.

Each NATS message costs the pure-Python client (and the owner) tens of microseconds on top of the work it
carries, so many callers of a busy shard share one request and one reply. Each caller keeps its own timeout
and its own retries: the batch only carries the messages. The reply names the node that answered, so the
router can address that node directly next time (one subject per node: the commands for all of its
shards then share messages).
"""

from __future__ import annotations

import asyncio
from typing import Any

from nats.aio.client import Client
from nats.errors import MaxPayloadError

from actorsrc.cluster import wire

_MAX_BATCH = 256  # commands in one message


class _Pending:
    __slots__ = ("items", "size")

    def __init__(self) -> None:
        self.items: list[tuple[wire.CommandRequest, float, asyncio.Future[tuple[wire.Reply, str]]]] = []
        self.size = 0


class RequestBatcher:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.pending: dict[str, _Pending] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.messages = 0  # requests sent (a batch counts once)

    async def exchange(self, subject: str, request: wire.CommandRequest, timeout: float) -> tuple[wire.Reply, str]:
        """Send `request` to `subject` (with others asked in this loop turn); its reply, and the node that gave it.

        Raises what `Client.request` raises for the message that carried it (no responders, a NATS
        error, too large), or `TimeoutError` after `timeout`."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[wire.Reply, str]] = loop.create_future()
        future.add_done_callback(_retrieve)
        size = len(wire.encode(request)) + 16  # a batch adds a few bytes per command
        pending = self.pending.get(subject)
        limit = self.client.max_payload // 2
        if pending is not None and (len(pending.items) >= _MAX_BATCH or pending.size + size > limit):
            self._flush(subject)
            pending = None
        if pending is None:
            pending = self.pending[subject] = _Pending()
            loop.call_soon(self._flush, subject)
        pending.items.append((request, timeout, future))
        pending.size += size
        async with asyncio.timeout(timeout):
            return await future

    def _flush(self, subject: str) -> None:
        pending = self.pending.pop(subject, None)
        if pending is None or not pending.items:
            return
        task = asyncio.get_running_loop().create_task(self._send(subject, pending.items))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send(
        self, subject: str, items: list[tuple[wire.CommandRequest, float, asyncio.Future[tuple[wire.Reply, str]]]]
    ) -> None:
        waiting = [(request, timeout, future) for request, timeout, future in items if not future.done()]
        if not waiting:
            return
        timeout = max(timeout for _, timeout, _ in waiting)
        message = wire.CommandBatch([request for request, _, _ in waiting])
        self.messages += 1
        try:
            answer = await self.client.request(subject, wire.encode(message), timeout=timeout)
            reply = wire.decode_reply(answer.data)
        except MaxPayloadError:
            if len(waiting) == 1:
                waiting[0][2].set_exception(MaxPayloadError())
                return
            # Too large together: each on its own (then only one too large alone fails).
            await asyncio.gather(*(self._send(subject, [item]) for item in waiting))
            return
        except Exception as exc:  # the message's fate is each caller's
            for _, _, future in waiting:
                if not future.done():
                    future.set_exception(exc)
            return
        if not isinstance(reply, wire.ReplyBatch):  # a failure that concerns the whole message
            for _, _, future in waiting:
                if not future.done():
                    future.set_result((reply, ""))
            return
        replies = reply.replies
        if len(replies) != len(waiting):
            error = RuntimeError(f"a reply to {len(waiting)} routed commands held {len(replies)} answers")
            for _, _, future in waiting:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, _, future), one in zip(waiting, replies, strict=True):
            if not future.done():
                future.set_result((one, reply.node))


def _retrieve(future: asyncio.Future[Any]) -> None:
    # A caller that timed out no longer awaits its future: its exception must not be logged as lost.
    if not future.cancelled():
        future.exception()
