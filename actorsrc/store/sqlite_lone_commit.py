"""A lone append commits on the event loop's own thread: the one-caller path without two thread hops.

Handing a batch to the writer connection's thread and back costs two wake-ups (~100-200 us on a busy
machine) and the committer's turn around a ~270 us durable commit: for one caller, most of the gap to
a plain synchronous commit. The group committer offers each append to `SQLiteEventStore._write_now`
while it is idle; it is committed here only when all of these hold:

- it is one append of at most `MAX_EVENTS` events, and the last batch written was one append too (a
  lone caller, or a quiet moment: under load batches hold many, and the loop keeps deciding while the
  thread syncs), and no other commit ran here in this loop turn (a burst of callers commits once here,
  then queues for the thread);
- nothing else runs on the writer connection's thread (it is never used from two threads at once), not
  even a call whose caller was cancelled while it ran, until a call made after it has come back;
- recent commits here were fast (an EWMA under `SLOW_SECONDS`, 5 ms): on a slow disk the loop must not stall,
  so after a slow one the thread is used again, and the loop thread is tried once more every `RETRY_AFTER`
  batches;
- the write lock is free: here the connection waits 0 ms for it (another process holding it would block
  the loop for the whole busy timeout), and a refusal sends the batch to the thread, which waits as usual.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

SLOW_SECONDS = 0.005
MAX_EVENTS = 16  # a command's few events; a hot actor's batch of hundreds syncs on the thread
RETRY_AFTER = 256
_WEIGHT = 0.2  # of the newest commit in the moving average
BUSY_TIMEOUT_MS = 10_000  # the connection's usual wait for the write lock (see sqlite_schema.configure)


class LoneCommits:
    """When a lone append may commit on the loop's thread; see the module's docstring."""

    def __init__(self, slow_seconds: float = SLOW_SECONDS) -> None:
        self.slow_seconds = slow_seconds
        self._on_thread = 0
        self._sent = 0  # calls ever sent to the thread
        self._unsure_through = -1  # the thread may still run the calls sent up to this one: see `on_thread`
        self.average = 0.0
        self.skipped = 0  # batches sent to the thread since the average went over SLOW_SECONDS
        self.done_here = 0
        self.last_appends = 1  # in the last batch written, here or on the thread
        self.used_this_turn = False

    @property
    def on_thread(self) -> int:
        """Calls in flight on the writer connection's thread: the store adds one before each call and takes
        it away once the call is over (``on_thread += 1`` ... ``finally: on_thread -= 1``)."""
        return self._on_thread

    @on_thread.setter
    def on_thread(self, value: int) -> None:
        if value > self._on_thread:
            self._sent += value - self._on_thread
        elif value < self._on_thread and _cancelled_now():
            # Its caller was cancelled, not the call: that may still run on the thread (a fence waiting for
            # the lock, a batch being written). The thread runs its calls in order, so it is idle again once
            # a call sent after this one has come back.
            self._unsure_through = self._sent
        self._on_thread = value

    def thread_idle(self) -> bool:
        """Nothing runs on the writer connection's thread, not even a call whose caller stopped waiting."""
        return not self._on_thread and self._sent > self._unsure_through

    def may_commit_here(self, appends: int, events: int) -> bool:
        if (
            appends != 1
            or events > MAX_EVENTS
            or not self.thread_idle()
            or self.last_appends != 1
            or self.used_this_turn
        ):
            return False
        if self.average > self.slow_seconds:
            self.skipped += 1
            if self.skipped < RETRY_AFTER:
                return False
            self.skipped = 0
        return True

    def note(self, seconds: float) -> None:
        """A commit here took `seconds`; none other runs here before the loop's next turn."""
        self.average += _WEIGHT * (seconds - self.average)
        self.done_here += 1
        self.last_appends = 1
        self.used_this_turn = True
        asyncio.get_running_loop().call_soon(self._next_turn)

    def wrote_on_thread(self, appends: int) -> None:
        self.last_appends = appends

    def _next_turn(self) -> None:
        self.used_this_turn = False


def _cancelled_now() -> bool:
    """Whether the current task is being cancelled (so a call it awaited may have been left running)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop: nothing was awaited
        return False
    return task is not None and task.cancelling() > 0


class LockBusy(Exception):
    """The write lock was held by another connection: nothing was written; commit on the thread instead."""


def commit_here(conn: sqlite3.Connection, write: Callable[[], T], commits: LoneCommits) -> T:
    """Run `write` (a whole transaction) on this thread without waiting for the write lock."""
    started = time.perf_counter()
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        result = write()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise LockBusy(str(exc)) from exc
        raise
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    commits.note(time.perf_counter() - started)
    return result
