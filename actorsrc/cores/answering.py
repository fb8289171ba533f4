"""Answering a routed batch: each command runs through this process's own actors exactly as a local
`ask` would, and the batch's reply is ready once every command's events are durable. Shared by the cores'
Unix sockets and the cluster's NATS requests (`actorsrc.cluster.shard_server`).

No task or coroutine per command: each is queued with `LocalSender.submit` and answered from its reply
future's done-callback; the last one to be answered sends the batch's reply.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from typing import Any

from actorsrc.cluster import wire
from actorsrc.errors import RuntimeClosedError, ShardMovingError, UnknownCommandError
from actorsrc.observability import logger
from actorsrc.runtime.command_envelope import READ_STATE
from actorsrc.runtime.local_sender import LocalSender
from actorsrc.runtime.registry import AggregateEntry, validate_aggregate_id

Respond = Callable[[bytes], object]


class _Batch:
    """The replies of one batch so far; `respond` gets them encoded once the last one is in."""

    __slots__ = ("left", "name", "replies", "respond")

    def __init__(self, size: int, respond: Respond, name: str) -> None:
        self.replies: list[wire.Reply | None] = [None] * size
        self.left = size
        self.respond = respond
        self.name = name

    def put(self, index: int, reply: wire.Reply) -> None:
        self.replies[index] = reply
        self.left -= 1
        if self.left == 0:
            self.respond(wire.encode(wire.ReplyBatch(self.replies, self.name)))  # type: ignore[arg-type]


class BatchAnswerer:
    """Answers routed batches for the instances `serves` says this process owns now.

    `name` (a part, a node id) is what replies carry as the answerer's; `moving`: the errors that mean
    nothing was written and the caller should ask again (a `MovingReply`).
    """

    def __init__(
        self,
        entries: Mapping[str, AggregateEntry],
        local: LocalSender,
        serves: Callable[[str], bool],
        name: str,
        *,
        moving: tuple[type[BaseException], ...] = (ShardMovingError, RuntimeClosedError),
    ) -> None:
        self.entries = entries
        self.local = local
        self.serves = serves  # stream id -> whether this process owns it and takes commands now
        self.name = name
        self.moving = moving
        self.served = 0

    async def answer(self, data: bytes) -> bytes:
        """The encoded reply to the batch (or single command) `data`."""
        reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.start(data, functools.partial(_resolve, reply))
        return await reply

    def start(self, data: bytes, respond: Respond) -> None:
        """Queue every command of `data`; `respond(encoded reply)` is called once, when all are answered
        (at once if none could be queued)."""
        try:
            message = wire.decode_request(data)
        except Exception as exc:
            respond(wire.encode_failure(UnknownCommandError(f"a routed command could not be decoded: {exc}")))
            return
        requests = message.requests if isinstance(message, wire.CommandBatch) else [message]
        if not requests:
            respond(wire.encode(wire.ReplyBatch([], self.name)))
            return
        batch = _Batch(len(requests), respond, self.name)
        for index, request in enumerate(requests):
            # Each command as if it came alone, all at once (a command waits for its batch to be durable).
            reply = self._queue(request, batch, index)
            if reply is not None:
                batch.put(index, reply)

    def _queue(self, request: wire.CommandRequest, batch: _Batch, index: int) -> wire.Reply | None:
        """Queue one command (None), or its reply when it cannot be queued."""
        entry = self.entries.get(request.aggregate)
        if entry is None:
            return wire.failure_reply(
                UnknownCommandError(f"aggregate {request.aggregate!r} is not registered on {self.name}")
            )
        try:
            validate_aggregate_id(entry.aggregate, request.aggregate_id)
        except Exception as exc:
            return wire.failure_reply(exc)
        stream_id = entry.aggregate.stream_id(request.aggregate_id)
        if not self.serves(stream_id):
            return wire.MovingReply(f"{stream_id!r} is not served by {self.name}")
        try:
            command = wire.decode_command(entry, request)
            answered = functools.partial(self._answered, batch, index, entry, command is READ_STATE)
            self.local.submit(entry, request.aggregate_id, command, wire.request_options(request), answered)
        except self.moving as exc:  # nothing was written: the caller asks again
            return wire.MovingReply(str(exc))
        except Exception as exc:
            return wire.failure_reply(exc)
        return None

    def _answered(
        self, batch: _Batch, index: int, entry: AggregateEntry, state: bool, reply: asyncio.Future[Any]
    ) -> None:
        try:
            one = self._reply(entry, state, reply)
        except Exception as bug:  # the batch must still be answered
            logger.error("routing.reply_failed", error=repr(bug))
            one = wire.failure_reply(bug)
        batch.put(index, one)

    def _reply(self, entry: AggregateEntry, state: bool, reply: asyncio.Future[Any]) -> wire.Reply:
        if reply.cancelled():  # never queued: this process is stopping
            return wire.MovingReply(f"{self.name} stopped before the command was queued")
        error = reply.exception()
        if error is not None:
            if isinstance(error, self.moving):
                return wire.MovingReply(str(error))
            return wire.failure_reply(error)
        self.served += 1
        if state:
            return wire.state_reply(entry, reply.result())
        return wire.outcome_reply(entry, reply.result())


def _resolve(future: asyncio.Future[bytes], data: bytes) -> None:
    if not future.done():  # its awaiter may have been cancelled
        future.set_result(data)
