"""The SQLite read model's connection, owned by one daemon thread: jobs run there one at a time, in order.

Projections' `handle` is user code running on this thread, and it can hang. A running SQL statement
can be aborted (`sqlite3.Connection.interrupt`, the one call that is safe from another thread), but
Python code between statements cannot: no thread can be stopped from outside. So this connection
knows which job runs and since when, and:
- a job whose caller gave up (timed out, cancelled) before its COMMIT is interrupted and rolled back;
- the clock of a timed job starts when the handler's code starts, not while the job waits for the
  thread or for BEGIN (that is the database's time, not the handler's);
- while a job runs on past its caller's patience, the connection refuses new work with
  `ReadModelError` (rather than queueing it behind a thread that may never come back), and takes
  work again once that job returns;
- a job whose handler finished in time but whose COMMIT overruns (a stalling disk) is not stuck: its
  commit decides, and a timed caller waits for it a bounded time (`commit_wait`), then hears
  `ReadModelError` (the outcome is unknown; a retry finds the stored checkpoint);
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
from typing import Any, TypeVar, cast

import anyio

from actorsrc.errors import HandlerTimeoutError, ReadModelError, StoreClosedError
from actorsrc.observability import logger
from actorsrc.readmodel.base import HandlerStuckError

T = TypeVar("T")

LET_GO = 1.0
"""Seconds an interrupted (or cancelled) job gets to return before the connection counts it as stuck."""

_QUEUED, _RUNNING, _COMMITTING, _ABANDONED, _DONE = range(5)
_TIMED_OUT: Any = object()  # the outcome of a call whose handler overran its timeout


class _Job:
    __slots__ = (
        "finished",
        "fn",
        "handler_started_at",
        "label",
        "ok",
        "outcome",
        "settled",
        "started_at",
        "state",
        "timer",
        "value",
    )

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], label: str, outcome: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.label = label
        self.outcome = outcome  # what the caller awaits: the job's result, or _TIMED_OUT
        self.state = _QUEUED
        self.started_at = 0.0  # monotonic, set on the thread
        self.handler_started_at = 0.0  # when its user code began (0: not yet), set on the thread
        self.timer: asyncio.TimerHandle | None = None
        self.settled = False  # the thread is done with it; `ok` and `value` say how it ended
        self.ok = False
        self.value: Any = None
        self.finished: asyncio.Future[None] | None = None  # made when someone waits for it after giving up


def _crossable(exc: BaseException, label: str) -> BaseException:
    """`exc`, or a RuntimeError in its place if it cannot cross into a future: asyncio refuses StopIteration,
    and StopIteration or StopAsyncIteration raised out of the awaiting coroutine would end an iteration."""
    if not isinstance(exc, StopIteration | StopAsyncIteration):
        return exc
    error = RuntimeError(
        f"{label} raised {type(exc).__name__}{exc.args!r}, which cannot be returned to its caller as itself "
        "(it would end the caller's iteration): a next() or __anext__() outside a loop ran out"
    )
    error.__cause__ = exc
    return error


def _set(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """Resolve `future` unless done; one that refuses `value` gets a RuntimeError, so it never stays pending."""
    if future.done():
        return
    try:
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    except Exception as refused:
        error = RuntimeError(f"the outcome {value!r} could not be delivered: {refused}")
        error.__cause__ = refused
        future.set_exception(error)


def _settle(job: _Job, ok: bool, value: Any) -> None:
    """On the loop: the thread finished `job`."""
    job.settled, job.ok, job.value = True, ok, value
    try:
        _set(job.outcome, ok, value)
    finally:
        if job.finished is not None and not job.finished.done():
            job.finished.set_result(None)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    # The loop may be gone when an abandoned thread finally finishes: nobody is waiting any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


async def _finished(future: asyncio.Future[Any], timeout: float | None) -> bool:
    done, _ = await asyncio.wait([future], timeout=timeout)
    return bool(done)


class ConnectionThread:
    """One sqlite3 connection and the daemon thread that owns it."""

    def __init__(self, description: str, *, commit_wait: float = 10.0) -> None:
        self.description = description
        self.commit_wait = commit_wait  # how long a timed caller waits for a COMMIT its handler reached in time
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._lock = threading.Lock()  # job state changes, on either side
        self._conn: sqlite3.Connection | None = None
        self._current: _Job | None = None
        self._stuck: _Job | None = None
        self._waiting: set[_Job] = set()
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
            _call_soon(loop, _set, opened, False, exc)
            _call_soon(loop, _set, self._exited, True, None)
            return
        _call_soon(loop, _set, opened, True, None)
        try:
            while (job := self._jobs.get()) is not None:
                self._run(loop, conn, job)
        finally:
            self._conn = None
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            _call_soon(loop, _set, self._exited, True, None)

    def _run(self, loop: asyncio.AbstractEventLoop, conn: sqlite3.Connection, job: _Job) -> None:
        with self._lock:
            if job.state == _ABANDONED:  # its caller gave up before it began
                return
            job.state, job.started_at, self._current = _RUNNING, time.monotonic(), job
        try:
            ok, value = True, job.fn(conn)
        except BaseException as exc:
            ok, value = False, _crossable(exc, job.label)
        with self._lock:
            job.state, self._current = _DONE, None
        _call_soon(loop, _settle, job, ok, value)

    # -- called on the thread by a job ----------------------------------------------------------

    def handler_started(self) -> None:
        """The job's user code begins now: its caller's timeout counts from here."""
        job = self._current
        if job is not None:
            job.handler_started_at = time.monotonic()

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

    def _held_by(self, stuck: _Job) -> ReadModelError:
        return ReadModelError(
            f"{self.description} is held by {stuck.label}, which has run for "
            f"{time.monotonic() - stuck.handler_started_at:.0f} s, past its caller's deadline; Python code between SQL "
            "statements cannot be interrupted, so the read model takes new work once it returns"
        )

    def _fail_queued(self, error: BaseException) -> None:
        """Jobs still waiting for the thread will not run: their callers hear `error` now."""
        for job in list(self._waiting):
            with self._lock:
                if job.state != _QUEUED:
                    continue
                job.state = _ABANDONED
            if not job.outcome.done():
                job.outcome.set_exception(error)

    async def call(
        self, fn: Callable[[sqlite3.Connection], T], *, label: str = "a job", timeout: float | None = None
    ) -> T:
        """Run `fn(connection)` on the thread. With `timeout`, a job whose user code (from its call of
        `handler_started`) runs longer is interrupted and rolled back: `HandlerTimeoutError`, or
        `HandlerStuckError` if it does not let go (one that reached its COMMIT in time gets its commit's
        outcome, or `ReadModelError` past `commit_wait`). An exception that cannot cross into a future
        (StopIteration, StopAsyncIteration) arrives as a RuntimeError caused by it. One future and one
        thread hop per call: this is the path of every projection batch."""
        self._check_usable()
        loop = asyncio.get_running_loop()
        job = _Job(fn, label, loop.create_future())
        self._waiting.add(job)
        self._jobs.put(job)
        if timeout is not None:
            job.timer = loop.call_later(timeout, self._deadline, job, timeout)
        try:
            result = await job.outcome
        except asyncio.CancelledError:
            # Unless the thread is done with it (the outcome may be _TIMED_OUT already: a cancel can land
            # between the deadline and this task resuming), a running job is interrupted and rolled back;
            # one in its COMMIT is not waited for (nor counted stuck): its commit decides.
            if not job.settled and self._abandon(job) == _RUNNING:
                with anyio.CancelScope(shield=True):
                    await self._let_go_or_hold(job)
            raise
        finally:
            self._waiting.discard(job)
            if job.timer is not None:
                job.timer.cancel()
        if result is _TIMED_OUT:
            assert timeout is not None
            result = await self._overran(job, timeout)
        return cast(T, result)

    def _deadline(self, job: _Job, timeout: float) -> None:
        """The timer of a timed call: it counts from the start of the handler's code, not from the call."""
        job.timer = None
        if job.outcome.done():
            return
        started = job.handler_started_at
        left = timeout if not started else started + timeout - time.monotonic()
        if left > 0:  # still waiting for the thread or in BEGIN, or it started later than the call
            job.timer = asyncio.get_running_loop().call_later(left, self._deadline, job, timeout)
        else:
            job.outcome.set_result(_TIMED_OUT)

    async def _let_go(self, job: _Job, timeout: float | None) -> bool:
        """Whether the thread is done with `job` within `timeout` seconds."""
        if job.settled:
            return True
        if job.finished is None:
            job.finished = asyncio.get_running_loop().create_future()
        return await _finished(job.finished, timeout)

    def _abandon(self, job: _Job) -> int:
        """Give up on `job` unless it reached its commit (which then decides); a running job is interrupted.
        Returns the state it was in: only a job that was _RUNNING is still to be waited for."""
        with self._lock:
            state = job.state
            if state in (_QUEUED, _RUNNING):
                job.state = _ABANDONED
            if state == _RUNNING and self._current is job and self._conn is not None:
                self._conn.interrupt()  # aborts the statement it may be in; nothing for pure Python
        return state

    async def _let_go_or_hold(self, job: _Job) -> bool:
        """Whether the abandoned `job` returns within LET_GO; if not, it is still in its handler's code, and
        the connection refuses new work (and fails the queued) until it returns."""
        if await self._let_go(job, LET_GO):
            return True
        self._stuck = job
        self._fail_queued(self._held_by(job))  # rather than leave them queued behind it
        logger.error(
            "read_model.stuck",
            read_model=self.description,
            job=job.label,
            seconds=round(time.monotonic() - job.started_at, 1),
        )
        return False

    async def _overran(self, job: _Job, timeout: float) -> Any:
        """`job`'s handler overran `timeout` seconds. If it had reached its commit, that decides (waited for
        up to `commit_wait` seconds) and its result is returned; otherwise it is interrupted and rolled back:
        `HandlerTimeoutError`, or `HandlerStuckError` if the thread does not let go of it."""
        state = self._abandon(job)
        if state in (_COMMITTING, _DONE):
            if not await self._let_go(job, self.commit_wait):  # not shielded: nothing to clean up if cancelled
                raise ReadModelError(
                    f"{self.description}: the COMMIT of {job.label} has not finished {self.commit_wait} s after "
                    "its handler's deadline (is the disk stalling?); whether it lands is unknown: a retry finds out "
                    "from the stored checkpoint"
                )
            if job.ok:
                return job.value
            raise job.value
        with anyio.CancelScope(shield=True):  # bounded: LET_GO
            if await self._let_go_or_hold(job):
                raise HandlerTimeoutError(
                    f"{job.label} ran longer than its timeout of {timeout} s; it was interrupted and rolled back "
                    "(raise FailurePolicy.timeout if it needs longer)"
                )
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
