"""The cluster's `CommandSender`: an instance whose shard this node serves gets the command locally; any
other goes to the shard's owner over NATS request/reply.

A shard with no owner (moving between nodes) answers at once (no responders, or "moving") and is asked
again with backoff until the caller's timeout. Every routed command carries a command id (one is made
when the caller gave none), so a retry after a lost reply is recognised by the store, never run twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import MaxPayloadError, NoRespondersError

from actorsrc.backoff import exponential_backoff
from actorsrc.cluster import wire
from actorsrc.cluster.batching import RequestBatcher
from actorsrc.errors import (
    AskTimeoutError,
    FencedAppendError,
    LimitExceededError,
    RuntimeClosedError,
    ShardMovingError,
)
from actorsrc.hashing import shard_of
from actorsrc.runtime.ask_checks import check_command, check_ids
from actorsrc.runtime.command_envelope import READ_STATE, StateQuery
from actorsrc.runtime.registry import AggregateEntry
from actorsrc.runtime.sender import AskOptions, CommandSender

_FOREVER = float("inf")  # what is left of an ask without a timeout


class ClusterSender:
    """Implements `CommandSender` for a runtime in a cluster."""

    def __init__(
        self,
        local: CommandSender,
        client: Client,
        subject_of: Callable[[int], str],
        node_subject: Callable[[str], str],
        shards: int,
        serves_shard: Callable[[int], bool],
        attempt_timeout: float,
    ) -> None:
        self.local = local
        self.client = client
        self.subject_of = subject_of
        self.node_subject = node_subject
        # shard -> the node that last answered for it: its commands go to that node's own subject, where
        # they share messages with the commands for its other shards. Forgotten when it says "moving".
        self.owners: dict[int, str] = {}
        self.shards = shards
        self.serves_shard = serves_shard  # False on a client-only node
        # One request waits at most this long (the lease time): an owner that died or froze after the
        # request went out is asked again once its shard has a new owner, with the same command id.
        self.attempt_timeout = attempt_timeout
        self.batcher = RequestBatcher(client)
        self.accepting = False
        self.routed = 0
        self.retried = 0

    @property
    def default_timeout(self) -> float | None:
        return self.local.default_timeout

    async def send(
        self, entry: AggregateEntry, aggregate_id: str, command: object | StateQuery, options: AskOptions
    ) -> Any:
        shard = shard_of(entry.aggregate.stream_id(aggregate_id), self.shards)
        if self.serves_shard(shard):
            try:
                return await self.local.send(entry, aggregate_id, command, options)
            except (ShardMovingError, FencedAppendError):
                pass  # given away meanwhile, nothing written: route it
        return await self._route(entry, aggregate_id, command, options, shard)

    async def _route(
        self, entry: AggregateEntry, aggregate_id: str, command: object | StateQuery, options: AskOptions, shard: int
    ) -> Any:
        if not self.accepting:
            raise RuntimeClosedError("the runtime is closed or not started; it accepts no commands")
        check_command(entry.aggregate, command)
        check_ids(
            command_id=options.command_id, causation_id=options.causation_id, correlation_id=options.correlation_id
        )
        limit = self.default_timeout if options.timeout is None else options.timeout
        if limit is not None and not limit > 0:
            raise ValueError(f"timeout must be > 0, got {limit}")
        if options.command_id is None and command is not READ_STATE:
            # Made here, so the first attempt cannot have run before: the owner skips the store lookup.
            options = msgspec.structs.replace(options, command_id=uuid.uuid4().hex, fresh_id=True)
        loop = asyncio.get_running_loop()
        deadline = None if limit is None else loop.time() + limit
        stream_id = entry.aggregate.stream_id(aggregate_id)
        subject = self.subject_of(shard)
        attempt = 0
        moving = "no reply yet"
        while True:
            if not self.accepting or self.client.is_closed:
                raise RuntimeClosedError(
                    "the runtime closed while this command was being routed; it was not sent again"
                )
            remaining = _FOREVER if deadline is None else deadline - loop.time()
            if remaining <= 0:
                raise ShardMovingError(
                    f"shard {shard} of {stream_id!r} had no owner to take {type(command).__qualname__} within "
                    f"{limit} s ({moving}); it was not carried out, or its retry will be recognised by its "
                    f"command id {options.command_id!r}"
                )
            if self.serves_shard(shard):  # taken over by this node meanwhile
                try:
                    return await self.local.send(
                        entry, aggregate_id, command, msgspec.structs.replace(options, timeout=remaining)
                    )
                except (ShardMovingError, FencedAppendError) as exc:
                    moving = str(exc)
            else:
                request = wire.make_request(
                    entry, aggregate_id, command, msgspec.structs.replace(options, timeout=remaining)
                )
                owner = self.owners.get(shard)
                try:
                    reply, answered_by = await self.batcher.exchange(
                        subject if owner is None else self.node_subject(owner),
                        request,
                        min(remaining, self.attempt_timeout),
                    )
                except NoRespondersError:
                    self.owners.pop(shard, None)
                    moving = f"no node serves shard {shard}"
                except TimeoutError:  # nats-py's TimeoutError is one too
                    if deadline is not None and loop.time() >= deadline:
                        raise AskTimeoutError(
                            f"{entry.aggregate.name} {aggregate_id!r} did not reply to "
                            f"{type(command).__qualname__} within {limit} s; the command may still be carried "
                            f"out (a retry with command id {options.command_id!r} is recognised)"
                        ) from None
                    self.owners.pop(shard, None)
                    moving = f"no reply from shard {shard}'s owner within {self.attempt_timeout} s"
                except MaxPayloadError:
                    size = len(wire.encode(request))
                    raise LimitExceededError(
                        f"{type(command).__qualname__} to {stream_id!r} is {size} bytes routed, over the NATS "
                        f"server's max_payload of {self.client.max_payload} bytes",
                        what="routed command",
                        size=size,
                        limit=self.client.max_payload,
                    ) from None
                except NatsError as exc:  # reconnecting, or the link is down: nothing was sent, or the id dedups
                    self.owners.pop(shard, None)
                    moving = f"NATS: {exc!r}"
                else:
                    self.routed += 1
                    if isinstance(reply, wire.MovingReply):
                        self.owners.pop(shard, None)
                    elif answered_by:
                        self.owners[shard] = answered_by
                    if isinstance(reply, wire.OutcomeReply):
                        return wire.outcome_of(entry, reply)
                    if isinstance(reply, wire.StateReply):
                        return wire.state_of(entry, stream_id, reply)
                    if isinstance(reply, wire.FailureReply):
                        raise wire.error_of(reply)
                    moving = reply.reason
            self.retried += 1
            options = msgspec.structs.replace(options, fresh_id=False)  # it may have run: a retry is looked up
            attempt += 1
            pause = exponential_backoff(0.01, 0.5, 0.5, attempt)
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - loop.time()))
            await asyncio.sleep(pause)


def _protocol_check(sender: ClusterSender) -> CommandSender:
    return sender
