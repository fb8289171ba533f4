"""The SQLite read model's connection, owned by one daemon thread: jobs run there one at a time, in order.

Projections' `handle` is user code running on this thread, and it can hang. A running SQL statement
can be aborted (`sqlite3.Connection.interrupt`, the one call that is safe from another thread), but
Python code between statements cannot: no thread can be stopped from outside. So this connection
knows which job runs and since when, and:
- a job whose caller gave up (timed out, cancelled) is interrupted and rolled back, never committed;
- the clock of a timed job starts when the handler's code starts, not while the job waits for the
  thread or for BEGIN (that is the database's time, not the handler's);
- while a job runs on past its caller's patience, the connection refuses new work with
  `ReadModelError` (rather than queueing it behind a thread that may never come back), and takes
  work again once that job returns;
- `close` waits a bounded time, then abandons the thread. The trade-off: an abandoned thread keeps
  its connection (and the write lock of its open transaction) until the handler returns, when it
  rolls back and closes; if the handler never returns, they last until the process exits. The
  thread is a daemon, so it cannot keep the process from exiting. The alternative, waiting for it,
  is what made closing a read model block for minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, Generic, TypeVar

import anyio

from actorsrc.errors import HandlerTimeoutError, ReadModelError, StoreClosedError
from actorsrc.observability import logger
from actorsrc.readmodel.base import HandlerStuckError

T = TypeVar("T")

LET_GO = 1.0
"""Seconds an interrupted (or cancelled) job gets to return before the connection counts it as stuck."""

_QUEUED, _RUNNING, _COMMITTING, _ABANDONED, _DONE = range(5)


class _Job(Generic[T]):
    __slots__ = ("done", "fn", "label", "started", "started_at", "state")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], T],
        label: str,
        done: asyncio.Future[T],
        started: asyncio.Future[None] | None,
    ) -> None:
        self.fn = fn
        self.label = label
        self.done = done
        self.started = started  # set when the handler's own code begins (timed jobs only)
        self.state = _QUEUED
        self.started_at = 0.0


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _deliver(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    # The loop may be gone when an abandoned thread finally finishes: nobody is waiting any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_settle, future, ok, value)


def _retrieve(future: asyncio.Future[Any]) -> None:
    # A job whose caller gave up may still fail (interrupted): its error is expected, not "never retrieved".
    if not future.cancelled():
        future.exception()


async def _finished(future: asyncio.Future[Any], timeout: float | None) -> bool:
    done, _ = await asyncio.wait([future], timeout=timeout)
    return bool(done)


class ConnectionThread:
    """One sqlite3 connection and the daemon thread that owns it."""

    def __init__(self, description: str) -> None:
        self.description = description
        self._jobs: SimpleQueue[_Job[Any] | None] = SimpleQueue()
        self._lock = threading.Lock()  # job state changes, on either side
        self._conn: sqlite3.Connection | None = None
        self._current: _Job[Any] | None = None
        self._stuck: _Job[Any] | None = None
        self._waiting: set[_Job[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exited: asyncio.Future[None] | None = None
        self._open = False

    # -- the thread -----------------------------------------------------------------------------

    async def open(self, connect: Callable[[], sqlite3.Connection]) -> None:
        loop = self._loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        self._exited = loop.create_future()
        thread = threading.Thread(
            target=self._serve, args=(loop, connect, opened), name="actorsrc-read-model", daemon=True
        )
        thread.start()
        with anyio.CancelScope(shield=True):  # the thread must not be left half-open
            await asyncio.wait([opened])
        opened.result()
        self._open = True

    def _serve(
        self, loop: asyncio.AbstractEventLoop, connect: Callable[[], sqlite3.Connection], opened: asyncio.Future[None]
    ) -> None:
        assert self._exited is not None
        try:
            conn = self._conn = connect()
        except BaseException as exc:
            _deliver(loop, opened, False, exc)
            _deliver(loop, self._exited, True, None)
            return
        _deliver(loop, opened, True, None)
        try:
            while (job := self._jobs.get()) is not None:
                self._run(loop, conn, job)
        finally:
            self._conn = None
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            _deliver(loop, self._exited, True, None)

    def _run(self, loop: asyncio.AbstractEventLoop, conn: sqlite3.Connection, job: _Job[Any]) -> None:
        with self._lock:
            if job.state == _ABANDONED:  # its caller gave up before it began
                return
            job.state, job.started_at, self._current = _RUNNING, time.monotonic(), job
        try:
            ok, value = True, job.fn(conn)
        except BaseException as exc:
            ok, value = False, exc
        with self._lock:
            job.state, self._current = _DONE, None
        _deliver(loop, job.done, ok, value)

    # -- called on the thread by a job ----------------------------------------------------------

    def handler_started(self) -> None:
        """The job's user code begins now: its caller's timeout starts counting."""
        job = self._current
        if job is not None and job.started is not None and self._loop is not None:
            job.started_at = time.monotonic()
            _deliver(self._loop, job.started, True, None)

    def may_commit(self) -> bool:
        """Whether the running job may COMMIT (False: its caller gave up, so it must roll back)."""
        with self._lock:
            job = self._current
            if job is None or job.state == _ABANDONED:
                return False
            job.state = _COMMITTING
            return True

    # -- called on the event loop --------------------------------------------------------------

    def _check_usable(self) -> None:
        if not self._open:
            raise StoreClosedError(f"{self.description} is not open")
        stuck = self._stuck
        if stuck is None:
            return
        if stuck.state == _DONE:
            self._stuck = None
            logger.warning("read_model.released", read_model=self.description, job=stuck.label)
            return
        raise self._held_by(stuck)

    def _held_by(self, stuck: _Job[Any]) -> ReadModelError:
        return ReadModelError(
            f"{self.description} is held by {stuck.label}, running for {time.monotonic() - stuck.started_at:.0f} s "
            "past its caller's deadline; Python code between SQL statements cannot be interrupted, so the read "
            "model takes new work once it returns"
        )

    def _fail_queued(self, error: BaseException) -> None:
        """Jobs still waiting for the thread will not run: their callers hear `error` now."""
        for job in list(self._waiting):
            with self._lock:
                if job.state != _QUEUED:
                    continue
                job.state = _ABANDONED
            if not job.done.done():
                job.done.set_exception(error)

    async def call(
        self, fn: Callable[[sqlite3.Connection], T], *, label: str = "a job", timeout: float | None = None
    ) -> T:
        """Run `fn(connection)` on the thread. With `timeout`, a job whose user code (from its call of
        `handler_started`) runs longer is interrupted and rolled back: `HandlerTimeoutError`, or
        `HandlerStuckError` if it does not let go."""
        self._check_usable()
        loop = asyncio.get_running_loop()
        job: _Job[T] = _Job(fn, label, loop.create_future(), loop.create_future() if timeout is not None else None)
        job.done.add_done_callback(_retrieve)
        self._waiting.add(job)
        self._jobs.put(job)
        try:
            if job.started is not None:
                either: list[asyncio.Future[Any]] = [job.started, job.done]
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                if not job.done.done() and not await _finished(job.done, timeout):
                    await self._give_up(job, timeout)
            return await asyncio.shield(job.done)
        except asyncio.CancelledError:
            with anyio.CancelScope(shield=True):
                await self._give_up(job, None)
            raise
        finally:
            self._waiting.discard(job)

    async def _give_up(self, job: _Job[Any], timeout: float | None) -> None:
        """Abandon `job` (timed out after `timeout` s, or cancelled when None); returns if it finished
        anyway (it reached its commit first), raises the timeout errors otherwise."""
        with self._lock:
            state = job.state
            if state in (_QUEUED, _RUNNING):
                job.state = _ABANDONED
            if state == _RUNNING and self._current is job and self._conn is not None:
                self._conn.interrupt()  # aborts the statement it may be in; nothing for pure Python
        if state == _QUEUED:
            return  # it will not run
        if state in (_COMMITTING, _DONE) and timeout is not None:
            return  # the handler's part was over in time: its commit decides, as any commit does
        if await _finished(job.done, LET_GO):
            if state == _RUNNING and timeout is not None:
                raise HandlerTimeoutError(
                    f"{job.label} ran longer than its timeout of {timeout} s; it was interrupted and rolled back "
                    "(raise FailurePolicy.timeout if it needs longer)"
                )
            return
        self._stuck = job
        self._fail_queued(self._held_by(job))  # rather than leave them queued behind it
        logger.error(
            "read_model.stuck",
            read_model=self.description,
            job=job.label,
            seconds=round(time.monotonic() - job.started_at, 1),
        )
        if timeout is not None:
            raise HandlerStuckError(
                f"{job.label} ran longer than its timeout of {timeout} s and is still running: Python code between "
                "SQL statements cannot be interrupted, so it keeps the read model's connection until it returns "
                "(fix the hang, then restart the handler)"
            )

    async def close(self, timeout: float) -> bool:
        """Let queued work finish and close the connection; past `timeout` seconds (or `LET_GO` when a job
        is known to be stuck), abandon the thread. Returns whether the thread finished."""
        if not self._open:
            return True
        self._open = False
        self._jobs.put(None)
        assert self._exited is not None
        stuck = self._stuck is not None and self._stuck.state != _DONE
        with anyio.CancelScope(shield=True):
            finished = await _finished(self._exited, min(timeout, LET_GO) if stuck else timeout)
        if not finished:
            running = self._current
            logger.error(
                "read_model.thread_abandoned",
                read_model=self.description,
                job=running.label if running is not None else None,
                detail="the connection closes when this job returns, or when the process exits",
            )
            self._fail_queued(StoreClosedError(f"{self.description} was closed while this job waited for its thread"))
        return finished
