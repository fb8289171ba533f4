"""The read side on PostgreSQL: projection writes and checkpoints in one transaction, parking,
rebuilds and a process manager, with the event store on PostgreSQL too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from actorsrc import EventEnvelope, FailurePolicy, ProcessManager, Projection, Runtime, Send
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
