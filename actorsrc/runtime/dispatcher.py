"""The dispatcher: one subscription per handler, tailing the global log from its checkpoint.

A subscription reads the log in batches, hands each batch to its handler, and moves its checkpoint
in the same read-model transaction as the handler's writes. It wakes as soon as this process appends
(and polls slowly for appends by other processes), so an idle subscription costs nothing. Failures
follow the handler's `FailurePolicy`: retry with backoff, then park the event or stop.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import anyio

from actorsrc.errors import WaitTimeoutError
from actorsrc.messages import RecordedEvent
from actorsrc.observability import logger
from actorsrc.projection import EventEnvelope, Handler, Projection, envelope_of
from actorsrc.readmodel.base import ReadModel
from actorsrc.runtime.process import ProcessRunner

if TYPE_CHECKING:
    from actorsrc.runtime.runtime import Runtime

Status = Literal["starting", "running", "stopped", "rebuilding", "closed"]
_tiebreak = itertools.count()


class HandlerStopped(Exception):
    """The handler's failure policy said stop."""


class Subscription:
    def __init__(self, handler: Handler, runtime: Runtime, read_model: ReadModel, poll_interval: float) -> None:
        self.handler = handler
        self.name = handler.name
        self.runtime = runtime
        self.read_model = read_model
        self.poll_interval = poll_interval
        self.position = 0
        self.status: Status = "starting"
        self.stop_reason: str | None = None
        self.events_handled = 0
        self.parked = 0
        self._codec = handler.event_codec()
        self._wake = asyncio.Event()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._process = ProcessRunner(handler, runtime, read_model) if not isinstance(handler, Projection) else None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait([self._task])
            self._task = None

    def wake(self, _position: int = 0) -> None:
        self._wake.set()

    async def _run(self) -> None:
        try:
            self.position = await self.read_model.checkpoint(self.name)
            if isinstance(self.handler, Projection):
                await self.read_model.setup(self.handler)
            self.status, self.stop_reason = "running", None
            self._release_waiters()
            await self._follow()
        except HandlerStopped as stopped:
            self.status, self.stop_reason = "stopped", str(stopped)
            logger.error("handler.stopped", handler=self.name, position=self.position, reason=str(stopped))
        except Exception as exc:  # a bug or a broken read model: stop, never take the runtime down
            self.status, self.stop_reason = "stopped", repr(exc)
            logger.error("handler.stopped", handler=self.name, position=self.position, reason=repr(exc))

    async def _follow(self) -> None:
        store = self.runtime.store
        batch_size = self.handler.batch_size
        pending: asyncio.Task[list[RecordedEvent]] | None = None
        loop = asyncio.get_running_loop()
        try:
            while True:
                records = await pending if pending is not None else await store.read_all(self.position, batch_size)
                pending = None
                if not records:
                    with anyio.move_on_after(self.poll_interval):
                        await self._wake.wait()
                    self._wake.clear()
                    continue
                if len(records) == batch_size:  # more is waiting: read ahead while this batch is applied
                    pending = loop.create_task(store.read_all(records[-1].position, batch_size))
                await self._handle(records)
        finally:
            if pending is not None:
                pending.cancel()

    # -- handling -------------------------------------------------------------------------------

    def _envelope(self, record: RecordedEvent) -> EventEnvelope[Any] | None:
        if not self._codec.reads(record.type):
            return None
        return envelope_of(self._codec, record)

    async def apply(
        self, envelopes: list[EventEnvelope[Any]], checkpoint: int | None, unpark: int | None = None
    ) -> None:
        """Run the handler over `envelopes` and, in the same transaction, move the checkpoint (when
        given) and drop the parked event `unpark` (when given)."""
        mark = (self.name, checkpoint) if checkpoint is not None else None
        if isinstance(self.handler, Projection):
            await self.read_model.project(self.handler, envelopes, mark, unpark)
        else:
            assert self._process is not None
            await self._process.apply(envelopes, mark, unpark)

    async def _handle(self, records: list[RecordedEvent]) -> None:
        last = records[-1].position
        try:
            envelopes = [e for e in map(self._envelope, records) if e is not None]
            await self.apply(envelopes, last)
            self.events_handled += len(envelopes)
        except Exception:
            # Something in the batch fails: go event by event, so only the culprit is retried or parked.
            for record in records:
                await self._handle_one(record)
        self._advance(last)

    async def _handle_one(self, record: RecordedEvent) -> None:
        policy = self.handler.failure
        attempt = 0
        while True:
            try:
                envelope = self._envelope(record)
                await self.apply([envelope] if envelope is not None else [], record.position)
                self.events_handled += envelope is not None
                return
            except Exception as exc:
                attempt += 1
                error = f"{type(exc).__name__}: {exc}"
                if attempt <= policy.retries:
                    logger.warning(
                        "handler.retry", handler=self.name, position=record.position, attempt=attempt, error=error
                    )
                    await anyio.sleep(policy.delay(attempt))
                    continue
                if policy.then == "stop":
                    raise HandlerStopped(
                        f"event at position {record.position} ({record.type} on {record.stream_id!r} "
                        f"v{record.version}) failed {attempt} times: {error}"
                    ) from exc
                await self.read_model.park(
                    self.name, record.position, record.stream_id, record.version, record.type, error, attempt
                )
                self.parked += 1
                self.position = record.position
                logger.error(
                    "handler.parked",
                    handler=self.name,
                    position=record.position,
                    type=record.type,
                    stream_id=record.stream_id,
                    attempts=attempt,
                    error=error,
                )
                return

    # -- read-your-writes -----------------------------------------------------------------------

    def _advance(self, position: int) -> None:
        self.position = position
        self._release_waiters()

    def _release_waiters(self) -> None:
        waiters = self._waiters
        while waiters and waiters[0][0] <= self.position:
            _, _, waiter = heapq.heappop(waiters)
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for(self, position: int, timeout: float) -> None:
        if self.position >= position and self.status == "running":
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (position, next(_tiebreak), waiter))
        with anyio.move_on_after(timeout):
            await waiter
            return
        waiter.cancel()
        state = f"stopped: {self.stop_reason}" if self.status == "stopped" else self.status
        raise WaitTimeoutError(
            f"{self.name!r} did not reach position {position} within {timeout} s; it is at {self.position} ({state})"
        )

    def _stopped(self) -> bool:
        return self.status == "stopped"

    def _caught_up(self, target: int) -> bool:
        return self.status == "running" and self.position >= target

    # -- rebuild --------------------------------------------------------------------------------

    async def rebuild(self, on_progress: Callable[[int, int], None] | None) -> int:
        """Reset the handler's state and replay the whole log into it; returns the target position."""
        await self.stop()
        self.status = "rebuilding"
        handler = self.handler
        await self.read_model.reset(self.name, handler if isinstance(handler, Projection) else None)
        target = await self.runtime.store.last_position()
        self.start()
        while not self._caught_up(target):
            if self._stopped():
                raise HandlerStopped(f"{self.name!r} stopped during the rebuild: {self.stop_reason}")
            if on_progress is not None:
                on_progress(self.position, target)
            await anyio.sleep(0.05)
        if on_progress is not None:
            on_progress(target, target)
        return target
