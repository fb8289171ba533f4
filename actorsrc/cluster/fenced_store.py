"""The store as a clustered node's actors see it: every append carries its shard's fencing token.

The token is the one this node took the shard's lease with, kept after the lease is lost: a late append
from a node that lost the shard (paused past its lease, cut off from NATS) carries its old token, and
the store refuses it once the new owner has raised the fence. Reads pass through unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from actorsrc.records import AppendResult, NewEvent, RecordedEvent, Snapshot
from actorsrc.store.base import ExpectedVersion, Fence, FencingStore, StoredPayload


class FencedStoreView:
    """Implements the `EventStore`, `AppendSubmitter`, `SnapshotStore` and `PayloadReader` ports over a
    `FencingStore` (SQLite, PostgreSQL, in-memory), adding ``fence=fence_of(stream_id)`` to appends."""

    def __init__(self, store: FencingStore, fence_of: Callable[[str], Fence]) -> None:
        self.inner: Any = store
        self.fence_of = fence_of

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: ExpectedVersion
    ) -> AppendResult:
        result: AppendResult = await self.inner.append(
            stream_id, events, expected_version, fence=self.fence_of(stream_id)
        )
        return result

    def submit_append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: ExpectedVersion
    ) -> asyncio.Future[AppendResult]:
        future: asyncio.Future[AppendResult] = self.inner.submit_append(
            stream_id, events, expected_version, fence=self.fence_of(stream_id)
        )
        return future

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        found: list[RecordedEvent] = await self.inner.read_stream(stream_id, from_version, to_version)
        return found

    async def read_stream_payloads(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[StoredPayload]:
        found: list[StoredPayload] = await self.inner.read_stream_payloads(stream_id, from_version, to_version)
        return found

    async def read_all(
        self, after_position: int = 0, limit: int = 1000, *, slices: tuple[int, int] | None = None
    ) -> list[RecordedEvent]:
        found: list[RecordedEvent] = await self.inner.read_all(after_position, limit, slices=slices)
        return found

    async def stream_version(self, stream_id: str) -> int:
        version: int = await self.inner.stream_version(stream_id)
        return version

    async def find_commands(self, stream_id: str, command_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = await self.inner.find_commands(stream_id, command_ids)
        return found

    async def last_position(self) -> int:
        position: int = await self.inner.last_position()
        return position

    async def save_snapshot(self, snapshot: Snapshot, *, keep: int = 2) -> None:
        await self.inner.save_snapshot(snapshot, keep=keep)

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        found: Snapshot | None = await self.inner.load_snapshot(stream_id)
        return found
