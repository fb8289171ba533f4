"""Review of the performance round (issue 13): regressions found in the guessed new instances, the shared
deadline timers, the lone commits on the loop's thread and the runtime's own GC tuning."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from actorsrc import Aggregate, Runtime, SQLiteEventStore, StoreLimits, WriteSettings
from actorsrc.errors import LimitExceededError
from actorsrc.records import Metadata, NewEvent
from examples.bank import Credit, OpenAccount, account
from examples.bank.domain import AlreadyOpen
from tests.helpers import wait_until

# -- a new instance guessed from the presence filter: no answer from an unproven guess ------------------


@pytest.fixture
async def stale_path(tmp_path: Path) -> Path:
    """A store file with one account, 'elsewhere', written by another store object after ours filled its
    filter: ours says that stream surely does not exist (as when another process created it)."""
    path = tmp_path / "events.db"
    async with SQLiteEventStore.open(path):
        pass
    return path


async def open_elsewhere(path: Path) -> None:
    async with SQLiteEventStore.open(path) as other, Runtime(other, [account]) as runtime:
        await runtime.ref(account, "elsewhere").ask(OpenAccount("eve"))


async def test_a_conflict_on_a_guess_costs_no_attempt(stale_path: Path) -> None:
    """With no conflict retries, a stale guess used to answer ConcurrencyError: the guess cost the one attempt
    the caller had, though nobody wrote while the command ran."""
    async with SQLiteEventStore.open(stale_path) as store:
        await wait_until(lambda: store.presence.ready, what="the presence filter to fill")
        await open_elsewhere(stale_path)
        assert not store.may_hold_stream("account-elsewhere")
        async with Runtime(store, [account], write=WriteSettings(max_conflict_retries=0)) as runtime:
            with pytest.raises(AlreadyOpen):  # the stored account's answer, found by a read after the conflict
                await runtime.ref(account, "elsewhere").ask(OpenAccount("mallory"))
            assert (await runtime.ref(account, "elsewhere").ask(Credit(3))).version == 2


async def test_a_refusal_of_a_guessed_decision_is_decided_again_after_a_read(stale_path: Path) -> None:
    """Against the guessed empty account OpenAccount makes an event over the store's size limit; the stored
    account refuses the command instead. The caller used to get the LimitExceededError of the guess."""
    async with SQLiteEventStore.open(stale_path, limits=StoreLimits(max_event_bytes=256)) as store:
        await wait_until(lambda: store.presence.ready, what="the presence filter to fill")
        await open_elsewhere(stale_path)
        assert not store.may_hold_stream("account-elsewhere")
        async with Runtime(store, [account]) as runtime:
            with pytest.raises(AlreadyOpen):
                await runtime.ref(account, "elsewhere").ask(OpenAccount("m" * 1000))
            # A stream that is really new still gets the refusal (decided again after a read, the same way).
            with pytest.raises(LimitExceededError):
                await runtime.ref(account, "new").ask(OpenAccount("m" * 1000))
            assert (await runtime.ref(account, "new").ask(OpenAccount("ann"))).version == 1


@dataclass(frozen=True, slots=True)
class Bump:
    pass


@dataclass(frozen=True, slots=True)
class Bumped:
    pass


def _bump(state: int, command: Bump) -> list[Bumped]:
    return [Bumped()]  # writes on any state: a guessed and a real decision both append


def _bumped(state: int, event: Bumped) -> int:
    return state + 1


counter: Aggregate[int, Bump, Bumped] = Aggregate(
    name="counter", initial=0, decide=_bump, evolve=_bumped, events={"Bumped": Bumped}, commands=(Bump,)
)


async def bump_elsewhere(path: Path) -> None:
    async with SQLiteEventStore.open(path) as other, Runtime(other, [counter]) as runtime:
        await runtime.ref(counter, "c").ask(Bump())


async def test_a_guess_s_conflict_leaves_the_caller_all_its_conflict_retries(
    stale_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One retry allowed: the guess's conflict used to spend it, so a real conflict after the read (another
    process appended in between) reached the caller as ConcurrencyError."""
    async with SQLiteEventStore.open(stale_path) as store:
        await wait_until(lambda: store.presence.ready, what="the presence filter to fill")
        await bump_elsewhere(stale_path)  # the stream exists; our filter does not know
        original = store.read_stream_payloads
        raced: list[int] = []

        async def read_then_race(stream_id: str, *args: Any, **kwargs: Any) -> Any:
            rows = await original(stream_id, *args, **kwargs)
            if not raced:  # another process appends right after our first read: that read is stale
                raced.append(len(rows))
                await bump_elsewhere(stale_path)
            return rows

        monkeypatch.setattr(store, "read_stream_payloads", read_then_race)
        async with Runtime(store, [counter], write=WriteSettings(max_conflict_retries=1)) as runtime:
            outcome = await runtime.ref(counter, "c").ask(Bump())
        assert raced == [1]
        assert outcome.version == 3


# -- the asks' shared deadline timers ----------------------------------------------------------------------


