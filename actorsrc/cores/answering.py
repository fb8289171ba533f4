"""Answering a routed batch: each command runs through this process's own actors exactly as a local
`ask` would, and its reply is ready once its events are durable (as `actorsrc.cluster.shard_server`
answers NATS requests; this is the same answer without NATS)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from actorsrc.cluster import wire
from actorsrc.errors import RuntimeClosedError, ShardMovingError, UnknownCommandError
from actorsrc.runtime.command_envelope import READ_STATE
from actorsrc.runtime.registry import AggregateEntry, validate_aggregate_id
from actorsrc.runtime.sender import CommandSender


class BatchAnswerer:
    def __init__(
        self, entries: Mapping[str, AggregateEntry], local: CommandSender, serves: Callable[[str], bool], name: str
    ) -> None:
        self.entries = entries
        self.local = local
        self.serves = serves  # stream id -> whether this process owns it and takes commands now
        self.name = name
        self.served = 0

    async def answer(self, data: bytes) -> bytes:
        try:
            message = wire.decode_request(data)
        except Exception as exc:
            return wire.encode_failure(UnknownCommandError(f"a routed command could not be decoded: {exc}"))
        requests = message.requests if isinstance(message, wire.CommandBatch) else [message]
        # Each command as if it came alone, all at once (a command waits for its batch to be durable).
        replies = await asyncio.gather(*(self.answer_one(request) for request in requests))
        return wire.encode(wire.ReplyBatch(list(replies), self.name))

    async def answer_one(self, request: wire.CommandRequest) -> wire.Reply:
        entry = self.entries.get(request.aggregate)
        if entry is None:
            return wire.failure_reply(
                UnknownCommandError(f"aggregate {request.aggregate!r} is not registered in this process")
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
            result: Any = await self.local.send(entry, request.aggregate_id, command, wire.request_options(request))
        except (ShardMovingError, RuntimeClosedError) as exc:  # nothing was written: the caller asks again
            return wire.MovingReply(str(exc))
        except Exception as exc:
            return wire.failure_reply(exc)
        self.served += 1
        if command is READ_STATE:
            return wire.state_reply(entry, result)
        return wire.outcome_reply(entry, result)
