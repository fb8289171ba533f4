"""A store wrapper for fault injection: make appends fail (always or at random), hang, or count them.

`FaultyStore(inner)` offers `append` only, so the runtime persists every batch from an actor task.
`FaultyStore(inner, inline=True)` also offers `submit_append`, the task-free path the runtime takes with a
group-committing store; failures, holds and persist timeouts work the same way on both paths.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

import anyio

from actorsrc.errors import StoreError
from actorsrc.records import AppendResult, NewEvent, RecordedEvent, Snapshot
from actorsrc.store.base import AppendSubmitter, EventStore, ExpectedVersion, Fence, FencingStore, SnapshotStore


class FaultyStore:
    """Delegates to `inner`, with switches to break appends on purpose.

    With ``inline=True`` the instance is an `InlineFaultyStore`: an `AppendSubmitter`, like the real stores.
    """

    def __new__(cls, inner: EventStore, *, seed: int = 0, inline: bool = False) -> FaultyStore:
        if inline and cls is FaultyStore:
            return super().__new__(InlineFaultyStore)
        return super().__new__(cls)

    def __init__(self, inner: EventStore, *, seed: int = 0, inline: bool = False) -> None:
        self.inner = inner
        self.appends = 0
        self.appended_events = 0
        self.failures_to_inject = 0
        self.failure_rate = 0.0
        self.failures_injected = 0
        self.held_appends = 0
        """Appends waiting at the gate now (see `hold_appends` and `held`)."""
        self._random = random.Random(seed)
        self._gate: anyio.Event | None = None
        self._held_changed: anyio.Event | None = None  # made on first use: a store may be built outside a loop

    def fail_next_appends(self, count: int) -> None:
        """The next `count` appends raise `StoreError` without writing anything."""
        self.failures_to_inject = count

    def fail_at_random(self, rate: float) -> None:
        """Each append fails with probability `rate` (seeded, so runs repeat)."""
        self.failure_rate = rate

    def hold_appends(self) -> None:
        """Appends wait (write nothing) until `release_appends`: a hung database."""
        if self._gate is None:
            self._gate = anyio.Event()

    def release_appends(self) -> None:
        """Let every held append go on (each may still fail as injected); later appends pass straight through."""
        if self._gate is not None:
            self._gate.set()
            self._gate = None

    async def held(self, count: int = 1, *, timeout: float = 10.0) -> None:
        """Return once at least `count` appends wait at the gate: their batches are in flight, nothing is
        written. A test waits on this instead of sleeping; `TimeoutError` after `timeout` seconds."""
        with anyio.move_on_after(timeout):
            while self.held_appends < count:
                if self._held_changed is None:
                    self._held_changed = anyio.Event()
                await self._held_changed.wait()
            return
        raise TimeoutError(f"{self.held_appends} of the {count} appends awaited reached the gate in {timeout} s")

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion,
        *,
        fence: Fence | None = None,
    ) -> AppendResult:
        if self._gate is not None:
            await self._wait_at_gate(self._gate)
        self._maybe_fail(stream_id)
        if fence is None:
            result = await self.inner.append(stream_id, events, expected_version)
        else:
            result = await _fencing(self.inner).append(stream_id, events, expected_version, fence=fence)
        self._count(events)
        return result

    async def raise_fence(self, shard: int, token: int) -> int:
        return await _fencing(self.inner).raise_fence(shard, token)

    async def fences(self) -> dict[int, int]:
        return await _fencing(self.inner).fences()

    async def _wait_at_gate(self, gate: anyio.Event) -> None:
        self._held(+1)
        try:
            await gate.wait()
        finally:
            self._held(-1)

    def _held(self, change: int) -> None:
        self.held_appends += change
        if self._held_changed is not None:
            self._held_changed.set()
            self._held_changed = None

    def _maybe_fail(self, stream_id: str) -> None:
        if self.failures_to_inject > 0 or (self.failure_rate and self._random.random() < self.failure_rate):
            self.failures_to_inject = max(0, self.failures_to_inject - 1)
            self.failures_injected += 1
            raise StoreError(f"injected failure appending to {stream_id!r}")

    def _count(self, events: Sequence[NewEvent]) -> None:
        self.appends += 1
        self.appended_events += len(events)

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        return await self.inner.read_stream(stream_id, from_version, to_version)

    async def read_all(
        self, after_position: int = 0, limit: int = 1000, *, slices: tuple[int, int] | None = None
    ) -> list[RecordedEvent]:
        return await self.inner.read_all(after_position, limit, slices=slices)

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


class InlineFaultyStore(FaultyStore):
    """A `FaultyStore` that is also an `AppendSubmitter`, so the runtime persists without a task per batch.

    Its futures behave as a group-committing store's: a failure arrives through the future, and a future
    cancelled by the runtime's persist-timeout watchdog while its append is held writes nothing.
    """

    def __init__(self, inner: EventStore, *, seed: int = 0, inline: bool = True) -> None:
        super().__init__(inner, seed=seed)
        self.submitted = 0
        """Appends that came through `submit_append` (the runtime's task-free path)."""
        self._tasks: set[asyncio.Task[None]] = set()  # held submissions, referenced until they finish

    def submit_append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion,
        *,
        fence: Fence | None = None,
    ) -> asyncio.Future[AppendResult]:
        loop = asyncio.get_running_loop()
        self.submitted += 1
        if self._gate is None:
            try:
                self._maybe_fail(stream_id)
            except StoreError as exc:
                failed: asyncio.Future[AppendResult] = loop.create_future()
                failed.set_exception(exc)
                return failed
            return self._submit_inner(stream_id, events, expected_version, fence)
        outer: asyncio.Future[AppendResult] = loop.create_future()
        task = loop.create_task(
            self._submit_when_released(self._gate, outer, stream_id, events, expected_version, fence)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        outer.add_done_callback(lambda done: task.cancel() if done.cancelled() else None)
        return outer

    async def _submit_when_released(
        self,
        gate: anyio.Event,
        outer: asyncio.Future[AppendResult],
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion,
        fence: Fence | None,
    ) -> None:
        try:
            await self._wait_at_gate(gate)
        except asyncio.CancelledError:
            return  # the runtime gave up on the append (persist timeout): nothing was written
        if outer.done():
            return
        try:
            self._maybe_fail(stream_id)
            inner = self._submit_inner(stream_id, events, expected_version, fence)
        except Exception as exc:
            outer.set_exception(exc)
            return
        outer.add_done_callback(lambda done: inner.cancel() if done.cancelled() else None)
        inner.add_done_callback(lambda done: _copy_outcome(done, outer))

    def _submit_inner(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: ExpectedVersion, fence: Fence | None
    ) -> asyncio.Future[AppendResult]:
        inner = self.inner
        if fence is None and isinstance(inner, AppendSubmitter):
            future = inner.submit_append(stream_id, events, expected_version)
        elif isinstance(inner, AppendSubmitter) and isinstance(inner, FencingStore):
            future = inner.submit_append(stream_id, events, expected_version, fence=fence)
        elif fence is None:
            future = asyncio.ensure_future(inner.append(stream_id, events, expected_version))
        else:
            future = asyncio.ensure_future(_fencing(inner).append(stream_id, events, expected_version, fence=fence))

        def count(done: asyncio.Future[AppendResult]) -> None:
            if not done.cancelled() and done.exception() is None:
                self._count(events)

        if future.done():  # committed at once (a lone append): counted before the caller can look
            count(future)
        else:
            future.add_done_callback(count)
        return future


def _fencing(store: EventStore) -> FencingStore:
    if not isinstance(store, FencingStore):
        raise StoreError(f"the wrapped store {type(store).__name__} keeps no shard fences")
    return store


def _copy_outcome(source: asyncio.Future[Any], target: asyncio.Future[Any]) -> None:
    if target.done():
        if not source.cancelled():
            source.exception()  # retrieved: the caller is gone, the outcome is in the store
        return
    if source.cancelled():
        target.cancel()
    elif (error := source.exception()) is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())
