"""A runtime's membership of a cluster: its heartbeat, the shards it owns, hand-offs and lease loss.

Every `renew_every` seconds the node announces itself, reads the live members, renews its leases and
works out which shards it should own (rendezvous hashing over the members that host shards). It then
hands off the shards it should no longer own and tries to take the ones it should, every quarter second
while some are still held by their previous owner.

- **Taking a shard**: lease (CAS in KV) -> raise the store's fence to the lease's token -> subscribe to
  the shard's subject -> serve. Its actors recover from the store (snapshots first) on first use.
- **Handing off** (a member joined, or this node leaves): stop taking commands for the shard (callers
  get "moving" and retry), finish the mailboxes, passivate the actors, release the lease.
- **Losing a lease** (refused at renewal, or not renewed in time): stop at once, fail the queued
  commands as "moving" (their callers retry elsewhere), drop the actors; an append already sent carries
  the old token and is refused by the store once the new owner has raised the fence.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import msgspec
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from actorsrc.cluster.bounded import within
from actorsrc.cluster.fenced_store import FencedStoreView
from actorsrc.cluster.leases import Lease, LeaseBook, LeaseKeeper, sync_epoch
from actorsrc.cluster.membership import MemberInfo, Membership
from actorsrc.cluster.nats_link import NatsLink, connect
from actorsrc.cluster.placement import owner_of, shard_key
from actorsrc.cluster.router import ClusterSender
from actorsrc.cluster.settings import Cluster
from actorsrc.cluster.shard_server import ShardServer
from actorsrc.errors import ConfigurationError, ShardMovingError
from actorsrc.hashing import shard_of
from actorsrc.observability import logger
from actorsrc.runtime.directory import ActorDirectory
from actorsrc.runtime.local_sender import LocalSender
from actorsrc.runtime.registry import AggregateEntry
from actorsrc.store.base import EventStore, Fence, FencingStore

_RETRY_TAKE = 0.25  # seconds between attempts to take shards still held by their previous owner


class LeasedWork(Protocol):
    """Other work a node shares with the cluster under leases (the read side's partitions)."""

    async def round(self, hosts: list[str], heartbeat: bool) -> None:
        """Called every loop round with the live members that host work; `heartbeat`: renew leases now."""

    def pending(self) -> bool:
        """Whether it wants work it could not take yet (the loop then comes back soon)."""

    def held(self) -> int:
        """How many leases it holds (for the member list)."""

    async def stop(self) -> None:
        """Hand everything off (finishing the batch in hand) and release the leases."""


WorkFactory = Callable[[NatsLink, LeaseBook], LeasedWork]
"""Builds the work from the node's NATS link and its lease book (which holds the base of its tokens)."""


class ClusterNode:
    def __init__(self, cluster: Cluster, store: EventStore, entries: Mapping[str, AggregateEntry]) -> None:
        if not isinstance(cluster, Cluster):
            raise ConfigurationError(f"Runtime's cluster= must be a Cluster, got {type(cluster).__name__}")
        if not isinstance(store, FencingStore):
            raise ConfigurationError(
                f"a clustered runtime needs a store that fences appends per shard (PostgreSQL, SQLite or "
                f"in-memory); {type(store).__name__} does not"
            )
        self.cluster = cluster
        self.store: FencingStore = store
        self.entries = entries
        self.book = LeaseBook(cluster.lease_ttl)
        self.tokens: dict[int, int] = {}  # shard -> the last token this node held it with
        self.serving: dict[int, Lease] = {}
        self.subscriptions: dict[int, Subscription] = {}
        self.handing_off: set[int] = set()
        self.fenced_out: dict[int, int] = {}  # shard -> the fence above our token (tried again each heartbeat)
        self._reported_fences: dict[int, int] = {}  # shards the store fences above this cluster's tokens: not taken
        self.actor_store = FencedStoreView(store, self.fence_of)
        self.local: LocalSender | None = None
        self.directory: ActorDirectory | None = None
        self.link: NatsLink | None = None
        self.keeper: LeaseKeeper | None = None
        self.membership: Membership | None = None
        self.router: ClusterSender | None = None
        self.server: ShardServer | None = None
        self.hosts: list[str] = []
        self._desired: set[int] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._work_lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._work_factories: list[WorkFactory] = []
        self.work: list[LeasedWork] = []

    @property
    def token_base(self) -> int:
        """What this node's fencing tokens are counted above (see `leases.sync_epoch`)."""
        return self.book.base

    def add_work(self, factory: WorkFactory) -> None:
        """Share more leased work (built at start, with the NATS link and the node's lease book)."""
        self._work_factories.append(factory)

    # -- the runtime's hooks ----------------------------------------------------------------------

    def attach(self, local: LocalSender, directory: ActorDirectory) -> None:
        self.local = local
        self.directory = directory
        local.gate = self.gate

    def fence_of(self, stream_id: str) -> Fence:
        shard = shard_of(stream_id, self.cluster.shards)
        return shard, self.tokens.get(shard, 0)

    def serves_shard(self, shard: int) -> bool:
        lease = self.serving.get(shard)
        return lease is not None and lease.valid_until > time.monotonic()

    def serves_stream(self, stream_id: str) -> bool:
        return self.serves_shard(shard_of(stream_id, self.cluster.shards))

    def gate(self, entry: AggregateEntry, aggregate_id: str) -> None:
        stream_id = entry.aggregate.stream_id(aggregate_id)
        shard = shard_of(stream_id, self.cluster.shards)
        if not self.serves_shard(shard):
            raise ShardMovingError(f"shard {shard} of {stream_id!r} is not served by node {self.cluster.node_id}")

    # -- life cycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        assert self.local is not None, "attach() first"
        cluster = self.cluster
        self.link = link = await connect(cluster)
        request_timeout = max(1.0, cluster.lease_ttl / 5)
        try:
            await sync_epoch(link.leases, self.book, self._highest_fence)
        except BaseException:
            await link.close()
            raise
        self.keeper = LeaseKeeper(link.leases, cluster.node_id, self.book, request_timeout)
        self.work = [factory(link, self.book) for factory in self._work_factories]
        info = MemberInfo(cluster.node_id, cluster.role, os.getpid(), socket.gethostname(), time.time())
        self.membership = Membership(link.members, cluster, info)
        self.router = ClusterSender(
            self.local,
            link.client,
            lambda shard: cluster.subject("shard", shard),
            lambda node: cluster.subject("node", node),
            cluster.shards,
            self.serves_shard,
            attempt_timeout=cluster.lease_ttl,
        )
        self.server = ShardServer(self.entries, self.local, self.serves_stream, cluster.node_id)
        try:
            if cluster.hosts_shards:  # commands for any of its shards, once a router knows it serves them
                await link.client.subscribe(cluster.subject("node", cluster.node_id), cb=self._on_request)
            await self._heartbeat()
        except BaseException:
            await link.close()
            raise
        logger.info("cluster.joined", node=cluster.node_id, cluster=cluster.name, role=cluster.role, members=self.hosts)
        loop = asyncio.get_running_loop()
        self._loops = [loop.create_task(self._heartbeat_loop()), loop.create_task(self._rebalance_loop())]

    async def stop(self) -> None:
        """Leave cleanly: hand every shard off (mailboxes finished), leave the member list, close the link.
        Never raises, and every step is bounded: what cannot be done cleanly (NATS gone) is left to the
        lease TTL."""
        self._stopping = True
        # Taking stops now; heartbeats go on until the hand-off is over, so no lease lapses meanwhile.
        heartbeats, rebalancing = self._loops or (None, None)
        await _cancelled(rebalancing)
        if self.membership is not None:  # the others stop counting this node in at their next read
            self.membership.info = msgspec.structs.replace(self.membership.info, role="leaving")
            await self._step("announce", within(5.0, self.membership.announce(len(self.serving), 0)))
        for work in self.work:
            await self._step("hand the read side off", work.stop())
        held_shards = {int(key.split(".")[1]) for key in self.book.held if key.startswith("shard.")}
        if self.serving or held_shards:
            await self._step("hand the shards off", self._hand_off(set(self.serving) | held_shards))
        background = list(self._background)
        if background:
            _, late = await asyncio.wait(background, timeout=max(5.0, self.cluster.lease_ttl))
            for task in late:  # a routed command still waiting: its caller times out and asks again
                task.cancel()
        await _cancelled(heartbeats)
        if self.membership is not None:
            await self._step("leave", within(5.0, self.membership.leave()))
        logger.info("cluster.left", node=self.cluster.node_id, cluster=self.cluster.name)
        if self.link is not None:
            await self._step("close", self.link.close())

    async def _step(self, what: str, step: Awaitable[object]) -> None:
        try:
            await step
        except Exception as exc:
            logger.warning("cluster.leave_failed", node=self.cluster.node_id, step=what, error=repr(exc))

    # -- the loop ---------------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        """Announce, read the members, renew the leases: on its own task, so that taking shards (which
        waits for the store to raise their fences) can never delay a renewal past the lease."""
        while True:
            started = time.monotonic()
            try:
                await self._heartbeat()
                self._lose_expired()
                await self._work_round(heartbeat=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("cluster.heartbeat_failed", node=self.cluster.node_id, error=repr(exc))
            self._wake.set()  # rebalance at once with the new view
            await asyncio.sleep(max(0.0, started + self.cluster.renew_every - time.monotonic()))

    async def _rebalance_loop(self) -> None:
        while True:
            try:
                self._lose_expired()
                await self._rebalance()
                await self._work_round(heartbeat=False)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("cluster.round_failed", node=self.cluster.node_id, error=repr(exc))
            pending = bool(self._desired - set(self.serving) - self.handing_off - set(self.fenced_out))
            pending = pending or any(work.pending() for work in self.work)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_RETRY_TAKE if pending else self.cluster.renew_every):
                    await self._wake.wait()

    async def _work_round(self, *, heartbeat: bool) -> None:
        async with self._work_lock:  # one round of the other work at a time (both loops call it)
            hosts = self._hosts_with_me()
            for work in self.work:
                await work.round(hosts, heartbeat)

    async def _heartbeat(self) -> None:
        """Renew the shard leases first, then announce this node and read the members: trouble with the
        members bucket must not cost a renewal."""
        assert self.keeper is not None
        refused = await self.keeper.renew([key for key in self.book.held if key.startswith("shard.")])
        if refused:
            self._lose({int(key.split(".")[1]) for key in refused if key.startswith("shard.")}, "renewal refused")
        await self._announce_and_read_members()

    async def _highest_fence(self) -> int:
        return max((await self.store.fences()).values(), default=0)

    async def _announce_and_read_members(self) -> None:
        assert self.membership is not None
        assert self.link is not None
        await within(max(1.0, self.cluster.lease_ttl / 5), sync_epoch(self.link.leases, self.book, self._highest_fence))
        self.fenced_out.clear()  # tried again: the base may have moved up, or the other cluster gone
        membership = self.membership
        timeout = max(1.0, self.cluster.lease_ttl / 5)
        partitions = sum(work.held() for work in self.work)
        await within(timeout, membership.announce(len(self.serving), partitions))
        before = set(self.hosts)
        await within(timeout, membership.refresh())
        self.hosts = membership.hosts()
        for node in sorted(set(self.hosts) - before):
            if before:
                logger.info("cluster.member_joined", node=self.cluster.node_id, member=node)
        for node in sorted(before - set(self.hosts)):
            logger.info("cluster.member_left", node=self.cluster.node_id, member=node)
        if self.cluster.hosts_shards and not self._stopping:
            me = self.cluster.node_id
            hosts = self._hosts_with_me()
            self._desired = {s for s in range(self.cluster.shards) if owner_of(shard_key(s), hosts) == me}

    def _hosts_with_me(self) -> list[str]:
        """The members that host work: this node counts itself in while it is a member and not leaving,
        before the others have seen it, and out once it is leaving."""
        me = self.cluster.node_id
        others = [host for host in self.hosts if host != me]
        if self.cluster.hosts_shards and not self._stopping:
            return sorted([*others, me])
        return others

    def _lose_expired(self) -> None:
        expired = {int(key.split(".")[1]) for key in self.book.expired() if key.startswith("shard.")}
        if expired:
            self._lose(expired, "not renewed in time")

    async def _rebalance(self) -> None:
        if self._stopping:
            return
        surplus = set(self.serving) - self._desired - self.handing_off
        if surplus:
            self._spawn(self._hand_off(surplus))
        wanted = sorted(self._desired - set(self.serving) - self.handing_off - set(self.fenced_out))
        if wanted:
            await self._take(wanted)

    async def _take(self, shards: list[int]) -> None:
        assert self.keeper is not None
        keeper = self.keeper
        leases = await asyncio.gather(*(keeper.take(shard_key(s)) for s in shards), return_exceptions=True)
        taken = 0
        for shard, lease in zip(shards, leases, strict=True):
            if isinstance(lease, Lease):
                if await self._serve(shard, lease):
                    taken += 1
            elif isinstance(lease, BaseException) and not isinstance(lease, Exception):
                raise lease
        if taken:
            logger.info("cluster.shards_taken", node=self.cluster.node_id, shards=taken, serving=len(self.serving))

    async def _serve(self, shard: int, lease: Lease) -> bool:
        assert self.link is not None
        assert self.keeper is not None
        self.tokens[shard] = lease.token
        try:
            # Not cut short here: a transaction cancelled half-way could hold the log-head lock every writer
            # needs. The store's own statement timeout bounds it (PostgreSQL's command_timeout).
            fence = await self.store.raise_fence(shard, lease.token)
            if fence > lease.token:  # the store was fenced by another cluster (another name or shard count)
                self.fenced_out[shard] = fence
                if self._reported_fences.get(shard) == fence:
                    await self.keeper.release(shard_key(shard))
                    return False
                self._reported_fences[shard] = fence
                logger.error(
                    "cluster.fenced_out",
                    node=self.cluster.node_id,
                    shard=shard,
                    fence=fence,
                    token=lease.token,
                    hint="this store's fence for the shard is above every token this cluster can give: is "
                    "the store shared with another cluster (name, or number of shards)? The shard is not served",
                )
                await self.keeper.release(shard_key(shard))
                return False
            subscription = await self.link.client.subscribe(self.cluster.subject("shard", shard), cb=self._on_request)
        except Exception as exc:
            logger.warning("cluster.take_failed", node=self.cluster.node_id, shard=shard, error=repr(exc))
            await self.keeper.release(shard_key(shard))
            return False
        self.subscriptions[shard] = subscription
        self.serving[shard] = lease
        return True

    async def _on_request(self, msg: Msg) -> None:
        assert self.server is not None
        # Each request in a task of its own: the subscription's callbacks run one at a time, and a
        # command waits for its batch to be durable, so handling it here would serialise the shard.
        self._spawn(self.server.handle(msg))

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # -- giving shards up -----------------------------------------------------------------------

    def _stop_serving(self, shards: set[int]) -> list[asyncio.Task[Any]]:
        """Stop serving `shards` at once; returns the unsubscriptions under way."""
        unsubscribing = []
        for shard in shards:
            self.serving.pop(shard, None)
            subscription = self.subscriptions.pop(shard, None)
            if subscription is not None:
                unsubscribing.append(self._spawn(subscription.unsubscribe()))
        return unsubscribing

    def _actors_of(self, shards: set[int]) -> list[tuple[tuple[str, str], Any]]:
        assert self.directory is not None
        count = self.cluster.shards
        return [(key, a) for key, a in self.directory.actors.items() if shard_of(a.stream_id, count) in shards]

    def _lose(self, shards: set[int], reason: str) -> None:
        if not shards:
            return
        self._stop_serving(shards)
        for shard in shards:
            self.book.dropped(shard_key(shard))
        assert self.directory is not None
        error = ShardMovingError(f"node {self.cluster.node_id} lost the lease of the shard ({reason})")
        for key, actor in self._actors_of(shards):
            actor.fail_queued(error)
            actor.recovered = False  # whatever it holds may be stale by the time it is used again
            if not actor.running:
                self.directory.remove(key, "shard lost")
        logger.warning("cluster.lease_lost", node=self.cluster.node_id, shards=sorted(shards), reason=reason)
        self._wake.set()

    async def _hand_off(self, shards: set[int]) -> None:
        assert self.keeper is not None
        assert self.directory is not None
        shards = shards - self.handing_off
        if not shards:
            return
        self.handing_off |= shards
        try:
            # Unsubscribed before the lease goes: the next owner's subscription never overlaps this one.
            unsubscribing = self._stop_serving(shards)
            if unsubscribing:
                await asyncio.wait(unsubscribing, timeout=5.0)
            # Finish what is queued (commands that arrive now are told "moving" by the gate).
            loop = asyncio.get_running_loop()
            deadline = loop.time() + max(5.0, 2 * self.cluster.lease_ttl)
            actors = self._actors_of(shards)  # no new ones: the gate refuses new commands for these shards
            while loop.time() < deadline:
                if not any(actor.running or actor.mailbox for _, actor in actors):
                    break
                await asyncio.sleep(0.005)
            for key, actor in actors:
                if actor.running or actor.mailbox:  # still busy at the deadline: treat it as lost
                    actor.fail_queued(ShardMovingError(f"node {self.cluster.node_id} handed the shard off"))
                    actor.recovered = False
                else:
                    self.directory.remove(key, "shard handed off")
            await asyncio.gather(*(self.keeper.release(shard_key(s)) for s in shards))
            logger.info("cluster.shards_handed_off", node=self.cluster.node_id, shards=len(shards))
        finally:
            self.handing_off -= shards
            self._wake.set()


async def _cancelled(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
