"""Leases on keys (shards, read-side partitions) in a JetStream key-value bucket whose TTL is the lease's.

- Taken with compare-and-set (`create` succeeds for one node only); the revision it returns is the
  lease's **fencing token**: every later lease on the key has a higher one, so a store that remembers
  the highest token it has seen can refuse a former owner's late write. Revisions start again at 1 in
  a bucket created anew, so the token is the revision above a base kept in the bucket (`sync_epoch`):
  the tokens of a newer bucket are higher than any fence the store was given before.
- Renewed with `update(last=revision)`: refused if anyone else has written the key since, so a node
  never renews a lease it lost.
- Released with a delete conditional on the revision; a dead node's lease expires with the bucket TTL.

`LeaseBook` is the bookkeeping (no I/O): which leases this node holds and until when it may trust them.
A lease is trusted until `sent + ttl - margin`, where `sent` is when the request that created or renewed
it was sent: the server's expiry is counted from when it received that request, which is later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from actorsrc.cluster.bounded import within


@dataclass(slots=True)
class Lease:
    key: str
    token: int  # the revision that created it: the fencing token
    revision: int  # the latest revision (what the next renewal must name)
    valid_until: float  # time.monotonic() after which this node must not act on it
    label: str = ""  # what the lease is for, shown by `actorsrc cluster status` (a partition's handler)


class LeaseValue(msgspec.Struct, frozen=True):
    node: str
    token: int = 0  # 0 in the create request itself: its revision is the token
    label: str = ""


class Holder(msgspec.Struct, frozen=True):
    """Who holds a lease, as the bucket says."""

    key: str
    node: str
    token: int
    label: str = ""


def trusted_for(ttl: float) -> float:
    """How long after sending a renewal the lease is trusted: the TTL less a margin for clock drift and
    for acting on a decision already taken."""
    return ttl - min(1.0, ttl * 0.2)


class LeaseBook:
    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.held: dict[str, Lease] = {}
        self.base = 0  # what fencing tokens are counted above (see `sync_epoch`)

    def took(self, key: str, revision: int, sent: float, label: str = "", token: int | None = None) -> Lease:
        token = revision if token is None else token
        lease = Lease(key, token, revision, sent + trusted_for(self.ttl), label)
        self.held[key] = lease
        return lease

    def renewed(self, key: str, revision: int, sent: float) -> None:
        lease = self.held.get(key)
        if lease is not None:
            lease.revision = revision
            lease.valid_until = sent + trusted_for(self.ttl)

    def dropped(self, key: str) -> Lease | None:
        return self.held.pop(key, None)

    def expired(self) -> list[str]:
        now = self.clock()
        return [key for key, lease in self.held.items() if lease.valid_until <= now]


_ENCODE = msgspec.json.Encoder().encode
_DECODE = msgspec.json.Decoder(LeaseValue).decode
EPOCH_KEY = "epoch"
"""The leases bucket's key that holds the base its revisions are counted above (see `sync_epoch`)."""


async def sync_epoch(kv: KeyValue, book: LeaseBook, highest_fence: Callable[[], Awaitable[int]]) -> None:
    """Agree with the other nodes on the base of this bucket's fencing tokens (a token is the base plus a
    revision) and keep its key alive; sets `book.base`.

    Revisions start again at 1 in a bucket created anew (deleted to change the lease time, or lost with
    a NATS server's storage), while the store keeps every fence it was given. So a node that finds no base
    proposes the store's highest fence (or its own base, if higher) with compare-and-set, and every node
    takes the highest base it sees: a higher base only makes tokens larger, which is always safe. The
    nodes rewrite the key every heartbeat (by revision, never blindly), so the bucket's TTL never expires
    it while a node lives; once every node is gone the next one sets it again from the store.
    """
    for _ in range(2):  # a proposal beaten by another node's: read theirs
        entry = await _read_epoch(kv)
        if entry is None:
            base = max(book.base, await highest_fence())
            try:
                await kv.create(EPOCH_KEY, str(base).encode())
            except KeyWrongLastSequenceError:
                continue
            book.base = base
            return
        stored, revision = entry
        book.base = max(book.base, stored)
        try:
            await kv.update(EPOCH_KEY, str(book.base).encode(), last=revision)
        except KeyWrongLastSequenceError:
            continue  # another node rewrote it meanwhile: read it again
        return


