"""The read side under faults: undecodable rows, read-model failures, handlers that hang, file modes."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from actorsrc import (
    ANY,
    EventEnvelope,
    FailurePolicy,
    NewEvent,
    ProcessManager,
    Projection,
    ReadSettings,
    Runtime,
    Send,
    SQLiteEventStore,
    SQLiteReadModel,
    WaitTimeoutError,
    WriteSettings,
)
from actorsrc.errors import ConfigurationError, EventDecodeError, ReadModelError
from actorsrc.readmodel.base import Checkpoint, CheckpointMovedError
from actorsrc.records import Metadata, RecordedEvent, next_event_id
from actorsrc.testing.faults import FaultyStore
from examples.bank import AccountOpened, Credit, OpenAccount, account
from tests.read_side_fixtures import balances, read_balances, read_side

Hook = Callable[[sqlite3.Connection, EventEnvelope[Any]], None]


def recorder(name: str, policy: FailurePolicy, hook: Hook | None = None, *, pad: int = 0) -> Projection:
    """Records each event's position (with `pad` bytes of filler); `hook` runs first, to misbehave."""

    def setup(db: sqlite3.Connection) -> None:
        db.execute(f"CREATE TABLE IF NOT EXISTS {name} (position INTEGER PRIMARY KEY, pad BLOB)")

    def handle(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
        if hook is not None:
            hook(db, envelope)
        db.execute(f"INSERT INTO {name} VALUES (?, zeroblob(?))", (envelope.position, pad))

    return Projection(name=name, handle=handle, setup=setup, aggregates=[account], failure=policy)


async def recorded(read_model: SQLiteReadModel, name: str) -> list[int]:
    return [row[0] for row in await read_model.query(f"SELECT position FROM {name} ORDER BY position")]


def amount(envelope: EventEnvelope[Any]) -> int:
    return int(getattr(envelope.event, "amount", 0))


class WatchedReadModel(SQLiteReadModel):
    """Counts the failures of `project` and `park`; `failed` is set once `project` failed `watch_for` times.
    `park_failures` makes the next parks fail as the read model's own failures."""

    watch_for = 3

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failures: list[BaseException] = []
        self.failed = anyio.Event()
        self.park_failures = 0

    async def project(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().project(*args, **kwargs)
        except Exception as exc:
            self.failures.append(exc)
            if len(self.failures) >= self.watch_for:
                self.failed.set()
            raise

    async def park(self, *args: Any, **kwargs: Any) -> None:
        if self.park_failures:
            self.park_failures -= 1
            raise ReadModelError("injected: the read model failed while parking")
        await super().park(*args, **kwargs)


@pytest.fixture
def owner_only_umask() -> Iterator[None]:
    previous = os.umask(0o022)  # what most systems use: files come out 0644 unless created otherwise
    yield
    os.umask(previous)


# -- undecodable rows in the global log -----------------------------------------------------------------


async def _write_account(tmp_path: Path, credits: list[int]) -> None:
    async with SQLiteEventStore.open(tmp_path / "events.db") as store, Runtime(store, [account]) as runtime:
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"))
        for credit in credits:
            await ref.ask(Credit(credit))


@pytest.mark.parametrize(("column", "value"), [("metadata", b"\x00"), ("recorded_at", 2**62)])
async def test_an_undecodable_row_gets_each_handlers_policy_and_later_events_flow(
    tmp_path: Path, column: str, value: bytes | int
) -> None:
    await _write_account(tmp_path, [1, 2, 3, 4])  # positions 1-5
    conn = sqlite3.connect(tmp_path / "events.db")  # a buggy program or a damaged disk
    with conn:
        conn.execute(f"UPDATE events SET {column} = ? WHERE position = 3", (value,))
    conn.close()
    keeps_going = recorder("keeps_going", FailurePolicy(retries=1, backoff=0.001))
    halts = recorder("halts", FailurePolicy(retries=1, backoff=0.001, then="stop"))
    async with read_side(tmp_path, keeps_going, halts, read=ReadSettings(poll_interval=0.05)) as (
        _,
        read_model,
        runtime,
    ):
        await runtime.wait_for(keeps_going, 5, timeout=10)
        assert await recorded(read_model, "keeps_going") == [1, 2, 4, 5]
        (parked,) = await runtime.parked(keeps_going)
        assert (parked.position, parked.stream_id, parked.version, parked.type) == (
            3,
            "account-a",
            3,
            "AccountCredited",
        )
        assert parked.attempts == 2
        assert "EventDecodeError" in parked.error
        with pytest.raises(
            WaitTimeoutError, match=r"'halts' will not reach position 5: it is stopped at 2 \(.*position 3"
        ):
            await runtime.wait_for(halts, 5, timeout=10)
        assert await recorded(read_model, "halts") == [1, 2]
        with pytest.raises(EventDecodeError):
            await runtime.retry_parked(parked.id)  # still undecodable: still parked
        await runtime.discard_parked(parked.id)
        later = await runtime.ref(account, "b").ask(OpenAccount("bob"), consistency=[keeps_going], timeout=10)
        assert await recorded(read_model, "keeps_going") == [1, 2, 4, 5, later.position]
        assert runtime.handler_statuses()[0].status == "running"


class TornReads(SQLiteEventStore):
    """Reads of the global log fail to decode the row at each position in `torn` (as often as its count)."""

    torn: dict[int, int]

    async def read_all(
        self, after_position: int = 0, limit: int = 1000, *, slices: tuple[int, int] | None = None
    ) -> list[RecordedEvent]:
        records = await super().read_all(after_position, limit, slices=slices)
        for record in records:
            if self.torn.get(record.position, 0) > 0:
                self.torn[record.position] -= 1
                raise EventDecodeError(
                    record.stream_id, record.version, record.type, "injected torn read", position=record.position
                )
        return records


async def test_a_row_that_decodes_when_read_again_is_handled_not_parked(tmp_path: Path) -> None:
    await _write_account(tmp_path, [1, 2, 3, 4])
    steady = recorder("steady", FailurePolicy(retries=1, backoff=0.001))
    async with (
        TornReads.open(tmp_path / "events.db") as store,
        SQLiteReadModel.open(tmp_path / "read.db") as read_model,
    ):
        # Twice: the batch read, then the read of the rows from 3 on, which then re-reads it alone.
        store.torn = {3: 2}
        async with Runtime(store, [account], handlers=[steady], read_model=read_model) as runtime:
            await runtime.wait_for(steady, 5, timeout=10)
            assert store.torn == {3: 0}
            assert await recorded(read_model, "steady") == [1, 2, 3, 4, 5]
            assert await runtime.parked() == []
            (status,) = runtime.handler_statuses()
            assert status.status == "running"
            assert "injected torn read" in (status.last_error or "")


async def test_an_event_its_handler_cannot_decode_is_parked_by_its_policy(tmp_path: Path) -> None:
    async with read_side(tmp_path, balances) as (store, read_model, runtime):
        await runtime.ref(account, "a").ask(OpenAccount("ann"))
        bad = NewEvent("AccountCredited", b'{"amount": "lots"}', Metadata(next_event_id()))
        written = await store.append("account-a", [bad], ANY)
        later = await runtime.ref(account, "b").ask(OpenAccount("bob"), consistency=[balances], timeout=10)
        (parked,) = await runtime.parked(balances)
        assert parked.position == written.first_position
        assert "EventDecodeError" in parked.error
        assert "account-a" in parked.error
        assert (await read_model.query("SELECT count(*) FROM applied"))[0][0] == 2
        assert later.position == written.first_position + 1


# -- failures of the read model itself --------------------------------------------------------------------


async def test_a_full_disk_under_a_handler_is_retried_until_freed_never_parked(tmp_path: Path) -> None:
    bulky = recorder("bulky", FailurePolicy(retries=1, backoff=0.001), pad=50_000)
    async with read_side(tmp_path, bulky, read_model_type=WatchedReadModel) as (_, read_model, runtime):
        assert isinstance(read_model, WatchedReadModel)
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"), consistency=[bulky])

        def fill_disk(conn: sqlite3.Connection) -> None:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")  # no room for another page

        await read_model.run(fill_disk)
        credited = await ref.ask(Credit(5))
        with anyio.fail_after(10):
            await read_model.failed.wait()  # three attempts failed: more than the policy's retries=1
        (status,) = runtime.handler_statuses()
        assert status.status == "retrying"
        assert status.retrying_since is not None
        assert "database or disk is full" in (status.last_error or "")
        assert all(isinstance(exc, ReadModelError) for exc in read_model.failures)
        assert await runtime.parked() == []
        await read_model.run(lambda conn: conn.execute("PRAGMA max_page_count = 1000000"))
        await runtime.wait_for(bulky, credited.position, timeout=10)
        assert await recorded(read_model, "bulky") == [1, credited.position]
        assert await runtime.parked() == []
        (status,) = runtime.handler_statuses()
        assert (status.status, status.retrying_since) == ("running", None)


async def test_a_locked_read_model_is_retried_and_the_handler_resumes_when_it_clears(tmp_path: Path) -> None:
    steady = recorder("steady", FailurePolicy(retries=1, backoff=0.001, then="stop"))
    async with read_side(tmp_path, steady, read_model_type=WatchedReadModel) as (_, read_model, runtime):
        assert isinstance(read_model, WatchedReadModel)
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"), consistency=[steady])
        await read_model.run(lambda conn: conn.execute("PRAGMA busy_timeout = 20"))
        other = sqlite3.connect(tmp_path / "read.db", isolation_level=None)  # another process holds the lock
        try:
            other.execute("BEGIN IMMEDIATE")
            credited = await ref.ask(Credit(5))
            with anyio.fail_after(10):
                await read_model.failed.wait()  # BEGIN failed three times; the policy says stop after two
            (status,) = runtime.handler_statuses()
            assert status.status == "retrying"
            assert "database is locked" in (status.last_error or "")
        finally:
            other.execute("ROLLBACK")
            other.close()
        await runtime.wait_for(steady, credited.position, timeout=10)
        assert await recorded(read_model, "steady") == [1, credited.position]
        assert runtime.handler_statuses()[0].status == "running"


async def test_a_park_the_read_model_fails_is_retried_and_the_event_is_never_skipped(tmp_path: Path) -> None:
    def unlucky(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
        if amount(envelope) == 13:
            raise ValueError("13 is unlucky")

    fragile = recorder("fragile", FailurePolicy(retries=0), unlucky)
    async with read_side(tmp_path, fragile, read_model_type=WatchedReadModel) as (_, read_model, runtime):
        assert isinstance(read_model, WatchedReadModel)
        read_model.park_failures = 3
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"))
        poison = await ref.ask(Credit(13))
        later = await ref.ask(Credit(1), consistency=[fragile], timeout=10)
        assert read_model.park_failures == 0
        (parked,) = await runtime.parked(fragile)
        assert parked.position == poison.position
        assert "13 is unlucky" in parked.error
        assert await recorded(read_model, "fragile") == [1, later.position]
        assert runtime.handler_statuses()[0].status == "running"


async def test_the_handlers_own_sql_error_is_its_failure_and_is_parked(tmp_path: Path) -> None:
    def typo(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
        if amount(envelope) == 13:
            db.execute("INSERT INTO no_such_table VALUES (1)")

    careless = recorder("careless", FailurePolicy(retries=1, backoff=0.001), typo)
    async with read_side(tmp_path, careless) as (_, read_model, runtime):
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"))
        poison = await ref.ask(Credit(13))
        later = await ref.ask(Credit(1), consistency=[careless], timeout=10)
        (parked,) = await runtime.parked(careless)
        assert parked.position == poison.position
        assert "no such table: no_such_table" in parked.error
        assert await recorded(read_model, "careless") == [1, later.position]


async def test_a_handler_raising_stop_iteration_is_its_failure_and_is_parked_not_hung(tmp_path: Path) -> None:
    def exhausted(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
        if amount(envelope) == 13:
            next(iter(()))  # asyncio cannot raise StopIteration into a future: this used to hang the handler

    careless = recorder("careless", FailurePolicy(retries=1, backoff=0.001), exhausted)
    async with read_side(tmp_path, careless) as (_, read_model, runtime):
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"))
        poison = await ref.ask(Credit(13))
        later = await ref.ask(Credit(1), consistency=[careless], timeout=10)
        (parked,) = await runtime.parked(careless)
        assert parked.position == poison.position
        assert "RuntimeError" in parked.error
        assert "raised StopIteration" in parked.error
        assert await recorded(read_model, "careless") == [1, later.position]
        assert runtime.handler_statuses()[0].status == "running"


async def test_a_process_manager_whose_read_model_fails_is_retried_and_sends_each_command_once(
    tmp_path: Path,
) -> None:
    class FailingSaves(SQLiteReadModel):
        failures = 3

        async def save_process(self, *args: Any, **kwargs: Any) -> None:
            if self.failures:
                self.failures -= 1
                raise ReadModelError("injected: the read model failed while saving")
            await super().save_process(*args, **kwargs)

    def welcome(state: int, envelope: EventEnvelope[Any]) -> tuple[int, list[Send]]:
        return state + 1, [Send(account, envelope.stream_id.removeprefix("account-"), Credit(5))]

    bonus = ProcessManager(
        name="bonus",
        key=lambda e: e.stream_id,
        initial=0,
        react=welcome,
        events={"AccountOpened": AccountOpened},
        failure=FailurePolicy(retries=0),
    )
    async with read_side(tmp_path, bonus, read_model_type=FailingSaves) as (store, read_model, runtime):
        assert isinstance(read_model, FailingSaves)
        opened = await runtime.ref(account, "a").ask(OpenAccount("ann"))
        await runtime.wait_for(bonus, opened.position, timeout=10)
        assert read_model.failures == 0
        assert await runtime.parked() == []
        assert (await runtime.ref(account, "a").state()).balance == 5  # sent on every attempt, carried out once
        assert await store.last_position() == opened.position + 1


async def test_the_stored_checkpoint_wins_over_what_the_dispatcher_believed(tmp_path: Path) -> None:
    steady = recorder("steady", FailurePolicy())
    async with read_side(tmp_path, steady) as (_, read_model, runtime):
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"), consistency=[steady])
        # Another attempt committed up to 4 (say, one that timed out in its COMMIT): 2-4 are done.
        await read_model.transaction(lambda conn: None, checkpoint=("steady", 4))
        for credit in (1, 2, 3, 4):
            last = await ref.ask(Credit(credit))
        await runtime.wait_for(steady, last.position, timeout=10)
        assert await recorded(read_model, "steady") == [1, 5]
        with pytest.raises(CheckpointMovedError, match="checkpoint is at 5, not at 2"):
            await read_model.transaction(lambda conn: None, checkpoint=Checkpoint("steady", 6, after=2))
        assert await read_model.checkpoint("steady") == 5


# -- handlers that hang ---------------------------------------------------------------------------------


async def test_a_handler_stuck_in_sql_is_interrupted_at_its_timeout_and_parked(tmp_path: Path) -> None:
    def endless_query(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
        if amount(envelope) == 13:
            db.execute("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n")

    slow = recorder("slow", FailurePolicy(retries=1, backoff=0.001, timeout=0.2), endless_query)
    async with read_side(tmp_path, slow) as (_, read_model, runtime):
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"))
        poison = await ref.ask(Credit(13))
        later = await ref.ask(Credit(1), consistency=[slow], timeout=20)
        (parked,) = await runtime.parked(slow)
        assert parked.position == poison.position
        assert "HandlerTimeoutError" in parked.error
        assert "timeout of 0.2 s; it was interrupted and rolled back" in parked.error
        assert await recorded(read_model, "slow") == [1, later.position]
        assert runtime.handler_statuses()[0].status == "running"


async def test_a_handler_stuck_in_python_is_stopped_and_closing_stays_bounded(tmp_path: Path) -> None:
    release, returned = threading.Event(), threading.Event()

    def hang(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
        if amount(envelope) == 13:
            try:
                release.wait(60)  # pure Python: no SQL statement to interrupt
            finally:
                returned.set()

    stuck = recorder("stuck", FailurePolicy(retries=3, backoff=0.001, timeout=0.2), hang)
    bystander = recorder("bystander", FailurePolicy())
    try:
        with anyio.fail_after(20):  # closing used to wait for the handler (247 s in the field)
            async with read_side(tmp_path, stuck, bystander, read_model_type=WatchedReadModel) as (
                _,
                read_model,
                runtime,
            ):
                assert isinstance(read_model, WatchedReadModel)
                read_model.watch_for = 1
                ref = runtime.ref(account, "a")
                opened = await ref.ask(OpenAccount("ann"), consistency=[stuck, bystander])
                poison = await ref.ask(Credit(13))
                with pytest.raises(WaitTimeoutError, match=r"'stuck' will not reach position 2: it is stopped at 1"):
                    await runtime.wait_for(stuck, poison.position, timeout=15)
                statuses = {status.name: status for status in runtime.handler_statuses()}
                reason = statuses["stuck"].stop_reason or ""
                assert "timeout of 0.2 s and is still running" in reason
                assert "cannot be interrupted" in reason
                # The thread is held: the bystander is refused (not queued behind it) and says why.
                read_model.failures.clear()
                read_model.failed = anyio.Event()
                await ref.ask(Credit(1))
                with anyio.fail_after(10):
                    await read_model.failed.wait()
                assert "is held by the handle of projection 'stuck' over 1 event" in str(read_model.failures[0])
                assert {s.name: s.status for s in runtime.handler_statuses()}["bystander"] == "retrying"
                assert not returned.is_set()
                closing = time.monotonic()
        # About LET_GO (1 s) here; waiting for the handler would take its 60 s: the margin is for a loaded machine.
        assert time.monotonic() - closing < 30
        assert not returned.is_set()  # the handler is still stuck: its thread was abandoned, not waited for
    finally:
        release.set()
    with anyio.fail_after(10):
        await anyio.to_thread.run_sync(returned.wait, 10)
    async with SQLiteReadModel.open(tmp_path / "read.db") as reopened:
        assert await reopened.checkpoint("stuck") == opened.position  # the stuck batch was rolled back
        assert await recorded(reopened, "stuck") == [1]


async def test_a_process_manager_over_its_timeout_is_parked_and_its_command_happens_once(tmp_path: Path) -> None:
    def welcome(state: int, envelope: EventEnvelope[Any]) -> tuple[int, list[Send]]:
        return state + 1, [Send(account, "b", Credit(5))]

    greeter = ProcessManager(
        name="greeter",
        key=lambda e: e.stream_id if e.event.owner == "ann" else None,
        initial=0,
        react=welcome,
        events={"AccountOpened": AccountOpened},
        failure=FailurePolicy(retries=0, timeout=0.3),
    )
    async with (
        SQLiteEventStore.open(tmp_path / "events.db") as inner,
        SQLiteReadModel.open(tmp_path / "read.db") as read_model,
    ):
        store = FaultyStore(inner)
        async with Runtime(
            store,
            [account],
            handlers=[greeter],
            read_model=read_model,
            read=ReadSettings(poll_interval=0.05),
            write=WriteSettings(persist_timeout=60),
        ) as runtime:
            await runtime.ref(account, "b").ask(OpenAccount("bob"), consistency=[greeter], timeout=10)
            store.hold_appends()  # the greeter's command will wait longer than its timeout
            try:
                opened = NewEvent("AccountOpened", b'{"owner": "ann", "overdraft_limit": 0}', Metadata(next_event_id()))
                written = await inner.append("account-a", [opened], ANY)
                await runtime.wait_for(greeter, written.first_position, timeout=10)
                (parked,) = await runtime.parked(greeter)
                assert parked.position == written.first_position
                assert "HandlerTimeoutError" in parked.error
                assert "timeout of 0.3 s sending 1 commands" in parked.error
                assert store.held_appends == 1
            finally:
                store.release_appends()
            await runtime.retry_parked(parked.id)  # the same command id: carried out once
            assert await runtime.parked() == []
            assert (await runtime.ref(account, "b").state()).balance == 5
            assert await inner.last_position() == written.first_position + 1


# -- files and the in-memory read model -----------------------------------------------------------------


@pytest.mark.usefixtures("owner_only_umask")
async def test_read_model_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "read.db"
    async with SQLiteReadModel.open(path) as read_model:
        await read_model.transaction(lambda conn: None, checkpoint=("x", 1))
        for file in (path, tmp_path / "read.db-wal", tmp_path / "read.db-shm"):
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


async def test_an_in_memory_store_and_read_model_run_projections_and_process_managers() -> None:
    def welcome(state: int, envelope: EventEnvelope[Any]) -> tuple[int, list[Send]]:
        return state + 1, [Send(account, envelope.stream_id.removeprefix("account-"), Credit(5))]

    bonus = ProcessManager(
        name="bonus", key=lambda e: e.stream_id, initial=0, react=welcome, events={"AccountOpened": AccountOpened}
    )
    async with (
        SQLiteEventStore.open(":memory:") as store,
        SQLiteReadModel.open(":memory:") as read_model,
        Runtime(store, [account], handlers=[balances, bonus], read_model=read_model) as runtime,
    ):
        opened = await runtime.ref(account, "a").ask(OpenAccount("ann"))
        await runtime.wait_for(bonus, opened.position, timeout=10)
        await runtime.wait_for(balances, await store.last_position(), timeout=10)
        assert await read_balances(read_model) == {"account-a": 5}
        assert await read_model.checkpoint("bonus") >= opened.position
    async with SQLiteReadModel.open(":memory:") as fresh:
        assert await fresh.checkpoint("balances") == 0  # each in-memory read model is its own


def test_a_failure_policy_timeout_must_be_positive_or_none() -> None:
    assert FailurePolicy(timeout=None).timeout is None
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ConfigurationError, match="timeout"):
            FailurePolicy(timeout=bad)
