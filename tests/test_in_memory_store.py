"""`SQLiteEventStore.open(":memory:")`: a fast store for users' unit tests (the contract runs in
test_sqlite_contract.py); here: independence, no files, and the bank example end to end on it."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from actorsrc import Runtime, SQLiteEventStore, SQLiteReadModel
from actorsrc.recovery import load_state
from actorsrc.store.base import NO_STREAM
from actorsrc.testing.store_contract import new_event
from examples.bank import (
    ApplyInterest,
    CloseAccount,
    Credit,
    Debit,
    InsufficientFunds,
    NotOpen,
    OpenAccount,
    account,
)
from examples.bank.queries import balance_on
from tests.read_side_fixtures import balances, read_balances


async def test_each_open_is_a_new_independent_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    async with SQLiteEventStore.open(":memory:") as first, SQLiteEventStore.open(":memory:") as second:
        assert first.in_memory
        await first.append("s", [new_event("1"), new_event("2")], NO_STREAM)
        await second.append("s", [new_event("other")], NO_STREAM)
        assert [r.data for r in await first.read_stream("s")] == [b'{"p":"1"}', b'{"p":"2"}']
        assert [r.data for r in await second.read_all()] == [b'{"p":"other"}']
    async with SQLiteEventStore.open(":memory:") as again:
        assert await again.last_position() == 0
    assert os.listdir(tmp_path) == []  # no file, no WAL


async def test_reads_see_every_committed_append_while_writes_go_on() -> None:
    async with SQLiteEventStore.open(":memory:") as store:
        seen: list[int] = []

        async def writer(n: int) -> None:
            for i in range(20):
                await store.append(f"s-{n}", [new_event(str(i))], i)

        async def reader() -> None:
            while len(seen) < 200:
                seen.extend(r.position for r in await store.read_all(seen[-1] if seen else 0, 7))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader)
                for n in range(10):
                    tg.start_soon(writer, n)
        assert seen == list(range(1, 201))


async def test_the_bank_example_runs_on_the_in_memory_store() -> None:
    async with (
        SQLiteEventStore.open(":memory:") as store,
        SQLiteReadModel.open(":memory:") as read_model,
        Runtime(store, [account], handlers=[balances], read_model=read_model) as runtime,
    ):
        ann, bob = runtime.ref(account, "ann"), runtime.ref(account, "bob")
        await ann.ask(OpenAccount("ann", overdraft_limit=50))
        await bob.ask(OpenAccount("bob"))

        async def deposit(amount: int) -> None:
            await ann.ask(Credit(amount))

        async with anyio.create_task_group() as tg:
            for amount in range(1, 101):
                tg.start_soon(deposit, amount)
        await ann.ask(Debit(5_000))
        with pytest.raises(InsufficientFunds):
            await bob.ask(Debit(1))
        await bob.ask(Credit(1_000))
        closed = await bob.ask(CloseAccount(), consistency=[balances])  # read-your-writes on the projection
        with pytest.raises(NotOpen):
            await bob.ask(Credit(1))

        assert await read_balances(read_model) == {"account-ann": 50, "account-bob": 1_000}
        assert closed.position == await store.last_position() == (1 + 100 + 1) + (1 + 1 + 1)
        interest = await ann.ask(ApplyInterest(rate_bp=200))
        assert interest.version == 103
        assert (await load_state(store, account, "ann")).state.balance == 51
        assert await balance_on(store, "bob", datetime.now(UTC).date()) == 1_000
        assert [r.version for r in await store.read_stream("account-bob")] == [1, 2, 3]
