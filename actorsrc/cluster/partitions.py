"""The read side's partitions shared by a cluster's nodes under leases (the node's `LeasedWork`).

Each projection runs as `Cluster.partitions` partitions (a process manager as one), each over a range of
the slices stored with every event; each partition is owned by one node, chosen by rendezvous hashing
over the members that host work and taken with a lease in the same KV bucket as the shards.

- **Taking** a partition: lease (CAS) -> the partition claims its checkpoint with the lease's fencing
  token (in the read model) -> it reads its slices from that checkpoint.
- **Handing off** (a member joined, or this node leaves): the partition stops after the batch in hand,
  then the lease is released.
- **Losing** the lease (refused at renewal, or not renewed in time): the partition stops at once. A
  commit already under way carries the old token: once the next owner has claimed the checkpoint with
  its higher token, the read model refuses it (`CheckpointFencedError`), so no two nodes ever both
  commit a partition's batch.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Protocol

from actorsrc.cluster.leases import Lease, LeaseBook, LeaseKeeper
from actorsrc.cluster.nats_link import NatsLink
from actorsrc.cluster.placement import owner_of
from actorsrc.cluster.settings import Cluster
from actorsrc.hashing import stable_hash
from actorsrc.observability import logger


class PartitionHost(Protocol):
    """The runtime's read side, as the partition leases drive it (`actorsrc.runtime.readside.ReadSide`)."""

    def partition_keys(self) -> list[tuple[str, int]]: ...

    def start_partition(self, name: str, index: int, fence: int) -> None: ...

    async def finish_partition(self, name: str, index: int) -> None: ...

    async def drop_partition(self, name: str, index: int) -> None: ...

    def partition_fenced(self, name: str, index: int) -> bool: ...


def partition_key(handler: str, index: int) -> str:
    """The lease key of a handler's partition: KV-safe ([-_.a-zA-Z0-9]), readable, and unique per handler
    name thanks to a stable hash of the exact name."""
    readable = re.sub(r"[^A-Za-z0-9_-]", "_", handler)[:40]
    return f"part.{readable}-{stable_hash(handler):08x}.{index}"


def partition_label(handler: str, index: int) -> str:
    """How `actorsrc cluster status` names a partition's lease: the handler's exact name and the index."""
    return f"{handler}#{index}"


class PartitionWork:
    def __init__(self, link: NatsLink, book: LeaseBook, cluster: Cluster, host: PartitionHost) -> None:
        self.cluster = cluster
        self.book = book
        self.host = host
        self.keeper = LeaseKeeper(link.leases, cluster.node_id, book, max(1.0, cluster.lease_ttl / 5))
        self.keys = {partition_key(name, index): (name, index) for name, index in host.partition_keys()}
        if len(self.keys) != len(host.partition_keys()):
            raise AssertionError("two handlers' partitions share a lease key")  # a 32-bit hash collision
        self.running: set[str] = set()
        self.handing_off: set[str] = set()
        self._desired: set[str] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._stopping = False

    # -- LeasedWork --------------------------------------------------------------------------------

    async def round(self, hosts: list[str], heartbeat: bool) -> None:
        if self._stopping:
            return
        if heartbeat:
            refused = await self.keeper.renew([key for key in self.running if key in self.book.held])
            self._lose(set(refused), "renewal refused")
        self._lose({key for key in self.book.expired() if key in self.running}, "not renewed in time")
        fenced = {key for key in self.running if self.host.partition_fenced(*self.keys[key])}
        self._lose(fenced, "a newer owner claimed its checkpoint")
        me = self.cluster.node_id
        self._desired = {key for key in self.keys if owner_of(key, hosts) == me}
        surplus = self.running - self._desired - self.handing_off
        for key in sorted(surplus):
            self.handing_off.add(key)
            self._spawn(self._hand_off(key))
        wanted = sorted(self._desired - self.running - self.handing_off)
        if wanted:
            await self._take(wanted)

    def pending(self) -> bool:
        return bool(self._desired - self.running - self.handing_off)

    def held(self) -> int:
        return len(self.running)

    async def stop(self) -> None:
        self._stopping = True
        for key in self.running - self.handing_off:
            self.handing_off.add(key)
            self._spawn(self._hand_off(key))
        await asyncio.gather(*self._background, return_exceptions=True)

    # -- taking and giving up -------------------------------------------------------------------

    async def _take(self, keys: list[str]) -> None:
        leases = await asyncio.gather(
            *(self.keeper.take(key, label=partition_label(*self.keys[key])) for key in keys), return_exceptions=True
        )
        taken = 0
        for key, lease in zip(keys, leases, strict=True):
            if isinstance(lease, Lease):
                self.host.start_partition(*self.keys[key], lease.token)
                self.running.add(key)
                taken += 1
            elif isinstance(lease, BaseException) and not isinstance(lease, Exception):
                raise lease
        if taken:
            logger.info("cluster.partitions_taken", node=self.cluster.node_id, partitions=taken, held=self.held())

    async def _hand_off(self, key: str) -> None:
        try:
            await self.host.finish_partition(*self.keys[key])
            await self.keeper.release(key)
            logger.info("cluster.partition_handed_off", node=self.cluster.node_id, partition=key)
        finally:
            self.running.discard(key)
            self.handing_off.discard(key)

    def _lose(self, keys: set[str], reason: str) -> None:
        for key in keys - self.handing_off:
            self.running.discard(key)
            self.book.dropped(key)
            logger.warning("cluster.partition_lost", node=self.cluster.node_id, partition=key, reason=reason)
            self._spawn(self.host.drop_partition(*self.keys[key]))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
