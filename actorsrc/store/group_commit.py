"""Group commit: appends from many actors wait in one queue and are written in one transaction.

The committer is driver-agnostic: an adapter gives it a function that writes a batch and returns,
for each append, its result or the error that append alone failed with.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import anyio

from actorsrc.errors import OutcomeUnknownError, StoreClosedError, StoreError
from actorsrc.observability import logger
from actorsrc.records import AppendResult, NewEvent, Snapshot
from actorsrc.store.base import ExpectedVersion, Fence
from actorsrc.store.limits import DEFAULT_LIMITS, StoreLimits


@dataclass(slots=True)
class PendingAppend:
    stream_id: str
    events: Sequence[NewEvent]
    expected_version: ExpectedVersion
    reply: asyncio.Future[AppendResult] = field(repr=False)
    fence: Fence | None = None
    """(shard, token): the append is refused if the shard's stored fence is above the token."""


@dataclass(slots=True)
class PendingSnapshot:
    snapshot: Snapshot
    keep: int
    reply: asyncio.Future[None] = field(repr=False)


BatchWriter = Callable[[list[PendingAppend], list[PendingSnapshot]], Awaitable[list[AppendResult | BaseException]]]
"""Writes appends and snapshots in one transaction; returns each append's outcome. If it raises,
nothing in the batch was written."""

ImmediateWriter = Callable[[list[PendingAppend]], list[AppendResult | BaseException] | None]
"""Writes appends right away, on the caller's thread, or declines (None) without writing anything.
If it raises, nothing was written either: the appends then go the usual way."""


