"""One projection, written once as plain functions with ? placeholders, runs unchanged on the SQLite file
read model, the in-memory one and PostgreSQL, with the same rows, parked events and process state."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import msgspec
import pytest

from actorsrc import (
    EventEnvelope,
    FailurePolicy,
    ProcessManager,
    Projection,
    Runtime,
    Send,
    SQLiteEventStore,
    SQLiteReadModel,
)
from actorsrc.errors import ConfigurationError
from actorsrc.readmodel.base import Checkpoint
from actorsrc.readmodel.portable import PlaceholderError, returns_rows, translate
from actorsrc.readmodel.postgres import PostgresReadModel
from actorsrc.records import Metadata, next_event_id
from examples.bank import AccountCredited, AccountOpened, Credit, Debit, OpenAccount, account
from tests.postgres_support import fresh_schema, require_postgres

# -- ? to $n --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected", "count"),
    [
        ("SELECT ? , ?", "SELECT $1 , $2", 2),
        ("SELECT 'a?b', ?", "SELECT 'a?b', $1", 1),
        ("SELECT 'it''s?', ?", "SELECT 'it''s?', $1", 1),
        ("SELECT E'a\\'?', ?", "SELECT E'a\\'?', $1", 1),
        ('SELECT "odd?col" FROM t WHERE a = ?', 'SELECT "odd?col" FROM t WHERE a = $1', 1),
        ("SELECT ? -- is it?\n, ?", "SELECT $1 -- is it?\n, $2", 2),
        ("SELECT /* a? /* nested? */ b? */ ?", "SELECT /* a? /* nested? */ b? */ $1", 1),
        ("SELECT $$a?b$$, $tag$c?$tag$, ?", "SELECT $$a?b$$, $tag$c?$tag$, $1", 1),
        ("SELECT data ?? 'key' FROM t WHERE id = ?", "SELECT data ? 'key' FROM t WHERE id = $1", 1),
        ("SELECT '?' -- unterminated '", "SELECT '?' -- unterminated '", 0),
        ("SELECT 1", "SELECT 1", 0),
    ],
)
def test_question_marks_become_numbered_placeholders_outside_strings_and_comments(
    sql: str, expected: str, count: int
) -> None:
    assert translate(sql) == (expected, count, False)


def test_numbered_placeholders_are_left_alone_but_not_mixed_with_question_marks() -> None:
    assert translate("SELECT $1, 'x?'") == ("SELECT $1, 'x?'", 0, True)
    assert translate("SELECT a$1 FROM t") == ("SELECT a$1 FROM t", 0, False)  # part of a name
    with pytest.raises(PlaceholderError, match="mixes"):
        translate("SELECT $1, ?")
    with pytest.raises(PlaceholderError, match="numbered"):  # SQLite's ?NNN would become $11 on PostgreSQL
        translate("SELECT ?1, ?2")


def test_statements_that_return_rows_are_told_from_writes() -> None:
    assert returns_rows("  select 1")
    assert returns_rows("-- hi\nWITH x AS (SELECT 1) SELECT * FROM x")
    assert returns_rows("INSERT INTO t VALUES (?) RETURNING id")
    assert not returns_rows("UPDATE t SET a = ?")
    assert not returns_rows("CREATE TABLE t (returning_x TEXT)")
    assert returns_rows("(SELECT 1) UNION (SELECT 2)")
    assert not returns_rows("UPDATE t SET note = 'returning soon' WHERE id = ?")  # a word in a string
    assert not returns_rows("UPDATE t SET a = 1 -- RETURNING later\n")


# -- one projection ---------------------------------------------------------------------------------


def _setup(db: Any) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS portable_balances ("
        " account TEXT PRIMARY KEY, owner TEXT NOT NULL, balance BIGINT NOT NULL, credits BIGINT NOT NULL)"
    )


def _reset(db: Any) -> None:
    db.execute("DROP TABLE IF EXISTS portable_balances")


def _handle(db: Any, envelope: EventEnvelope[Any]) -> None:
    match envelope.event:
        case AccountOpened(owner):
            db.execute(
                "INSERT INTO portable_balances (account, owner, balance, credits) VALUES (?, ?, 0, 0)"
                " ON CONFLICT (account) DO NOTHING",
                (envelope.stream_id, f"{owner} (it's ?)"),
            )
        case AccountCredited(amount):
            if amount == 13:
                raise ValueError("13 is unlucky")
            row = db.execute(
                "SELECT balance FROM portable_balances WHERE account = ?", (envelope.stream_id,)
            ).fetchone()
            db.execute(
                "INSERT INTO portable_balances (account, owner, balance, credits) VALUES (?, '?', ?, 1)"
                " ON CONFLICT (account) DO UPDATE SET balance = excluded.balance,"
                " credits = portable_balances.credits + 1",
                (envelope.stream_id, row[0] + amount),
            )


portable = Projection(
    name="portable_balances",
    handle=_handle,
    setup=_setup,
    reset=_reset,
    aggregates=[account],
    failure=FailurePolicy(retries=0, backoff=0.001),
)


def _bonus(state: int, envelope: EventEnvelope[Any]) -> tuple[int, list[Send]]:
    return state + 1, [Send(account, envelope.stream_id.removeprefix("account-"), Credit(5))]


bonus = ProcessManager(
    name="bonus", key=lambda e: e.stream_id, initial=0, react=_bonus, events={"AccountOpened": AccountOpened}
)

ReadModelFactory = Callable[[Path], AbstractAsyncContextManager[Any]]


@asynccontextmanager
async def _sqlite_file(tmp_path: Path) -> AsyncIterator[SQLiteReadModel]:
    async with SQLiteReadModel.open(tmp_path / "read.db") as model:
        yield model


@asynccontextmanager
async def _in_memory(tmp_path: Path) -> AsyncIterator[SQLiteReadModel]:
    async with SQLiteReadModel.open(":memory:") as model:
        yield model


@asynccontextmanager
async def _postgres(tmp_path: Path) -> AsyncIterator[PostgresReadModel]:
    dsn = require_postgres()
    async for schema in fresh_schema():
        async with PostgresReadModel.open(dsn, schema=schema) as model:
            yield model


READ_MODELS: dict[str, ReadModelFactory] = {"sqlite": _sqlite_file, "memory": _in_memory, "postgres": _postgres}


async def _run_the_story(read_model: Any, tmp_path: Path) -> dict[str, Any]:
    """The same commands, rebuild and parked event on any read model; what the read model holds after."""
    async with (
        SQLiteEventStore.open(tmp_path / "events.db") as store,
        Runtime(store, [account], handlers=[portable, bonus], read_model=read_model) as runtime,
    ):
        for name in ("a", "b"):
            opened = await runtime.ref(account, name).ask(OpenAccount(name))
            await runtime.wait_for(bonus, opened.position, timeout=10)
        ref = runtime.ref(account, "a")
        poison = await ref.ask(Credit(13))
        await ref.ask(Credit(2))
        await runtime.ref(account, "b").ask(Debit(1))
        await runtime.wait_for(portable, await store.last_position(), timeout=10)
        query = "SELECT account, owner, balance, credits FROM portable_balances WHERE balance >= ? ORDER BY account"
        before = await read_model.query(query, (0,))
        await runtime.rebuild(portable)
        after = await read_model.query(query, (0,))
        assert after == before
        (parked,) = await runtime.parked(portable)
        assert parked.position == poison.position
        sent = await store.last_position()
        await runtime.rebuild(bonus)  # the manager's state is replayed; it sends nothing again
        assert await store.last_position() == sent
        states = [msgspec.json.decode(await read_model.load_process_state("bonus", f"account-{n}")) for n in "ab"]
        return {
            "rows": after,
            "parked": [(p.handler, p.stream_id, p.version, p.type) for p in await runtime.parked()],
            "checkpoint": await read_model.checkpoint("portable_balances") == await store.last_position(),
            "bonus_states": states,
            "empty": await read_model.query("SELECT count(*) FROM portable_balances WHERE owner = '?'"),
        }


EXPECTED = {
    "rows": [("account-a", "a (it's ?)", 7, 2), ("account-b", "b (it's ?)", 5, 1)],
    "parked": [("portable_balances", "account-a", 3, "AccountCredited")],
    "checkpoint": True,
    "bonus_states": [1, 1],
    "empty": [(0,)],
}


@pytest.mark.parametrize("kind", list(READ_MODELS))
async def test_one_projection_runs_unchanged_on_every_read_model(kind: str, tmp_path: Path) -> None:
    """The same definition on each read model gives the same rows, parked event and process state."""
    async with READ_MODELS[kind](tmp_path) as read_model:
        assert await _run_the_story(read_model, tmp_path) == EXPECTED


async def test_an_async_handler_is_refused_by_sqlite_with_a_hint(tmp_path: Path) -> None:
    async def handle(db: Any, envelope: EventEnvelope[Any]) -> None:
        await db.execute("SELECT 1")

    pg_only = Projection(name="pg_only", handle=handle, aggregates=[account])
    async with SQLiteReadModel.open(":memory:") as read_model:
        with pytest.raises(ConfigurationError, match=r"handle is `async def`.*every read model"):
            await read_model.setup(pg_only)


# -- PostgreSQL: exactly once, timeouts ---------------------------------------------------------------


@pytest.fixture
async def pg_model() -> AsyncIterator[PostgresReadModel]:
    async with _postgres(Path()) as model:
        yield model


def _counter(name: str, hook: Callable[[Any, EventEnvelope[Any]], None] | None = None, **policy: Any) -> Projection:
    def setup(db: Any) -> None:
        db.executescript(
            f"CREATE TABLE IF NOT EXISTS {name} (position BIGINT PRIMARY KEY);"
            f" CREATE TABLE IF NOT EXISTS {name}_total (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)"
        )

    def handle(db: Any, envelope: EventEnvelope[Any]) -> None:
        db.execute(
            f"INSERT INTO {name}_total (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = {name}_total.n + 1"
        )
        if hook is not None:
            hook(db, envelope)
        db.executemany(f"INSERT INTO {name} (position) VALUES (?)", [(envelope.position,)])

    return Projection(
        name=name, handle=handle, setup=setup, aggregates=[account], failure=FailurePolicy(backoff=0.001, **policy)
    )


async def test_a_connection_killed_mid_batch_under_a_portable_handler_lands_each_event_once(tmp_path: Path) -> None:
    killed: list[int] = []

    def kill_once(db: Any, envelope: EventEnvelope[Any]) -> None:
        if envelope.version == 5 and not killed:  # halfway through the batch, after writes
            killed.append(envelope.position)
            db.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    steady = _counter("steady", kill_once, retries=0)
    async with _postgres(tmp_path) as read_model, SQLiteEventStore.open(tmp_path / "events.db") as store:
        async with Runtime(store, [account]) as runtime:  # the log first, so the handler meets one batch
            ref = runtime.ref(account, "a")
            await ref.ask(OpenAccount("ann"))
            for _ in range(9):
                await ref.ask(Credit(1))
        last = await store.last_position()
        async with Runtime(store, [account], handlers=[steady], read_model=read_model) as runtime:
            await runtime.wait_for(steady, last, timeout=20)
            assert killed == [5]
            assert await runtime.parked() == []
            (status,) = runtime.handler_statuses()
            assert "ReadModelError" in (status.last_error or "")
        assert await read_model.query("SELECT n FROM steady_total", ()) == [(last,)]
        assert await read_model.query("SELECT count(*), min(position), max(position) FROM steady") == [(last, 1, last)]


async def test_a_portable_handler_over_its_timeout_is_rolled_back_and_its_thread_refused(
    pg_model: PostgresReadModel,
) -> None:
    finished = anyio.Event()
    refused: list[BaseException] = []
    token = anyio.lowlevel.current_token()

    def sleepy(db: Any, envelope: EventEnvelope[Any]) -> None:
        try:
            db.execute("SELECT pg_sleep(60)")
        except BaseException as exc:  # the statement is cancelled with its transaction
            refused.append(exc)
        try:
            db.execute("INSERT INTO slow_total (id, n) VALUES (2, 2)")
        except BaseException as exc:
            refused.append(exc)
        anyio.from_thread.run_sync(finished.set, token=token)

    slow = _counter("slow", sleepy, timeout=0.3)
    await pg_model.setup(slow)
    envelope = EventEnvelope(
        AccountCredited(1), "AccountCredited", "account-a", 1, 1, datetime.now(UTC), Metadata(next_event_id())
    )
    with pytest.raises(TimeoutError, match=r"timeout of 0\.3 s"):
        await pg_model.project(slow, [envelope], Checkpoint("slow", 1), timeout=0.3)
    await finished.wait()
    assert [type(exc).__name__ for exc in refused][-1] == "TransactionAbandonedError"
    assert await pg_model.checkpoint("slow") == 0
    assert await pg_model.query("SELECT count(*) FROM slow_total", ()) == [(0,)]
    active = await pg_model.query(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND state = 'active'"
    )
    assert active == [(0,)]


async def test_postgres_query_takes_both_placeholder_styles(pg_model: PostgresReadModel) -> None:
    assert await pg_model.query("SELECT ?::int + ?::int", (1, 2)) == [(3,)]
    assert await pg_model.query("SELECT $1::int + $2::int", 1, 2) == [(3,)]
    assert await pg_model.query("SELECT 1", ()) == [(1,)]
    assert await pg_model.query("SELECT 1") == [(1,)]
    # asyncpg's own form with a jsonb ? operator is passed through untouched, as before portable queries
    assert await pg_model.query("""SELECT '{"k": 1}'::jsonb ? $1""", "k") == [(True,)]
    assert await pg_model.query("""SELECT '{"k": 1}'::jsonb ? 'k'""") == [(True,)]
