"""The event store under faults and abuse: a listener or writer that fails, limits, full queues, bad rows."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import anyio
import anyio.lowlevel
import pytest
from anyio import wait_all_tasks_blocked

from actorsrc.errors import (
    ConfigurationError,
    EventDecodeError,
    LimitExceededError,
    OutcomeUnknownError,
    StoreClosedError,
    StoreError,
)
from actorsrc.records import AppendResult, Snapshot
from actorsrc.store import StoreLimits
from actorsrc.store.base import NO_STREAM
from actorsrc.store.group_commit import GroupCommitter, PendingAppend, PendingSnapshot
from actorsrc.store.sqlite import SQLiteEventStore
from actorsrc.store.sqlite_reads import BatchedReader
from actorsrc.testing.store_contract import new_event

Logs = list[MutableMapping[str, Any]]


def _events_named(logs: Logs, name: str) -> Logs:
    return [entry for entry in logs if entry["event"] == name]


# -- defect 1: an append listener that raises ---------------------------------------------------------


async def test_a_listener_that_raises_is_logged_and_the_committer_keeps_serving(
    tmp_path: Path, captured_logs: Logs
) -> None:
    heard: list[int] = []

    def broken(position: int) -> None:
        raise RuntimeError(f"listener bug at {position}")

    async with SQLiteEventStore.open(tmp_path / "events.db") as store:
        store.add_append_listener(broken)
        store.add_append_listener(heard.append)  # registered after the broken one: still told
        with anyio.fail_after(10):  # before the fix the first append never got an answer
            first = await store.append("s", [new_event("1")], NO_STREAM)
            second = await store.append("s", [new_event("2")], 1)
        assert (first.last_position, second.last_position) == (1, 2)
        assert heard == [1, 2]
        assert [r.position for r in await store.read_all()] == [1, 2]
    failures = _events_named(captured_logs, "store.listener_failed")
    assert [f["position"] for f in failures] == [1, 2]
    assert "listener bug at 1" in failures[0]["error"]
    assert failures[0]["log_level"] == "error"


async def test_a_listener_may_remove_itself_while_being_told(tmp_path: Path) -> None:
    heard: list[int] = []
    async with SQLiteEventStore.open(tmp_path / "events.db") as store:

        def once(position: int) -> None:
            heard.append(position)
            remove()

        remove = store.add_append_listener(once)
        await store.append("s", [new_event()], NO_STREAM)
        await store.append("s", [new_event()], 1)
    assert heard == [1]


def _results(batch: list[PendingAppend]) -> list[AppendResult | BaseException]:
    now = datetime.now(UTC)
    return [AppendResult(p.stream_id, 1, 1, i, i, now) for i, p in enumerate(batch, 1)]


async def test_a_bug_while_settling_a_batch_gives_outcome_unknown_and_the_loop_goes_on(captured_logs: Logs) -> None:
    calls = 0

    async def writer(
        batch: list[PendingAppend], snapshots: list[PendingSnapshot]
    ) -> list[AppendResult | BaseException]:
        nonlocal calls
        calls += 1
        return [] if calls == 1 else _results(batch)  # the first batch: a writer bug, outcomes missing

    committer = GroupCommitter(writer, max_batch_events=100, store_name="test store")
    loop = asyncio.get_running_loop().create_task(committer.run())
    try:
        with anyio.fail_after(10):
            with pytest.raises(OutcomeUnknownError, match="retry with the same command id") as caught:
                await committer.submit("s", [new_event()], NO_STREAM)
            assert "'s'" in str(caught.value)
            assert isinstance(caught.value.__cause__, RuntimeError)
            later = await committer.submit("t", [new_event()], NO_STREAM)
        assert later.stream_id == "t"
    finally:
        committer.close()
        await loop
    assert loop.exception() is None
    assert _events_named(captured_logs, "store.committer_failed")[0]["appends"] == 1


# -- limits ----------------------------------------------------------------------------------------


def test_limits_must_be_positive_ints() -> None:
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ConfigurationError, match="max_event_bytes must be an int >= 1"):
            StoreLimits(max_event_bytes=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="limits must be a StoreLimits"):
        SQLiteEventStore("x.db", limits={"max_event_bytes": 1})  # type: ignore[arg-type]


async def test_limits_are_configurable_and_checked_before_anything_is_written(tmp_path: Path) -> None:
    limits = StoreLimits(max_event_bytes=16, max_append_events=3, max_append_bytes=40)
    async with SQLiteEventStore.open(tmp_path / "events.db", limits=limits) as store:
        assert store.limits is limits
        small = new_event("a")  # b'{"p":"a"}': 9 bytes
        with pytest.raises(LimitExceededError, match="max_event_bytes") as caught:
            await store.append("s", [new_event("0123456789")], NO_STREAM)
        assert (caught.value.size, caught.value.limit) == (18, 16)
        with pytest.raises(LimitExceededError, match="max_append_events"):
            await store.append("s", [small] * 4, NO_STREAM)
        await store.append("s", [new_event("12345") for _ in range(3)], NO_STREAM)  # 3 x 13 bytes: under 40
        with pytest.raises(LimitExceededError, match="max_append_bytes"):
            await store.append("s", [new_event("123456")] * 3, 3)  # 3 x 14 bytes: over
        assert await store.last_position() == 3
        with pytest.raises(LimitExceededError, match="max_append_bytes"):
            store.submit_append("t", [new_event("123456")] * 3, NO_STREAM)  # the runtime's path too
        with pytest.raises(LimitExceededError, match=r"snapshot of 's' is 41 bytes"):
            await store.save_snapshot(Snapshot("s", 3, 3, 1, b"x" * 41))
        assert await store.last_position() == 3


class _Lock:
    """Holds SQLite's write lock from another connection, so the store's next commit waits for it."""

    def __init__(self, path: Path) -> None:
        self._conn: sqlite3.Connection | None = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.execute("ROLLBACK")
            conn.close()


async def test_append_waits_for_room_when_the_commit_queue_is_full(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with SQLiteEventStore.open(path, limits=StoreLimits(max_queued_appends=2)) as store:
        lock = _Lock(path)
        results: list[AppendResult] = []
        try:
            async with anyio.create_task_group() as tg:

                async def append(n: int) -> None:
                    results.append(await store.append(f"s-{n}", [new_event()], NO_STREAM))

                for n in range(5):
                    tg.start_soon(append, n)
                await wait_all_tasks_blocked()  # one batch stuck on the lock, two queued, two waiting for room
                assert store.queued_appends == 2
                assert results == []
                # The runtime's path never waits: each actor has one append in flight at most.
                submitted = [store.submit_append(f"r-{n}", [new_event()], NO_STREAM) for n in range(3)]
                assert store.queued_appends == 5
                lock.release()
            assert sorted(r.stream_id for r in results) == [f"s-{n}" for n in range(5)]
            assert [r.stream_id for r in await asyncio.gather(*submitted)] == ["r-0", "r-1", "r-2"]
        finally:
            lock.release()
        assert await store.last_position() == 8


async def test_appends_waiting_for_room_are_told_when_the_store_closes(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    outcomes: list[str] = []
    closed = anyio.Event()
    lock: _Lock | None = None
    try:
        # The task group outlives the store: closing the store must answer the appends waiting in it.
        async with (
            anyio.create_task_group() as tg,
            SQLiteEventStore.open(path, limits=StoreLimits(max_queued_appends=1)) as store,
        ):
            lock = _Lock(path)

            async def append(n: int) -> None:
                try:
                    await store.append(f"s-{n}", [new_event()], NO_STREAM)
                    outcomes.append("written")
                except StoreClosedError:
                    outcomes.append("closed")
                    closed.set()

            async def release_once_told(held: _Lock) -> None:
                await closed.wait()
                held.release()

            for n in range(3):
                tg.start_soon(append, n)
            tg.start_soon(release_once_told, lock)
            await wait_all_tasks_blocked()  # one append in flight, one queued, one waiting for room
    finally:
        # Closing told the one waiting for room; what was queued before the close was written.
        if lock is not None:
            lock.release()
    assert sorted(outcomes) == ["closed", "written", "written"]


async def test_a_snapshot_beyond_the_queue_cap_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with SQLiteEventStore.open(path, limits=StoreLimits(max_queued_snapshots=1)) as store:
        await store.append("s", [new_event()], NO_STREAM)
        lock = _Lock(path)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(store.append, "t", [new_event()], NO_STREAM)  # the commit that waits for the lock
                await wait_all_tasks_blocked()
                tg.start_soon(store.save_snapshot, Snapshot("s", 1, 1, 1, b"{}"))
                await wait_all_tasks_blocked()
                with pytest.raises(StoreError, match=r"1 snapshots already wait .*max_queued_snapshots"):
                    await store.save_snapshot(Snapshot("s", 1, 1, 1, b"{}"))
                lock.release()
        finally:
            lock.release()
        loaded = await store.load_snapshot("s")
        assert loaded is not None
        assert loaded.version == 1


async def test_the_read_queue_is_bounded(tmp_path: Path) -> None:
    release = threading.Event()

    def block() -> int:
        release.wait(30)
        return 1

    async with aiosqlite.connect(tmp_path / "r.db") as conn:
        await conn.create_function("block", 0, block)
        reader = BatchedReader(conn, max_queued=2)
        results: list[object] = []
        try:
            async with anyio.create_task_group() as tg:

                async def fetch(sql: str) -> None:
                    results.append((await reader.fetch(sql, ()))[0][0])

                tg.start_soon(fetch, "SELECT block()")
                await wait_all_tasks_blocked()  # the hop is busy
                for n in range(5):
                    tg.start_soon(fetch, f"SELECT {n}")
                await wait_all_tasks_blocked()
                assert reader.queued == 2  # three more wait for room
                release.set()
        finally:
            release.set()
        assert sorted(results, key=str) == [0, 1, 1, 2, 3, 4]
        with pytest.raises(ValueError, match="max_queued"):
            BatchedReader(conn, max_queued=0)


# -- rows that do not decode ------------------------------------------------------------------------


async def test_event_type_text_that_is_not_utf8_is_an_event_decode_error_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with SQLiteEventStore.open(path) as store:
        await store.append("s", [new_event(), new_event(), new_event()], NO_STREAM)
        conn = sqlite3.connect(path)
        with conn:
            conn.execute("UPDATE events SET type = CAST(x'C328' AS TEXT) WHERE position = 2")
        conn.close()
        with pytest.raises(EventDecodeError, match="not UTF-8") as caught:
            await store.read_all()
        assert (caught.value.stream_id, caught.value.version, caught.value.position) == ("s", 2, 2)
        assert [r.position for r in await store.read_all(0, limit=1)] == [1]
        assert [r.position for r in await store.read_all(2)] == [3]
        with pytest.raises(EventDecodeError, match="not UTF-8") as in_stream:
            await store.read_stream("s")
        assert in_stream.value.position == 2


async def test_a_snapshot_that_does_not_decode_is_a_store_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with SQLiteEventStore.open(path) as store:
        await store.append("s", [new_event()], NO_STREAM)
        await store.save_snapshot(Snapshot("s", 1, 1, 1, b"{}"))
        conn = sqlite3.connect(path)
        with conn:
            conn.execute("UPDATE snapshots SET taken_at = ?", (2**62,))
        conn.close()
        with pytest.raises(StoreError, match="snapshot of 's' at version 1 does not decode"):
            await store.load_snapshot("s")


# -- file permissions --------------------------------------------------------------------------------


@pytest.fixture
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("usual_umask")
async def test_the_store_file_and_its_wal_and_shm_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with SQLiteEventStore.open(path) as store:
        await store.append("s", [new_event()], NO_STREAM)
        files = [path, tmp_path / "events.db-wal", tmp_path / "events.db-shm"]
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
    assert modes == {"events.db": 0o600, "events.db-wal": 0o600, "events.db-shm": 0o600}


@pytest.mark.usefixtures("usual_umask")
async def test_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    async with SQLiteEventStore.open(path) as store:
        await store.append("s", [new_event()], NO_STREAM)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


async def test_a_store_in_a_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open SQLite store"):
        async with SQLiteEventStore.open(tmp_path / "missing" / "events.db"):
            pass


async def test_a_stray_cancellation_from_the_writer_does_not_end_the_loop() -> None:
    calls = 0

    async def writer(
        batch: list[PendingAppend], snapshots: list[PendingSnapshot]
    ) -> list[AppendResult | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:  # a driver that lets a CancelledError of its own escape
            raise asyncio.CancelledError
        return _results(batch)

    committer = GroupCommitter(writer, max_batch_events=100, store_name="test store")
    loop = asyncio.get_running_loop().create_task(committer.run())
    try:
        with anyio.fail_after(10):
            with pytest.raises(OutcomeUnknownError):
                await committer.submit("s", [new_event()], NO_STREAM)
            later = await committer.submit("t", [new_event()], NO_STREAM)
        assert later.stream_id == "t"
    finally:
        committer.close()
        await loop