async def read_epoch(kv: KeyValue) -> int:
    """The base of the bucket's tokens as stored (0 while no node has set it)."""
    entry = await _read_epoch(kv)
    return 0 if entry is None else entry[0]


async def _read_epoch(kv: KeyValue) -> tuple[int, int] | None:
    try:
        entry = await kv.get(EPOCH_KEY)
    except KeyNotFoundError:
        return None
    if entry.revision is None:
        return None
    return int(entry.value or b"0"), entry.revision


class LeaseKeeper:
    """Takes, renews and releases this node's leases in `kv` (a bucket created with TTL = the lease TTL)."""

    def __init__(self, kv: KeyValue, node_id: str, book: LeaseBook, request_timeout: float) -> None:
        self.kv = kv
        self.node_id = node_id
        self.book = book
        self.request_timeout = request_timeout

    async def take(self, key: str, label: str = "") -> Lease | None:
        """The lease on `key` if nobody holds it; None if somebody does."""
        sent = self.book.clock()
        try:
            created = self.kv.create(key, _ENCODE(LeaseValue(self.node_id, 0, label)))
            revision = await within(self.request_timeout, created)
        except KeyWrongLastSequenceError:
            return None
        except TimeoutError:
            # The create may have been applied with its reply lost: then the key is ours, not anyone's.
            found = await self._ours(key, 0)
            if found is None:
                raise
            revision = found
        return self.book.took(key, revision, sent, label, token=self.book.base + revision)

    async def _ours(self, key: str, token: int) -> int | None:
        """The key's revision if it holds this node's lease with `token` (or as just created: token 0,
        which only this node's latest create of the key can have written), else None."""
        try:
            entry = await within(self.request_timeout, self.kv.get(key))
        except KeyNotFoundError:
            return None
        if not entry.value or entry.revision is None:
            return None
        try:
            value = _DECODE(entry.value)
        except msgspec.DecodeError:
            return None
        return entry.revision if value.node == self.node_id and value.token in (0, token) else None

    async def renew(self, keys: Iterable[str]) -> list[str]:
        """Renew the given held leases at once; returns the keys whose lease was refused (taken over or
        gone). A renewal that fails for another reason (NATS unreachable) is retried next round; the
        lease runs out by itself if that keeps happening (see `LeaseBook.expired`)."""
        leases = [self.book.held[key] for key in keys if key in self.book.held]
        sent = self.book.clock()
        results = await asyncio.gather(
            *(
                within(
                    self.request_timeout,
                    self.kv.update(
                        lease.key, _ENCODE(LeaseValue(self.node_id, lease.token, lease.label)), last=lease.revision
                    ),
                )
                for lease in leases
            ),
            return_exceptions=True,
        )
        refused: list[str] = []
        for lease, result in zip(leases, results, strict=True):
            if isinstance(result, int):
                self.book.renewed(lease.key, result, sent)
            elif isinstance(result, KeyWrongLastSequenceError):
                # An earlier renewal may have been applied with its reply lost: the key then still holds
                # this very lease at a later revision. Adopt it (its trust is not extended by this round).
                current = await self._ours(lease.key, lease.token)
                if current is None:
                    refused.append(lease.key)
                else:
                    lease.revision = current
        return refused

    async def release(self, key: str) -> None:
        """Give the lease up (after the work under it is finished); a failure only delays the next owner
        until the TTL runs out."""
        lease = self.book.dropped(key)
        if lease is None:
            return
        try:
            await within(self.request_timeout, self.kv.delete(key, last=lease.revision))
        except Exception:
            # A renewal may have moved the revision on just before: delete at the one it holds now.
            try:
                current = await self._ours(key, lease.token)
                if current is not None:
                    await within(self.request_timeout, self.kv.delete(key, last=current))
            except Exception:  # the TTL frees it anyway
                return

    async def holders(self) -> dict[str, Holder]:
        """Every lease in the bucket, by key (for `actorsrc cluster status`)."""
        found: dict[str, Holder] = {}
        watcher = await self.kv.watchall(ignore_deletes=True)
        try:
            async for entry in watcher:
                if entry is None:
                    break
                if entry.key == EPOCH_KEY:
                    continue
                if entry.value:
                    try:
                        value = _DECODE(entry.value)
                    except msgspec.DecodeError:
                        continue
                    token = value.token or self.book.base + (entry.revision or 0)
                    found[entry.key] = Holder(entry.key, value.node, token, value.label)
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return found
