"""Serving routed commands: a request for a shard this node serves runs through its local actor exactly
as a local `ask` would, and the reply goes back once the events are durable."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from nats.aio.msg import Msg
from nats.errors import MaxPayloadError

from actorsrc.cluster import wire
from actorsrc.errors import ClusterError, FencedAppendError, ShardMovingError, UnknownCommandError
from actorsrc.observability import logger
from actorsrc.runtime.command_envelope import READ_STATE
from actorsrc.runtime.registry import AggregateEntry, validate_aggregate_id
from actorsrc.runtime.sender import CommandSender


class ShardServer:
    def __init__(
        self,
        entries: Mapping[str, AggregateEntry],
        local: CommandSender,
        serves: Callable[[str], bool],
        node_id: str,
    ) -> None:
        self.node_id = node_id
        self.entries = entries
        self.local = local
        self.serves = serves  # stream id -> whether this node serves its shard now (lease valid)
        self.served = 0

    async def handle(self, msg: Msg) -> None:
        try:
            data = await self._answer(msg.data)
        except Exception as bug:
            logger.error("cluster.serve_failed", error=repr(bug))
            data = wire.encode_failure(bug)
        try:
            try:
                await msg.respond(data)
            except MaxPayloadError:  # the commands ran; only the reply is too large to carry
                await msg.respond(self._too_large(msg.data, len(data)))
        except Exception as exc:
            logger.warning("cluster.reply_failed", error=repr(exc))

    async def _answer(self, data: bytes) -> bytes:
        try:
            message = wire.decode_request(data)
        except Exception as exc:
            return wire.encode_failure(UnknownCommandError(f"a routed command could not be decoded: {exc}"))
        requests = message.requests if isinstance(message, wire.CommandBatch) else [message]
        # Each command as if it came alone, all at once (a command waits for its batch to be durable).
        replies = await asyncio.gather(*(self._answer_one(request) for request in requests))
        return wire.encode(wire.ReplyBatch(list(replies), self.node_id))

    async def _answer_one(self, request: wire.CommandRequest) -> wire.Reply:
        entry = self.entries.get(request.aggregate)
        if entry is None:
            return wire.failure_reply(
                UnknownCommandError(f"aggregate {request.aggregate!r} is not registered on this node")
            )
        try:
            validate_aggregate_id(entry.aggregate, request.aggregate_id)
        except Exception as exc:
            return wire.failure_reply(exc)
        stream_id = entry.aggregate.stream_id(request.aggregate_id)
        if not self.serves(stream_id):
            return wire.MovingReply(f"{stream_id!r} is not served here")
        try:
            command = wire.decode_command(entry, request)
            result: Any = await self.local.send(entry, request.aggregate_id, command, wire.request_options(request))
        except (ShardMovingError, FencedAppendError) as exc:  # nothing was written: the caller asks again
            return wire.MovingReply(str(exc))
        except Exception as exc:
            return wire.failure_reply(exc)
        self.served += 1
        if command is READ_STATE:
            return wire.state_reply(entry, result)
        return wire.outcome_reply(entry, result)

    @staticmethod
    def _too_large(_request: bytes, size: int) -> bytes:
        return wire.encode(wire.failure_reply(_reply_too_large(size)))


def _reply_too_large(size: int) -> ClusterError:
    return ClusterError(
        f"the command was carried out, but its reply ({size} bytes: its events, or the state) is over the NATS "
        "server's max_payload; read the outcome from the store, or raise max_payload"
    )
