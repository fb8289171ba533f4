"""The SQLite read model's connection thread: exceptions that cannot cross into a future, a cancel landing
just after a timeout, and a COMMIT that stalls (bounded waits, never a false "stuck")."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from actorsrc import EventEnvelope, Projection, ReadModelError, SQLiteReadModel
from actorsrc.readmodel import sqlite as sqlite_read_model
from actorsrc.readmodel.base import Checkpoint
from actorsrc.readmodel.sqlite_connection import ConnectionThread, _Job, _settle
from actorsrc.records import Metadata

T = TypeVar("T")


def _envelope(position: int) -> EventEnvelope[Any]:
    return EventEnvelope(None, "Noted", "s", position, position, datetime.now(UTC), Metadata(f"e{position}"))


def _noted(handle: Callable[[sqlite3.Connection, EventEnvelope[Any]], None]) -> Projection:
    """A projection recording positions in `noted`; `handle` runs first."""

    def record(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
        handle(db, envelope)
        db.execute("INSERT INTO noted VALUES (?)", (envelope.position,))

    return Projection(
        name="noted", handle=record, setup=lambda db: db.execute("CREATE TABLE IF NOT EXISTS noted (position INTEGER)")
    )


async def _noted_positions(read_model: SQLiteReadModel) -> list[int]:
    return [row[0] for row in await read_model.query("SELECT position FROM noted ORDER BY position")]


# -- StopIteration and StopAsyncIteration from user code -----------------------------------------------------


class _Exhausted(Sequence[Any]):
    """Query parameters whose reading raises `error` inside `conn.execute`."""

    def __init__(self, error: type[BaseException]) -> None:
        self.error = error

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: Any) -> Any:
        raise self.error


def _raises(error: type[BaseException]) -> Callable[[sqlite3.Connection], None]:
    def work(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS written (x INTEGER)")
        conn.execute("INSERT INTO written VALUES (1)")
        raise error("ran out")

    return work


@pytest.mark.parametrize("error", [StopIteration, StopAsyncIteration])
@pytest.mark.parametrize("via", ["run", "query", "transaction"])
async def test_a_stop_iteration_from_user_code_reaches_its_caller_as_a_runtime_error(
    error: type[BaseException], via: str
) -> None:
    async with SQLiteReadModel.open(":memory:") as read_model:
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "run": lambda: read_model.run(_raises(error)),
            "query": lambda: read_model.query("SELECT ?", _Exhausted(error)),
            "transaction": lambda: read_model.transaction(_raises(error)),
        }
        with anyio.fail_after(10), pytest.raises(RuntimeError, match=f"raised {error.__name__}") as raised:
            await calls[via]()  # used to hang for ever on StopIteration
        assert isinstance(raised.value.__cause__, error)
        assert "outside a loop ran out" in str(raised.value)
        # The connection serves on, and the transaction was rolled back.
        tables = await read_model.query("SELECT name FROM sqlite_master WHERE name = 'written'")
        if via == "transaction":
            assert tables == []
        elif via == "run":
            assert await read_model.query("SELECT x FROM written") == [(1,)]


def test_a_future_that_refuses_an_outcome_gets_a_runtime_error_and_waiters_are_released() -> None:
    loop = asyncio.new_event_loop()
    try:
        job = _Job(lambda conn: None, "a job", loop.create_future())
        job.finished = loop.create_future()
        refused = StopIteration("ran out")  # what asyncio refuses to raise into a future
        _settle(job, False, refused)
        assert job.finished.done()
        error = job.outcome.exception()
        assert isinstance(error, RuntimeError)
        assert "could not be delivered" in str(error)
        assert isinstance(error.__cause__, TypeError)
    finally:
        loop.close()


# -- a cancel that lands just after the deadline ---------------------------------------------------------------


class _CancelledAtItsDeadline(ConnectionThread):
    """Cancels the caller of a timed call in the same loop iteration as its deadline, before it resumes:
    the race of a cancel landing just after a timeout, made certain."""

    caller: asyncio.Task[Any] | None = None

    async def call(
        self, fn: Callable[[sqlite3.Connection], T], *, label: str = "a job", timeout: float | None = None
    ) -> T:
        if timeout is not None:
            self.caller = asyncio.current_task()
        return await super().call(fn, label=label, timeout=timeout)

    def _deadline(self, job: Any, timeout: float) -> None:
        super()._deadline(job, timeout)
        if job.outcome.done() and self.caller is not None:
            self.caller.cancel()


@pytest.fixture
def cancel_at_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_read_model, "ConnectionThread", _CancelledAtItsDeadline)


async def _cancelled(work: Callable[[], Any]) -> None:
    """Runs `work` in a task of its own, which the deadline cancels; returns once it ended, cancelled."""
    task = asyncio.ensure_future(work())
    with anyio.fail_after(10):
        await asyncio.wait([task])
    assert task.cancelled()


@pytest.mark.usefixtures("cancel_at_deadline")
async def test_a_cancel_just_after_the_timeout_still_interrupts_and_rolls_back_the_handler(tmp_path: Path) -> None:
    def endless_query(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
        with suppress(sqlite3.OperationalError):  # runs until interrupted; the handler then tries to commit
            db.execute("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n")

    projection = _noted(endless_query)
    async with SQLiteReadModel.open(tmp_path / "read.db") as read_model:
        await read_model.setup(projection)
        await _cancelled(lambda: read_model.project(projection, [_envelope(1)], Checkpoint("noted", 1), timeout=0.1))
        with anyio.fail_after(10):  # used to queue for ever behind the endless query
            assert await _noted_positions(read_model) == []  # abandoned: rolled back, never committed
            assert await read_model.checkpoint("noted") == 0


@pytest.mark.usefixtures("cancel_at_deadline")
async def test_a_cancel_just_after_the_timeout_of_a_hung_handler_marks_the_read_model_held(tmp_path: Path) -> None:
    release, returned = threading.Event(), threading.Event()

    def hang(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
        try:
            release.wait(30)  # pure Python: nothing to interrupt
        finally:
            returned.set()

    projection = _noted(hang)
    try:
        async with SQLiteReadModel.open(tmp_path / "read.db", close_timeout=0.5) as read_model:
            await read_model.setup(projection)
            await _cancelled(
                lambda: read_model.project(projection, [_envelope(1)], Checkpoint("noted", 1), timeout=0.1)
            )
            with anyio.fail_after(10), pytest.raises(ReadModelError, match="is held by the handle of projection"):
                await read_model.checkpoint("noted")  # refused at once, not queued behind the hung handler
            assert not returned.is_set()
    finally:
        release.set()
    with anyio.fail_after(10):
        await anyio.to_thread.run_sync(returned.wait, 10)
    async with SQLiteReadModel.open(tmp_path / "read.db") as reopened:
        assert await _noted_positions(reopened) == []  # it returned late, abandoned: rolled back


# -- a COMMIT that stalls ----------------------------------------------------------------------------------------


class _StalledCommit:
    """A trace callback that holds the first COMMIT until `release` (a disk stalling under it)."""

    def __init__(self) -> None:
        self.committing, self.release = threading.Event(), threading.Event()

    def __call__(self, statement: str) -> None:
        if statement == "COMMIT" and not self.committing.is_set():
            self.committing.set()
            self.release.wait(15)

    def handle(self, db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
        db.set_trace_callback(self)  # the handler itself was quick: only the COMMIT will stall


async def _until(condition: threading.Event) -> None:
    with anyio.fail_after(10):
        await anyio.to_thread.run_sync(condition.wait, 10)


async def test_a_commit_that_stalls_past_the_timeout_is_waited_for_a_bounded_time(tmp_path: Path) -> None:
    stall = _StalledCommit()
    projection = _noted(stall.handle)
    try:
        async with SQLiteReadModel.open(tmp_path / "read.db", close_timeout=0.3) as read_model:
            await read_model.setup(projection)
            batch = read_model.project(projection, [_envelope(1)], Checkpoint("noted", 1), timeout=0.1)
            with anyio.fail_after(5), pytest.raises(ReadModelError, match=r"the COMMIT of the handle .* 0\.3 s"):
                await batch  # used to wait for the COMMIT without limit, shielded from cancellation
            stall.release.set()
            # Its commit decided (it was not rolled back), and nothing was marked stuck.
            with anyio.fail_after(10):
                assert await _noted_positions(read_model) == [1]
                assert await read_model.checkpoint("noted") == 1
    finally:
        stall.release.set()


async def test_a_cancelled_caller_of_a_slow_commit_does_not_mark_the_read_model_held(tmp_path: Path) -> None:
    stall = _StalledCommit()
    projection = _noted(stall.handle)
    try:
        async with SQLiteReadModel.open(tmp_path / "read.db") as read_model:
            await read_model.setup(projection)
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(read_model.project, projection, [_envelope(1)], Checkpoint("noted", 1))
                    await _until(stall.committing)
                    tg.cancel_scope.cancel()
            # Committing slowly is not stuck: the next call queues behind the COMMIT instead of being refused.
            async with anyio.create_task_group() as tg:
                checkpoint: list[int] = []

                async def read_checkpoint() -> None:
                    checkpoint.append(await read_model.checkpoint("noted"))

                tg.start_soon(read_checkpoint)
                await anyio.wait_all_tasks_blocked()
                stall.release.set()
            assert checkpoint == [1]
            assert await _noted_positions(read_model) == [1]
    finally:
        stall.release.set()
