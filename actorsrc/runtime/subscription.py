"""Subscriptions (the dispatcher): one per handler, tailing the global log from its checkpoint.

A subscription reads the log in batches, hands each batch to its handler, and moves its checkpoint
in the same read-model transaction as the handler's writes. It wakes as soon as this process appends
(and polls slowly for appends by other processes), so an idle subscription costs nothing.

Failures (see `handler_health`): the handler's own (its code raising, a batch overrunning its
timeout, an event that does not decode) follow its `FailurePolicy`: retry with backoff, then park the
event or stop. The read model's and the store's are retried until they clear and never skip an event.
Each commit moves the checkpoint only from where the subscription believes it is, so an attempt that
looked failed but did commit (a timeout or a cancel during COMMIT) is recognised, never applied twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio

from actorsrc.errors import EventDecodeError, StoreClosedError, WaitTimeoutError
from actorsrc.hashing import slice_of
from actorsrc.observability import logger
from actorsrc.projection import EventEnvelope, Handler, Projection, envelope_of
from actorsrc.readmodel.base import (
    Checkpoint,
    CheckpointFencedError,
    CheckpointMovedError,
    FencedCheckpoints,
    HandlerStuckError,
    ReadModel,
)
from actorsrc.records import RecordedEvent
from actorsrc.runtime.giving_up import FailedEvent, log_parked, park
from actorsrc.runtime.handler_health import Health, describe, is_infrastructure, is_log_read_failure
from actorsrc.runtime.position_waiters import PositionWaiters
from actorsrc.runtime.process import Addressing, ProcessRunner
from actorsrc.runtime.subscription_partition import PartitionSpec, layout_conflict
from actorsrc.runtime.subscription_signals import Fenced, HandlerStopped, Resync
from actorsrc.runtime.undecodable_rows import reread, undecodable_position
from actorsrc.store.base import EventStore

STOP_TIMEOUT = 10.0
"""Seconds `stop` waits for a subscription's task; the read models bound their own waits well within it."""

