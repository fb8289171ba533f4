"""A cluster's state as NATS and the store see it, for `actorsrc cluster status` (read-only).

It opens the cluster's buckets without creating them (a status call must not start a cluster that does
not exist) and reads: the members, every lease with its holder and fencing token (shards, and the read
side's partitions), and, given the event store, the fences it keeps per shard and its last position; given
the read model too, each partition's checkpoint and how far it is behind.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import msgspec
import nats
from nats.aio.client import Client
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from actorsrc.cluster.bounded import within
from actorsrc.cluster.leases import Holder, LeaseBook, LeaseKeeper, read_epoch
from actorsrc.cluster.membership import MemberInfo, read_members
from actorsrc.cluster.nats_link import require_jetstream
from actorsrc.cluster.settings import Cluster
from actorsrc.errors import ClusterUnavailableError
from actorsrc.readmodel.base import FencedCheckpoints, fence_row, partition_prefix
from actorsrc.store.base import EventStore, FencingStore

SHARD_PREFIX = "shard."
PARTITION_PREFIX = "part."


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """Where one read-side partition is: its checkpoint in the read model and how far behind the log's head."""

    handler: str
    index: int
    node: str
    checkpoint: int | None  # None: no checkpoint yet
    lag: int | None  # events between the checkpoint and the store's last position (None: not read)


@dataclass(slots=True)
class ClusterStatus:
    name: str
    found: bool  # False: no buckets for this name on the server (the cluster never ran)
    members: list[MemberInfo] = field(default_factory=list)
    shards: dict[int, Holder] = field(default_factory=dict)  # shard -> its lease
    partitions: list[Holder] = field(default_factory=list)  # the read side's leases ("part." keys)
    other_leases: list[Holder] = field(default_factory=list)
    fences: dict[int, int] | None = None  # shard -> fence, when the store was read
    last_position: int | None = None
    lags: list[PartitionLag] = field(default_factory=list)  # when the read model was read

    def shards_of(self, node: str) -> list[int]:
        return sorted(shard for shard, holder in self.shards.items() if holder.node == node)

    def unowned_holders(self) -> list[str]:
        """Nodes holding leases but missing from the members (a node that died: its leases run out)."""
        live = {member.node for member in self.members}
        holders = {h.node for h in [*self.shards.values(), *self.partitions, *self.other_leases]}
        return sorted(holders - live)

    def as_dict(self) -> dict[str, Any]:
        def leases(holders: list[Holder]) -> list[dict[str, Any]]:
            return [{"key": h.key, "node": h.node, "token": h.token, "label": h.label} for h in holders]

        return {
            "cluster": self.name,
            "found": self.found,
            "members": [{**msgspec.structs.asdict(m), "shards_leased": self.shards_of(m.node)} for m in self.members],
            "shards": {str(shard): {"node": h.node, "token": h.token} for shard, h in sorted(self.shards.items())},
            "partitions": leases(self.partitions),
            "other_leases": leases(self.other_leases),
            "holders_not_members": self.unowned_holders(),
            "fences": None if self.fences is None else {str(s): t for s, t in sorted(self.fences.items())},
            "last_position": self.last_position,
            "partition_lag": [dataclasses.asdict(lag) for lag in self.lags] if self.lags else None,
        }


async def _connect(servers: list[str], timeout: float) -> Client:
    try:
        # No reconnects: a status call reports what it sees now, and fails fast when it sees nothing.
        return await within(
            timeout, nats.connect(servers, connect_timeout=max(1, round(timeout)), allow_reconnect=False)
        )
    except Exception as exc:
        raise ClusterUnavailableError(f"cannot reach NATS at {', '.join(servers)} within {timeout} s: {exc!r}") from exc


async def read_status(
    cluster: Cluster, store: EventStore | None = None, timeout: float = 5.0, read_model: FencedCheckpoints | None = None
) -> ClusterStatus:
    """The cluster's members and leases (with the store: its fences; with the read model too: each
    partition's checkpoint and lag); `ClusterUnavailableError` when NATS is unreachable or has no JetStream."""
    servers = cluster.servers
    client = await _connect(servers, timeout)
    try:
        jetstream = await require_jetstream(client, servers, timeout)
        status = ClusterStatus(cluster.name, found=True)
        try:
            members_kv = await jetstream.key_value(cluster.bucket("members"))
            leases_kv = await jetstream.key_value(cluster.bucket("leases"))
        except BucketNotFoundError:
            status.found = False
        else:
            await _read_buckets(status, members_kv, leases_kv)
    finally:
        await client.close()
    if store is not None:
        status.last_position = await store.last_position()
        if isinstance(store, FencingStore):
            status.fences = await store.fences()
    if read_model is not None:
        status.lags = await _partition_lags(status, read_model)
    return status


async def _partition_lags(status: ClusterStatus, read_model: FencedCheckpoints) -> list[PartitionLag]:
    """Each leased partition's checkpoint (named `{handler}#p{index}of{count}` in the read model)."""
    lags: list[PartitionLag] = []
    checkpoints: dict[str, dict[str, int]] = {}
    for holder in status.partitions:
        handler, _, index = holder.label.rpartition("#")
        if not handler or not index.isdigit():
            continue  # a lease from a version without labels
        if handler not in checkpoints:
            checkpoints[handler] = await read_model.partition_checkpoints(handler)
        prefix = f"{partition_prefix(handler)}{index}of"
        found = [
            position
            for name, position in checkpoints[handler].items()
            if name.startswith(prefix) and not name.endswith(fence_row(""))  # not the fence's own row
        ]
        checkpoint = found[0] if len(found) == 1 else None
        head = status.last_position
        lag = None if checkpoint is None or head is None else max(0, head - checkpoint)
        lags.append(PartitionLag(handler, int(index), holder.node, checkpoint, lag))
    return lags


async def _read_buckets(status: ClusterStatus, members_kv: KeyValue, leases_kv: KeyValue) -> None:
    members = await read_members(members_kv)
    status.members = [members[node] for node in sorted(members)]
    book = LeaseBook(1.0)
    book.base = await read_epoch(leases_kv)
    keeper = LeaseKeeper(leases_kv, "status", book, 5.0)  # only its read side is used
    for key, holder in sorted((await keeper.holders()).items()):
        shard = key.removeprefix(SHARD_PREFIX)
        if key.startswith(SHARD_PREFIX) and shard.isdigit():
            status.shards[int(shard)] = holder
        elif key.startswith(PARTITION_PREFIX):
            status.partitions.append(holder)
        else:
            status.other_leases.append(holder)