async def test_an_infinite_timeout_waits_for_the_reply() -> None:
    """`timeout=math.inf` waits forever (see `check_timeout`): the tick of an infinite deadline used to raise
    OverflowError out of every ask, also with WriteSettings(default_timeout=math.inf)."""
    async with SQLiteEventStore.open(":memory:") as store, Runtime(store, [account]) as runtime:
        ref = runtime.ref(account, "a")
        assert (await ref.ask(OpenAccount("ann"), timeout=math.inf)).version == 1
        assert (await ref.ask(Credit(1), timeout=sys.float_info.max)).version == 2  # no tick either
    settings = WriteSettings(default_timeout=math.inf)
    async with SQLiteEventStore.open(":memory:") as store, Runtime(store, [account], write=settings) as runtime:
        assert (await runtime.ref(account, "a").ask(OpenAccount("ann"))).version == 1
        deadlines = runtime._sender._deadlines
        assert deadlines is None or deadlines.buckets == {}  # nothing scheduled for a deadline never reached


# -- a lone commit on the loop's thread never shares the writer connection with its own thread ------------


async def test_a_cancelled_fence_keeps_lone_commits_off_the_busy_writer_thread(tmp_path: Path) -> None:
    """A caller that stops waiting for `raise_fence` does not stop the fence's transaction on the writer's
    thread (here it waits for a lock another connection holds). Lone commits used to resume on the loop's
    thread at once, on the same sqlite3 connection as that transaction, from two threads at a time."""
    path = tmp_path / "events.db"
    async with SQLiteEventStore.open(path) as store:
        commits = store._lone_commits
        commits.slow_seconds = math.inf  # however loaded the machine's disk is
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another process writing: the fence waits for the lock
        try:
            fencing = asyncio.get_running_loop().create_task(store.raise_fence(1, 5))
            await wait_until(lambda: commits.on_thread == 1, what="the fence to go to the writer's thread")
            fencing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fencing
            assert not commits.may_commit_here(1, 0)  # the fence still holds the connection on its thread
        finally:
            other.execute("COMMIT")
            other.close()
        # The next write goes to the thread, behind the fence; once it is back, the thread is idle again.
        result = await store.append("s-1", [new_event()], 0)
        assert result.first_version == 1
        assert await store.fences() == {1: 5}
        assert commits.may_commit_here(1, 0)
        done_here = commits.done_here
        assert (await store.append("s-1", [new_event()], 1)).first_version == 2
        assert commits.done_here == done_here + 1


def new_event() -> NewEvent:
    return NewEvent("Noted", b"{}", Metadata(str(uuid.uuid4())))


# -- the runtime's own GC tuning --------------------------------------------------------------------------


@pytest.fixture
def cpython_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_cpython_s_own_thresholds_are_known_per_version() -> None:
    """CPython 3.13 starts at (2000, 10, 10) and 3.14 at (2000, 10, 0): the runtime compared with 3.12's
    (700, 10, 10) only, so on those it took CPython's thresholds for an application's and never tuned."""
    from actorsrc.runtime.gc_tuning import CPYTHON_THRESHOLDS, cpython_thresholds

    assert cpython_thresholds((3, 11)) == cpython_thresholds((3, 12)) == (700, 10, 10)
    assert cpython_thresholds((3, 13)) == (2000, 10, 10)
    assert cpython_thresholds((3, 14)) == (2000, 10, 0)
    fresh = subprocess.run(
        [sys.executable, "-c", "import gc; print(list(gc.get_threshold()))"], capture_output=True, text=True, check=True
    )
    assert tuple(json.loads(fresh.stdout)) == CPYTHON_THRESHOLDS  # this interpreter's, as a new one starts


@pytest.mark.usefixtures("cpython_gc")
def test_python_3_13_s_own_thresholds_are_tuned_and_restored() -> None:
    from actorsrc.runtime.gc_tuning import TUNED_YOUNG_THRESHOLD, ProcessGcTuning, cpython_thresholds

    tuning = ProcessGcTuning(cpython_thresholds((3, 13)))
    gc.set_threshold(2000, 10, 10)
    assert tuning.acquire()
    assert gc.get_threshold() == (TUNED_YOUNG_THRESHOLD, 10, 10)
    tuning.release()
    assert gc.get_threshold() == (2000, 10, 10)


@pytest.mark.usefixtures("cpython_gc")
def test_runtimes_opening_in_two_threads_at_once_are_both_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runtimes entering at once on two threads (each with its own loop) both saw no holder and both
    counted themselves the first: the first to exit put CPython's thresholds back under the other."""
    from actorsrc.runtime import gc_tuning

    tuning = gc_tuning.ProcessGcTuning(gc_tuning.CPYTHON_THRESHOLDS)
    gc.set_threshold(*gc_tuning.CPYTHON_THRESHOLDS)
    both = threading.Barrier(2, timeout=0.5)
    real = gc.get_threshold

    def get_threshold() -> tuple[int, int, int]:
        with contextlib.suppress(threading.BrokenBarrierError):  # with a lock the other waits outside
            both.wait()  # without one, both threads are in `acquire` together
        return real()

    monkeypatch.setattr(gc, "get_threshold", get_threshold)
    threads = [threading.Thread(target=tuning.acquire) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    monkeypatch.setattr(gc, "get_threshold", real)
    assert tuning.holders == 2
    tuning.release()
    assert gc.get_threshold()[0] == gc_tuning.TUNED_YOUNG_THRESHOLD  # one runtime is still open
    tuning.release()
    assert gc.get_threshold() == gc_tuning.CPYTHON_THRESHOLDS