__all__ = ["STOP_TIMEOUT", "HandlerStopped", "Subscription"]


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class Subscription:
    """One handler's subscription; in a cluster, one `partition` of it (its slices, its own checkpoint,
    claimed with the partition lease's fencing token `fence` before it starts)."""

    def __init__(
        self,
        handler: Handler,
        store: EventStore,
        addressing: Addressing,
        read_model: ReadModel,
        poll_interval: float,
        partition: PartitionSpec | None = None,
    ) -> None:
        self.handler = handler
        self.name = handler.name
        self.partition = partition
        self.checkpoint_name = handler.name if partition is None else partition.checkpoint_name(handler.name)
        self.slices = None if partition is None else partition.slices
        self.fence: int | None = None
        self.fenced = False
        self._finishing = False
        self._head_seen = 0  # partitions: the log's head when the last short read started
        self.store = store
        self.read_model = read_model
        self.poll_interval = poll_interval
        self.position = 0
        self.health = Health(handler.name)
        self.events_handled = 0
        self.parked = 0
        self._codec = handler.event_codec()
        self._wake = asyncio.Event()
        self._waiters = PositionWaiters()
        self._task: asyncio.Task[None] | None = None
        self._process = ProcessRunner(handler, addressing, read_model) if not isinstance(handler, Projection) else None

    @property
    def status(self) -> str:
        return self.health.status

    @property
    def stop_reason(self) -> str | None:
        return self.health.stop_reason

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        if self.status in ("stopped", "closed"):
            self.health.set("starting")
        self.fenced = self._finishing = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Cancel the subscription and wait for it, at most `STOP_TIMEOUT` seconds."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with anyio.CancelScope(shield=True):
            done, _ = await asyncio.wait([task], timeout=STOP_TIMEOUT)
        if not done:
            task.add_done_callback(_retrieve)
            logger.error("handler.stop_timeout", handler=self.name, position=self.position, seconds=STOP_TIMEOUT)

    async def finish(self, timeout: float) -> None:
        """Stop after the batch in hand (a partition handed off), cancelling after `timeout` seconds."""
        task = self._task
        if task is None:
            return
        self._finishing = True
        self._wake.set()
        with anyio.CancelScope(shield=True):
            await asyncio.wait([task], timeout=timeout)
        await self.stop()

    @property
    def active(self) -> bool:
        """Whether its task runs (a partition held by this node)."""
        return self._task is not None and not self._task.done()

    def wake(self, _position: int = 0) -> None:
        self._wake.set()

    async def _run(self) -> None:
        try:
            await self._start_position()
            # `parked` counts what waits in the dead-letter table now, including from earlier runs.
            parked = await self._until_done("counting parked events", lambda: self.read_model.parked(self.name))
            self.parked = sum(1 for event in parked if self._covers(event.stream_id))
            if isinstance(self.handler, Projection):
                await self._setup(self.handler)
            self.health.set("running")
            self._release_waiters()
            await self._follow()
            self.health.set("closed", "handed off")
        except (Fenced, CheckpointFencedError) as fenced:
            self.fenced = True
            self.health.set("closed", f"fenced: {fenced}")
            logger.warning("handler.partition_fenced", handler=self.name, partition=self.checkpoint_name)
        except HandlerStopped as stopped:
            self._stop(str(stopped))
        except StoreClosedError as closed:
            self._stop(f"the store or read model is closed: {closed}")
        except Exception as exc:  # a bug: stop, never take the runtime down
            self._stop(repr(exc))

    def _covers(self, stream_id: str) -> bool:
        return self.slices is None or self.slices[0] <= slice_of(stream_id) < self.slices[1]

    async def _start_position(self) -> None:
        model = self.read_model
        name = self.checkpoint_name
        fence = self.fence
        if isinstance(model, FencedCheckpoints):
            found = await self._until_done(
                "reading the partitions' checkpoints", lambda: model.partition_checkpoints(self.name)
            )
            conflict = layout_conflict(self.name, self.partition, found)
            if conflict is not None:
                raise HandlerStopped(conflict)
        if fence is None:
            self.position = await self._until_done("reading the checkpoint", lambda: model.checkpoint(name))
            return
        assert isinstance(model, FencedCheckpoints)
        self.position = await self._until_done("claiming the checkpoint", lambda: model.claim_checkpoint(name, fence))
        if self.position == 0:
            # First run as partitions: carry on from where the handler got unpartitioned (every slice
            # was handled up to there), moving the partition's own checkpoint there first.
            single = await self._until_done("reading the checkpoint", lambda: model.checkpoint(self.name))
            if single > 0:
                await self._commit([], single)
                self.position = single

    def _stop(self, reason: str) -> None:
        self.health.set("stopped", reason)
        logger.error("handler.stopped", handler=self.name, position=self.position, reason=reason)
        # Nothing moves until someone restarts it: whoever waits for it hears so now, not at their timeout.
        self._waiters.fail_all(self.stopped_error)

    def stopped_error(self, target: int) -> WaitTimeoutError:
        return WaitTimeoutError(
            f"{self.name!r} will not reach position {target}: it is stopped at {self.position} ({self.stop_reason}); "
            "fix the cause, then runtime.restart_handler"
        )

    async def _until_done(
        self, what: str, op: Callable[[], Awaitable[Any]], retry: Callable[[BaseException], bool] = is_infrastructure
    ) -> Any:
        return await self.health.until_done(what, op, self.position, retry)

    async def _setup(self, projection: Projection) -> None:
        policy = projection.failure
        attempt = 0
        while True:
            try:
                await self._until_done("setup", lambda: self.read_model.setup(projection, timeout=policy.timeout))
                return
            except HandlerStuckError as stuck:
                raise HandlerStopped(f"setup: {stuck}") from stuck
            except StoreClosedError:
                raise
            except Exception as exc:
                attempt += 1
                if attempt > policy.retries:
                    raise HandlerStopped(f"setup failed {attempt} times: {describe(exc)}") from exc
                await self._failed_attempt(self.position, attempt, f"setup: {describe(exc)}")

    async def _failed_attempt(self, position: int, attempt: int, error: str) -> None:
        self.health.failing(error)
        logger.warning("handler.retry", handler=self.name, position=position, attempt=attempt, error=error)
        await anyio.sleep(self.handler.failure.delay(attempt))

    # -- reading the log ------------------------------------------------------------------------

    async def _follow(self) -> None:
        store = self.store
        batch_size = self.handler.batch_size
        ahead: tuple[int, asyncio.Task[list[RecordedEvent]]] | None = None
        loop = asyncio.get_running_loop()
        try:
            while not self._finishing:
                try:
                    records: list[RecordedEvent] | None = None
                    if self.slices is not None:
                        await self._follow_slices(batch_size)
                        continue
                    if ahead is not None:
                        (after, task), ahead = ahead, None
                        try:
                            read = await task
                        except Exception:  # read it again below, where read failures are dealt with
                            read = None
                        records = read if after == self.position else None
                    if records is None:
                        records = await self._read(batch_size)
                    if not records:
                        with anyio.move_on_after(self.poll_interval):
                            await self._wake.wait()
                        self._wake.clear()
                        continue
                    if len(records) == batch_size:  # more is waiting: read ahead while this batch is applied
                        task = loop.create_task(store.read_all(records[-1].position, batch_size))
                        task.add_done_callback(_retrieve)
                        ahead = (records[-1].position, task)
                    await self._handle(records)
                except Resync as resync:
                    logger.warning("handler.resync", handler=self.name, expected=self.position, found=resync.found)
                    if ahead is not None:
                        ahead[1].cancel()
                        ahead = None
                    self.position = resync.found
                    self._release_waiters()
        finally:
            if ahead is not None:
                ahead[1].cancel()

    async def _follow_slices(self, batch_size: int) -> None:
        """One step of a partition: its next batch, or, idle, its checkpoint moved to the head it saw
        (so that `wait_for` a position other partitions' events reached is answered from here too)."""
        records = await self._read(batch_size)
        seen = self._head_seen if len(records) < batch_size else 0
        if records:
            await self._handle(records, seen)
            return
        if seen > self.position:
            await self._commit([], seen)
            self._advance(seen)
            return
        with anyio.move_on_after(self.poll_interval):
            await self._wake.wait()
        self._wake.clear()

    async def _read(self, limit: int) -> list[RecordedEvent]:
        """The next rows after the checkpoint. An undecodable row ends a batch before it; on its own, the
        handler's policy applies to it (re-read, then park or stop), and reading goes on past it."""
        store = self.store
        slices = self.slices
        while True:
            after = self.position
            try:
                if slices is None:
                    return list(
                        await self._until_done(
                            "reading the event log", partial(store.read_all, after, limit), is_log_read_failure
                        )
                    )
                # The head first: a short read then saw every event of these slices up to it.
                self._head_seen = await self._until_done("reading the log's head", store.last_position)
                return list(
                    await self._until_done(
                        "reading the event log",
                        partial(store.read_all, after, limit, slices=slices),
                        is_log_read_failure,
                    )
                )
            except EventDecodeError as bad:
                position = undecodable_position(bad, after)
                if position > after + 1 and slices is None:
                    limit = position - after - 1  # the rows before it, as a batch of their own
                    continue
                records = await self._undecodable(bad, position)
                if records:
                    return records
                limit = self.handler.batch_size  # it was parked: go on past it

    async def _undecodable(self, bad: EventDecodeError, position: int) -> list[RecordedEvent]:
        """Apply the policy to the row at `position`, which does not decode: re-read it (the failure may
        have been transient), then park it or stop. Returns the row if a re-read decodes it."""
        store = self.store

        async def read_row() -> list[RecordedEvent]:
            return list(
                await self._until_done(
                    "reading the event log", lambda: store.read_all(position - 1, 1), is_log_read_failure
                )
            )

        records, error, attempt = await reread(
            bad, position, self.handler.failure.retries, read_row, self._failed_attempt
        )
        if records is not None:
            return records
        await self._give_up(FailedEvent(position, bad.stream_id, bad.version, bad.type_name, error, attempt), bad)
        return []

    # -- handling -------------------------------------------------------------------------------

    def envelope(self, record: RecordedEvent) -> EventEnvelope[Any] | None:
        """`record` as the handler sees it, or None for an event type it does not read."""
        if not self._codec.reads(record.type):
            return None
        return envelope_of(self._codec, record)

    async def apply(
        self, envelopes: list[EventEnvelope[Any]], checkpoint: Checkpoint | None, unpark: int | None = None
    ) -> None:
        """Run the handler over `envelopes` and, in the same transaction, move the checkpoint (when
        given) and drop the parked event `unpark` (when given). Raises as the read model does: the
        handler's own errors as themselves, the infrastructure's as `StoreError`s."""
        timeout = self.handler.failure.timeout
        if isinstance(self.handler, Projection):
            await self.read_model.project(self.handler, envelopes, checkpoint, unpark, timeout=timeout)
        else:
            assert self._process is not None
            await self._process.apply(envelopes, checkpoint, unpark, timeout=timeout)

    async def _commit(self, envelopes: list[EventEnvelope[Any]], position: int) -> None:
        """Apply `envelopes` and move the checkpoint to `position`, retrying infrastructure failures."""
        checkpoint = Checkpoint(self.checkpoint_name, position, self.position, self.fence)
        try:
            await self._until_done("applying events", lambda: self.apply(envelopes, checkpoint))
        except CheckpointMovedError as moved:
            raise Resync(moved.found) from None
        except CheckpointFencedError as fenced:
            raise Fenced(str(fenced)) from None
        except HandlerStuckError as stuck:
            raise HandlerStopped(str(stuck)) from stuck
        except StoreClosedError as closed:
            raise HandlerStopped(f"the store or read model is closed: {closed}") from closed

    async def _handle(self, records: list[RecordedEvent], seen: int = 0) -> None:
        last = max(records[-1].position, seen)
        try:
            envelopes = [e for e in map(self.envelope, records) if e is not None]
            await self._commit(envelopes, last)
            self.events_handled += len(envelopes)
        except (HandlerStopped, Resync):
            raise
        except Exception as exc:
            # Something in the batch fails: go event by event, so only the culprit is retried or parked.
            # Logged, so a handler that fails (or overruns) now and then is not invisible when the retry works.
            logger.warning(
                "handler.batch_failed",
                handler=self.name,
                positions=f"{records[0].position}-{records[-1].position}",
                error=describe(exc),
            )
            for record in records:
                await self._handle_one(record)
            return
        self.health.recovered()
        self._advance(last)

    async def _handle_one(self, record: RecordedEvent) -> None:
        policy = self.handler.failure
        attempt = 0
        while True:
            try:
                envelope = self.envelope(record)
                await self._commit([envelope] if envelope is not None else [], record.position)
            except (HandlerStopped, Resync):
                raise
            except Exception as exc:
                attempt += 1
                if attempt <= policy.retries:
                    await self._failed_attempt(record.position, attempt, describe(exc))
                    continue
                failed = FailedEvent(
                    record.position, record.stream_id, record.version, record.type, describe(exc), attempt
                )
                await self._give_up(failed, exc)
                return
            self.events_handled += envelope is not None
            self.health.recovered()
            self._advance(record.position)
            return

    async def _give_up(self, event: FailedEvent, cause: BaseException) -> None:
        """The policy's last word on `event`: stop, or park it and go on."""
        if self.handler.failure.then == "stop":
            raise HandlerStopped(event.stop_reason()) from cause
        try:
            await park(
                self.read_model,
                self.name,
                event,
                self.position,
                self._until_done,
                None if self.partition is None else self.checkpoint_name,
                self.fence,
            )
        except CheckpointFencedError as fenced:
            raise Fenced(str(fenced)) from None
        self.parked += 1
        self.health.recovered()
        self._advance(event.position)
        log_parked(self.name, event)

    # -- read-your-writes -----------------------------------------------------------------------

    def _advance(self, position: int) -> None:
        self.position = position
        self._release_waiters()

    def _release_waiters(self) -> None:
        self._waiters.release(self.position)
        self.health.changed.set()

    def _serving(self) -> bool:
        return self.status in ("running", "retrying")

    async def wait_for(self, position: int, timeout: float) -> None:
        if self.position >= position and self._serving():
            return
        if self.status == "stopped":
            raise self.stopped_error(position)
        if await self._waiters.wait(position, timeout):
            return
        state = f"retrying: {self.health.last_error}" if self.status == "retrying" else self.status
        raise WaitTimeoutError(
            f"{self.name!r} did not reach position {position} within {timeout} s; it is at {self.position} ({state})"
        )

    # -- rebuild --------------------------------------------------------------------------------

    async def rebuild(self, on_progress: Callable[[int, int], None] | None) -> int:
        """Reset the handler's state and replay the whole log into it; returns the target position."""
        await self.stop()
        self.health.set("rebuilding")
        handler = self.handler
        await self.read_model.reset(self.name, handler if isinstance(handler, Projection) else None)
        self.position = 0
        target = await self.store.last_position()
        self.start()
        changed = self.health.changed
        while True:
            changed.clear()
            if self._serving() and self.position >= target:
                break
            if self.status == "stopped":
                raise HandlerStopped(f"{self.name!r} stopped during the rebuild: {self.stop_reason}")
            if on_progress is not None:
                on_progress(self.position, target)
            await changed.wait()
        if on_progress is not None:
            on_progress(target, target)
        return target
