"""Who is in the cluster: each node keeps a key in the members bucket fresh; the bucket TTL drops the dead.

Expiry by TTL is not announced to watchers (NATS 2.9), so the view is read whole every heartbeat; a
clean leave deletes the key and the others see it at their next read.
"""

from __future__ import annotations

import msgspec
from nats.js.kv import KeyValue

from actorsrc.cluster.settings import Cluster


class MemberInfo(msgspec.Struct, frozen=True):
    node: str
    role: str
    pid: int
    host: str
    started: float  # unix time
    shards: int = 0  # how many shards it served at its last heartbeat
    partitions: int = 0


_MISSES_TO_LEAVE = 2
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(MemberInfo).decode


class Membership:
    def __init__(self, kv: KeyValue, cluster: Cluster, info: MemberInfo) -> None:
        self.kv = kv
        self.cluster = cluster
        self.info = info
        self.members: dict[str, MemberInfo] = {}
        self.misses: dict[str, int] = {}

    async def announce(self, shards: int, partitions: int) -> None:
        self.info = msgspec.structs.replace(self.info, shards=shards, partitions=partitions)
        await self.kv.put(self.info.node, _encode(self.info))

    async def leave(self) -> None:
        await self.kv.delete(self.info.node)

    async def refresh(self) -> dict[str, MemberInfo]:
        """Read the members. One read can miss a key that is being rewritten at that moment, so a member
        counts as gone only when two reads in a row miss it (a clean leave is seen within two heartbeats)."""
        found = await read_members(self.kv)
        for node in list(self.members):
            if node not in found:
                self.misses[node] = self.misses.get(node, 0) + 1
                if self.misses[node] < _MISSES_TO_LEAVE:
                    found[node] = self.members[node]
                    continue
            self.misses.pop(node, None)
        self.members = found
        return self.members

    def hosts(self) -> list[str]:
        """The live nodes that host shards (this one included while it is a member)."""
        return sorted(node for node, info in self.members.items() if info.role == "member")


async def read_members(kv: KeyValue) -> dict[str, MemberInfo]:
    found: dict[str, MemberInfo] = {}
    watcher = await kv.watchall(ignore_deletes=True)
    try:
        async for entry in watcher:
            if entry is None:
                break
            if entry.value:
                try:
                    found[entry.key] = _decode(entry.value)
                except msgspec.DecodeError:
                    continue
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    return found