class GroupCommitter:
    """Queues appends and hands them to `write_batch` in batches of up to `max_batch_events` events.

    `limits` bounds the queues: `wait_for_room` holds callers while `max_queued_appends` appends wait
    (`submit` itself never waits, see `StoreLimits.max_queued_appends`), and a snapshot beyond
    `max_queued_snapshots` is refused at once.
    """

    def __init__(
        self,
        write_batch: BatchWriter,
        *,
        max_batch_events: int,
        store_name: str,
        split_on: tuple[type[BaseException], ...] = (),
        limits: StoreLimits = DEFAULT_LIMITS,
        write_now: ImmediateWriter | None = None,
    ) -> None:
        self._write_batch = write_batch
        self._write_now = write_now
        self._writing = False  # a batch is being written (the committer task is inside `_write`)
        self._split_on = split_on
        self._max_batch_events = max_batch_events
        self._store_name = store_name
        self.limits = limits
        self._queue: deque[PendingAppend] = deque()
        self._snapshots: list[PendingSnapshot] = []
        self._has_work = asyncio.Event()
        self._room = asyncio.Event()  # set when the queue has dropped below max_queued_appends
        self._closing = False
        self.listeners: list[Callable[[int], None]] = []  # told the last position after each commit
        self.batches_written = 0
        self.appends_written = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def full(self) -> bool:
        """Whether `max_queued_appends` appends are waiting: `append` then waits for room."""
        return len(self._queue) >= self.limits.max_queued_appends

    async def wait_for_room(self) -> None:
        """Wait until fewer than `max_queued_appends` appends are queued, or the committer is closing."""
        while len(self._queue) >= self.limits.max_queued_appends and not self._closing:
            self._room.clear()
            await self._room.wait()

    def submit(
        self, stream_id: str, events: Sequence[NewEvent], expected: ExpectedVersion, fence: Fence | None = None
    ) -> asyncio.Future[AppendResult]:
        if self._closing:
            raise StoreClosedError(f"{self._store_name} is closed; open it again to append")
        reply: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        pending = PendingAppend(stream_id, events, expected, reply, fence)
        if self._write_now is not None and not (self._queue or self._snapshots or self._writing):
            # Nothing else to write: a store that can commit it right here saves the committer's turn.
            try:
                outcomes = self._write_now([pending])
            except Exception:  # nothing was written: the usual path tries, and reports, properly
                outcomes = None
            if outcomes is not None:
                self._settle([pending], outcomes)
                return reply
        self._queue.append(pending)
        self._has_work.set()
        return reply

    def submit_snapshot(self, snapshot: Snapshot, keep: int) -> asyncio.Future[None]:
        """Queue a snapshot; it is written with the next batch of appends (sharing its commit)."""
        if self._closing:
            raise StoreClosedError(f"{self._store_name} is closed; open it again to save snapshots")
        waiting = len(self._snapshots)
        if waiting >= self.limits.max_queued_snapshots:
            raise StoreError(
                f"{self._store_name}: {waiting} snapshots already wait for the next commit"
                " (StoreLimits.max_queued_snapshots), so this one is dropped; a snapshot only saves replay"
                " time and a later one will be taken"
            )
        reply: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._snapshots.append(PendingSnapshot(snapshot, keep, reply))
        self._has_work.set()
        return reply

    def close(self) -> None:
        """Refuse new appends; `run` returns once everything queued is written."""
        self._closing = True
        self._has_work.set()
        self._room.set()  # callers waiting for room are told the store is closed

    async def run(self) -> None:
        """The writer loop. Never raises: a failed batch fails its appends, not the loop."""
        while True:
            await self._has_work.wait()
            self._has_work.clear()
            while self._queue or self._snapshots:
                batch = self._take_batch()
                snapshots, self._snapshots = self._snapshots, []
                if len(self._queue) < self.limits.max_queued_appends:
                    self._room.set()
                with anyio.CancelScope(shield=True):  # a started batch always finishes and replies
                    self._writing = True
                    try:
                        await self._write(batch, snapshots)
                    except Exception as exc:  # a bug must not end the loop: every later append would hang
                        self._settle_unknown(batch, snapshots, exc)
                    except asyncio.CancelledError as exc:  # a driver's stray cancellation, not ours: go on
                        self._settle_unknown(batch, snapshots, exc)
                        task = asyncio.current_task()
                        if task is not None and task.cancelling():
                            raise
                    finally:
                        self._writing = False
            if self._closing:
                return

    def _take_batch(self) -> list[PendingAppend]:
        batch: list[PendingAppend] = []
        events = 0
        queue = self._queue
        while queue and (not batch or events + len(queue[0].events) <= self._max_batch_events):
            pending = queue.popleft()
            events += len(pending.events)
            batch.append(pending)
        return batch

    async def _write_splitting(
        self, batch: list[PendingAppend], snapshots: list[PendingSnapshot]
    ) -> list[AppendResult | BaseException]:
        """Write the batch; if one bad append (an error in `split_on`) broke the transaction, write each
        append alone so that it fails by itself and the others still commit. Snapshots are an
        optimisation: one that broke the batch is dropped, and its saver told."""
        try:
            return await self._write_batch(batch, snapshots)
        except self._split_on:
            if len(batch) + len(snapshots) <= 1:
                raise
        outcomes: list[AppendResult | BaseException] = []
        for pending in batch:
            try:
                outcomes.extend(await self._write_batch([pending], []))
            except Exception as exc:
                error = StoreError(f"append to {pending.stream_id!r} failed: {exc!r}")
                error.__cause__ = exc  # the breaker tells one bad append from a failing store by it
                outcomes.append(error)
        for pending_snapshot in snapshots:
            try:
                await self._write_batch([], [pending_snapshot])
            except Exception as exc:
                if not pending_snapshot.reply.done():
                    error = StoreError(f"snapshot of {pending_snapshot.snapshot.stream_id!r} failed: {exc!r}")
                    pending_snapshot.reply.set_exception(error)
        return outcomes

    async def _write(self, batch: list[PendingAppend], snapshots: list[PendingSnapshot]) -> None:
        try:
            outcomes = await self._write_splitting(batch, snapshots)
        except Exception as exc:  # the whole transaction failed: nothing in it was written
            logger.error("store.batch_failed", store=self._store_name, appends=len(batch), error=repr(exc))
            outcomes = [self._batch_error(len(batch), exc) for _ in batch]
            for pending_snapshot in snapshots:
                if not pending_snapshot.reply.done():
                    pending_snapshot.reply.set_exception(self._batch_error(len(batch), exc))
        else:
            for pending_snapshot in snapshots:
                if not pending_snapshot.reply.done():
                    pending_snapshot.reply.set_result(None)
        self._settle(batch, outcomes)

    def _settle(self, batch: list[PendingAppend], outcomes: list[AppendResult | BaseException]) -> None:
        """Answer each append of a written batch, then tell the listeners the new last position."""
        if len(outcomes) != len(batch):  # a writer bug; what was written is unknown
            raise RuntimeError(f"the batch writer returned {len(outcomes)} outcomes for {len(batch)} appends")
        self.batches_written += 1
        self.appends_written += len(batch)
        last = 0
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, AppendResult) and outcome.last_position > last:
                last = outcome.last_position
            if pending.reply.done():  # the caller was cancelled; the write stands
                continue
            if isinstance(outcome, BaseException):
                pending.reply.set_exception(outcome)
            else:
                pending.reply.set_result(outcome)
        if last:
            self._tell_listeners(last)

    def _tell_listeners(self, last: int) -> None:
        """Tell each listener the new last position; one that raises is logged and the others still hear."""
        for listener in tuple(self.listeners):  # a listener may remove itself
            try:
                listener(last)
            except Exception as exc:
                logger.error(
                    "store.listener_failed",
                    store=self._store_name,
                    listener=repr(listener),
                    position=last,
                    error=repr(exc),
                )

    def _settle_unknown(self, batch: list[PendingAppend], snapshots: list[PendingSnapshot], exc: BaseException) -> None:
        """After an unexpected error while writing or settling a batch: tell every caller not yet answered
        that the outcome is unknown (the batch may have committed), and keep serving."""
        for pending in batch:
            if not pending.reply.done():
                error = OutcomeUnknownError(
                    f"{self._store_name}: the outcome of this append to {pending.stream_id!r} is unknown after an"
                    f" internal error ({exc!r}); retry with the same command id"
                )
                error.__cause__ = exc
                pending.reply.set_exception(error)
        for pending_snapshot in snapshots:
            if not pending_snapshot.reply.done():
                pending_snapshot.reply.set_exception(
                    StoreError(f"snapshot of {pending_snapshot.snapshot.stream_id!r} may not be saved: {exc!r}")
                )
        with contextlib.suppress(Exception):  # even a broken logger must not end the loop
            logger.error("store.committer_failed", store=self._store_name, appends=len(batch), error=repr(exc))

    def _batch_error(self, size: int, cause: Exception) -> StoreError:
        error = StoreError(f"{self._store_name} could not write a batch of {size} appends: {cause!r}")
        error.__cause__ = cause
        return error
