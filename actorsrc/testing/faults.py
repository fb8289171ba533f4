"""A store wrapper for fault injection: make appends fail (always or at random), hang, or count them."""

from __future__ import annotations

import random
from collections.abc import Sequence

import anyio

from actorsrc.errors import StoreError
from actorsrc.messages import AppendResult, NewEvent, RecordedEvent, Snapshot
from actorsrc.store.base import EventStore, ExpectedVersion, SnapshotStore


class FaultyStore:
    """Delegates to `inner`, with switches to break appends on purpose."""

    def __init__(self, inner: EventStore, *, seed: int = 0) -> None:
        self.inner = inner
        self.appends = 0
        self.appended_events = 0
        self.failures_to_inject = 0
        self.failure_rate = 0.0
        self.failures_injected = 0
        self._random = random.Random(seed)
        self._gate: anyio.Event | None = None

    def fail_next_appends(self, count: int) -> None:
        """The next `count` appends raise `StoreError` without writing anything."""
        self.failures_to_inject = count

    def fail_at_random(self, rate: float) -> None:
        """Each append fails with probability `rate` (seeded, so runs repeat)."""
        self.failure_rate = rate

    def hold_appends(self) -> None:
        """Appends wait (write nothing) until `release_appends`: a hung database."""
        self._gate = anyio.Event()

    def release_appends(self) -> None:
        if self._gate is not None:
            self._gate.set()
            self._gate = None

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: ExpectedVersion
    ) -> AppendResult:
        if self._gate is not None:
            await self._gate.wait()
        if self.failures_to_inject > 0 or (self.failure_rate and self._random.random() < self.failure_rate):
            self.failures_to_inject = max(0, self.failures_to_inject - 1)
            self.failures_injected += 1
            raise StoreError(f"injected failure appending to {stream_id!r}")
        result = await self.inner.append(stream_id, events, expected_version)
        self.appends += 1
        self.appended_events += len(events)
        return result

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        return await self.inner.read_stream(stream_id, from_version, to_version)

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        return await self.inner.read_all(after_position, limit)

    async def find_commands(self, stream_id: str, command_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        return await self.inner.find_commands(stream_id, command_ids)

    async def stream_version(self, stream_id: str) -> int:
        return await self.inner.stream_version(stream_id)

    async def last_position(self) -> int:
        return await self.inner.last_position()

    async def save_snapshot(self, snapshot: Snapshot, *, keep: int = 2) -> None:
        if not isinstance(self.inner, SnapshotStore):
            raise StoreError("the wrapped store keeps no snapshots")
        await self.inner.save_snapshot(snapshot, keep=keep)

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        if not isinstance(self.inner, SnapshotStore):
            return None
        return await self.inner.load_snapshot(stream_id)
