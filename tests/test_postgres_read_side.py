"""The read side on PostgreSQL: projection writes and checkpoints in one transaction, parking,
rebuilds and a process manager, with the event store on PostgreSQL too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from actorsrc import EventEnvelope, FailurePolicy, ProcessManager, Projection, Runtime, Send
from actorsrc.readmodel.base import Checkpoint, CheckpointMovedError
from actorsrc.readmodel.postgres import PostgresReadModel
from actorsrc.store.postgres import PostgresEventStore
from examples.bank import AccountCredited, AccountOpened, Credit, Debit, OpenAccount, account
from tests.postgres_support import fresh_schema, require_postgres


@pytest.fixture
async def schemas() -> AsyncIterator[tuple[str, str]]:
    async for events in fresh_schema():
        async for read in fresh_schema():
            yield events, read


async def _setup(db: Any) -> None:
    await db.execute("CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, balance BIGINT NOT NULL)")


async def _reset(db: Any) -> None:
    await db.execute("DROP TABLE IF EXISTS balances")


async def _handle(db: Any, envelope: EventEnvelope[Any]) -> None:
    match envelope.event:
        case AccountOpened():
            await db.execute("INSERT INTO balances VALUES ($1, 0)", envelope.stream_id)
        case AccountCredited(amount):
            if amount == 13:
                raise ValueError("13 is unlucky")
            await db.execute(
                "UPDATE balances SET balance = balance + $1 WHERE account = $2", amount, envelope.stream_id
            )


pg_balances = Projection(
    name="pg_balances",
    handle=_handle,
    setup=_setup,
    reset=_reset,
    aggregates=[account],
    failure=FailurePolicy(retries=1, backoff=0.001),
)


def _welcome_bonus(state: int, envelope: EventEnvelope[Any]) -> tuple[int, list[Send]]:
    return state + 1, [Send(account, envelope.stream_id.removeprefix("account-"), Credit(5))]


bonus = ProcessManager(
    name="bonus", key=lambda e: e.stream_id, initial=0, react=_welcome_bonus, events={"AccountOpened": AccountOpened}
)


async def test_projection_and_process_manager_on_postgres(schemas: tuple[str, str]) -> None:
    dsn = require_postgres()
    events_schema, read_schema = schemas
    async with (
        PostgresEventStore.open(dsn, schema=events_schema) as store,
        PostgresReadModel.open(dsn, schema=read_schema) as read_model,
        Runtime(store, [account], handlers=[pg_balances, bonus], read_model=read_model) as runtime,
    ):
        ref = runtime.ref(account, "a")
        opened = await ref.ask(OpenAccount("ann"))
        await runtime.wait_for(bonus, opened.position, timeout=10)  # the bonus command went out
        await ref.ask(Credit(13))
        last = await ref.ask(Credit(2), consistency=[pg_balances], timeout=10)
        state = await ref.state()
        assert state.balance == 5 + 13 + 2
        await runtime.wait_for(pg_balances, await store.last_position(), timeout=10)
        assert await read_model.query("SELECT balance FROM balances") == [(7,)]  # the 13 is parked
        (parked,) = await runtime.parked(pg_balances)
        assert parked.type == "AccountCredited"
        await runtime.discard_parked(parked.id)
        assert await runtime.parked() == []
        before = await store.last_position()
        await runtime.rebuild(pg_balances)
        await runtime.rebuild(bonus)  # replaying the manager sends nothing new
        assert await store.last_position() == before
        assert await read_model.checkpoint("pg_balances") == before
        assert await read_model.query("SELECT balance FROM balances") == [(7,)]
        assert last.position <= before
        await ref.ask(Debit(1), consistency=[pg_balances], timeout=10)
        assert await read_model.query("SELECT balance FROM balances") == [(7,)]  # debits are not projected


def _recorder(name: str, policy: FailurePolicy, hook: Any = None) -> Projection:
    async def setup(db: Any) -> None:
        await db.execute(f"CREATE TABLE IF NOT EXISTS {name} (position BIGINT PRIMARY KEY)")

    async def handle(db: Any, envelope: EventEnvelope[Any]) -> None:
        if hook is not None:
            await hook(db, envelope)
        await db.execute(f"INSERT INTO {name} VALUES ($1)", envelope.position)

    return Projection(name=name, handle=handle, setup=setup, aggregates=[account], failure=policy)


async def _recorded(read_model: PostgresReadModel, name: str) -> list[int]:
    return [row[0] for row in await read_model.query(f"SELECT position FROM {name} ORDER BY position")]


async def test_a_postgres_handler_over_its_timeout_is_cancelled_and_parked(schemas: tuple[str, str]) -> None:
    async def sleepy(db: Any, envelope: EventEnvelope[Any]) -> None:
        if getattr(envelope.event, "amount", 0) == 13:
            await db.execute("SELECT pg_sleep(60)")

    slow = _recorder("slow", FailurePolicy(retries=1, backoff=0.001, timeout=0.3), sleepy)
    dsn = require_postgres()
    events_schema, read_schema = schemas
    async with (
        PostgresEventStore.open(dsn, schema=events_schema) as store,
        PostgresReadModel.open(dsn, schema=read_schema) as read_model,
        Runtime(store, [account], handlers=[slow], read_model=read_model) as runtime,
    ):
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"))
        poison = await ref.ask(Credit(13))
        later = await ref.ask(Credit(1), consistency=[slow], timeout=20)
        (parked,) = await runtime.parked(slow)
        assert parked.position == poison.position
        assert "HandlerTimeoutError" in parked.error
        assert "timeout of 0.3 s; it was cancelled and rolled back" in parked.error
        assert await _recorded(read_model, "slow") == [1, later.position]
        active = await read_model.query(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND state = 'active'"
        )
        assert active == [(0,)]  # the server stopped sleeping too


async def test_closing_while_a_postgres_handler_hangs_is_bounded(schemas: tuple[str, str]) -> None:
    sleeping = anyio.Event()

    async def hang(db: Any, envelope: EventEnvelope[Any]) -> None:
        if getattr(envelope.event, "amount", 0) == 13:
            sleeping.set()
            await db.execute("SELECT pg_sleep(60)")

    stuck = _recorder("stuck", FailurePolicy(timeout=None), hang)
    dsn = require_postgres()
    events_schema, read_schema = schemas
    with anyio.fail_after(15):
        async with (
            PostgresEventStore.open(dsn, schema=events_schema) as store,
            PostgresReadModel.open(dsn, schema=read_schema) as read_model,
            Runtime(store, [account], handlers=[stuck], read_model=read_model) as runtime,
        ):
            ref = runtime.ref(account, "a")
            opened = await ref.ask(OpenAccount("ann"), consistency=[stuck], timeout=10)
            await ref.ask(Credit(13))
            await sleeping.wait()
        async with PostgresReadModel.open(dsn, schema=read_schema) as reopened:
            assert await reopened.checkpoint("stuck") == opened.position


async def test_a_lost_connection_under_a_postgres_handler_is_retried_not_parked(schemas: tuple[str, str]) -> None:
    killed: list[int] = []

    async def lose_the_link(db: Any, envelope: EventEnvelope[Any]) -> None:
        if getattr(envelope.event, "amount", 0) == 7 and len(killed) < 2:
            killed.append(envelope.position)
            await db.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    steady = _recorder("steady", FailurePolicy(retries=0), lose_the_link)
    dsn = require_postgres()
    events_schema, read_schema = schemas
    async with (
        PostgresEventStore.open(dsn, schema=events_schema) as store,
        PostgresReadModel.open(dsn, schema=read_schema) as read_model,
        Runtime(store, [account], handlers=[steady], read_model=read_model) as runtime,
    ):
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"))
        credited = await ref.ask(Credit(7), consistency=[steady], timeout=20)
        assert killed == [credited.position, credited.position]
        assert await runtime.parked() == []
        assert await _recorded(read_model, "steady") == [1, credited.position]
        (status,) = runtime.handler_statuses()
        assert status.status == "running"
        assert "ReadModelError" in (status.last_error or "")


async def test_a_postgres_checkpoint_moves_only_from_where_it_is_expected(schemas: tuple[str, str]) -> None:
    dsn = require_postgres()
    _, read_schema = schemas
    async with PostgresReadModel.open(dsn, schema=read_schema) as read_model:
        steady = _recorder("steady", FailurePolicy())
        await read_model.setup(steady)
        await read_model.project(steady, [], Checkpoint("steady", 4, after=0))
        with pytest.raises(CheckpointMovedError, match="checkpoint is at 4, not at 2"):
            await read_model.project(steady, [], Checkpoint("steady", 9, after=2))
        await read_model.park("steady", 5, "s", 1, "T", "boom", 1, after=4)
        with pytest.raises(CheckpointMovedError, match="checkpoint is at 5, not at 4"):
            await read_model.park("steady", 6, "s", 1, "T", "boom", 1, after=4)
        assert await read_model.checkpoint("steady") == 5
        assert [p.position for p in await read_model.parked("steady")] == [5]
