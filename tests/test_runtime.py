"""The actor runtime over the SQLite store: ordering, batching, recovery, conflicts, shutdown."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

from actorsrc import (
    AskTimeoutError,
    ConcurrencyError,
    MailboxFullError,
    PersistTimeoutError,
    Runtime,
    RuntimeClosedError,
    SQLiteEventStore,
    StoreError,
    WriteSettings,
)
from actorsrc.recovery import load_state
from actorsrc.testing.faults import FaultyStore
from examples.bank import Credit, Debit, InsufficientFunds, OpenAccount, account
from tests.helpers import bank, both_persist_paths, replayed_account, used_persist_path, wait_until


async def test_quick_path_returns_version_position_and_events(tmp_path: Path) -> None:
    async with bank(tmp_path / "b.db") as (_, runtime):
        ref = runtime.ref(account, "acc-1")
        opened = await ref.ask(OpenAccount("ann"), timeout=5)
        credited = await ref.ask(Credit(100), timeout=5)
        assert (opened.version, opened.position) == (1, 1)
        assert (credited.version, credited.position) == (2, 2)
        assert credited.stream_id == "account-acc-1"
        assert [type(e).__name__ for e in credited.events] == ["AccountCredited"]


async def test_thousand_concurrent_deposits_to_one_account(tmp_path: Path) -> None:
    async with bank(tmp_path / "b.db") as (store, runtime):
        ref = runtime.ref(account, "hot")
        await ref.ask(OpenAccount("ann"))
        versions: list[int] = []

        async def deposit(amount: int) -> None:
            versions.append((await ref.ask(Credit(amount))).version)

        async with anyio.create_task_group() as tg:
            for amount in range(1, 1001):
                tg.start_soon(deposit, amount)
        state, stored_versions = await replayed_account(store, "hot")
        assert state.balance == sum(range(1, 1001))
        assert sorted(versions) == list(range(2, 1002))
        assert stored_versions == list(range(1, 1002))


@pytest.mark.slow
async def test_ten_thousand_accounts_survive_close_and_reopen(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    expected: dict[str, int] = {}

    async def drive(runtime: Runtime, account_id: str) -> None:
        ref = runtime.ref(account, account_id)
        await ref.ask(OpenAccount(account_id))
        n = int(account_id.split("-")[1])
        await ref.ask(Credit(100 + n))
        await ref.ask(Debit(n % 50 + 1))
        expected[account_id] = 100 + n - (n % 50 + 1)

    async with bank(db) as (_, runtime), anyio.create_task_group() as tg:
        for n in range(10_000):
            tg.start_soon(drive, runtime, f"acc-{n}")
    async with bank(db) as (store, runtime):
        assert await store.last_position() == 30_000
        # Recovery from the store: a debit that needs the recovered balance is accepted exactly.
        for account_id in ("acc-0", "acc-4321", "acc-9999"):
            outcome = await runtime.ref(account, account_id).ask(Debit(expected[account_id]))
            assert outcome.version == 4
            expected[account_id] = 0
        for account_id, balance in expected.items():
            state, _ = await replayed_account(store, account_id)
            assert state.balance == balance, account_id


async def test_two_runtimes_on_one_file_detect_the_conflict_and_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    async with bank(db) as (store, first), bank(db) as (_, second):
        a, b = first.ref(account, "shared"), second.ref(account, "shared")
        await a.ask(OpenAccount("ann"))
        await b.ask(Credit(10))  # b recovers version 1 and appends version 2
        outcome = await a.ask(Credit(20))  # a still holds version 1: conflict, reload, decide again
        assert outcome.version == 3

        async def hammer(ref: object, amount: int) -> None:
            await ref.ask(Credit(amount))  # type: ignore[attr-defined]

        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(hammer, a if i % 2 else b, 1)
        state, versions = await replayed_account(store, "shared")
        assert state.balance == 10 + 20 + 100
        assert versions == list(range(1, 104))


async def test_conflicts_past_the_retry_limit_reach_the_caller(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    async with bank(db, write=WriteSettings(max_conflict_retries=0)) as (store, first), bank(db) as (_, second):
        await first.ref(account, "x").ask(OpenAccount("ann"))
        await second.ref(account, "x").ask(Credit(5))
        with pytest.raises(ConcurrencyError, match="account-x"):
            await first.ref(account, "x").ask(Credit(7))
        state, versions = await replayed_account(store, "x")
        assert (state.balance, versions) == (5, [1, 2])
        # The actor reloaded: the next command succeeds.
        assert (await first.ref(account, "x").ask(Credit(7))).version == 3


@both_persist_paths
async def test_commands_of_one_actor_share_appends(tmp_path: Path, inline: bool) -> None:
    async with SQLiteEventStore.open(tmp_path / "b.db") as inner:
        store = FaultyStore(inner, inline=inline)
        async with Runtime(store, [account]) as runtime:
            ref = runtime.ref(account, "batched")
            await ref.ask(OpenAccount("ann"))
            store.hold_appends()
            sent = 0

            async def credit() -> None:
                nonlocal sent
                sent += 1  # the command is in the mailbox before this task next yields
                await ref.ask(Credit(1))

            async with anyio.create_task_group() as tg:
                for _ in range(200):
                    tg.start_soon(credit)
                await store.held()
                await wait_until(lambda: sent == 200, what="every command queued")
                store.release_appends()
        assert used_persist_path(store, inline)
        assert store.appended_events == 201
        assert store.appends < 10  # 200 commands went out in a few appends, not 200


@both_persist_paths
async def test_reply_waits_until_the_events_are_durable(tmp_path: Path, inline: bool) -> None:
    async with SQLiteEventStore.open(tmp_path / "b.db") as inner:
        store = FaultyStore(inner, inline=inline)
        async with Runtime(store, [account]) as runtime:
            ref = runtime.ref(account, "slow")
            await ref.state()  # recovered: the next command may take the inline path
            store.hold_appends()
            replied = anyio.Event()

            async def open_it() -> None:
                await ref.ask(OpenAccount("ann"))
                replied.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(open_it)
                await store.held()  # the append is in flight
                assert not replied.is_set()
                assert await inner.last_position() == 0
                store.release_appends()
            assert await inner.last_position() == 1
        assert used_persist_path(store, inline)


@both_persist_paths
async def test_ask_timeout_is_a_clear_error(tmp_path: Path, inline: bool) -> None:
    async with SQLiteEventStore.open(tmp_path / "b.db") as inner:
        store = FaultyStore(inner, inline=inline)
        async with Runtime(store, [account]) as runtime:
            await runtime.ref(account, "late").state()
            store.hold_appends()
            with pytest.raises(AskTimeoutError, match=r"account 'late' did not reply to OpenAccount within 0.1"):
                await runtime.ref(account, "late").ask(OpenAccount("ann"), timeout=0.1)
            assert store.held_appends == 1
            assert isinstance(AskTimeoutError(), TimeoutError)
            store.release_appends()
        assert used_persist_path(store, inline)


@both_persist_paths
async def test_failed_append_reaches_the_caller_and_the_actor_recovers(tmp_path: Path, inline: bool) -> None:
    async with SQLiteEventStore.open(tmp_path / "b.db") as inner:
        store = FaultyStore(inner, inline=inline)
        async with Runtime(store, [account]) as runtime:
            ref = runtime.ref(account, "flaky")
            await ref.ask(OpenAccount("ann"))
            store.fail_next_appends(1)
            with pytest.raises(StoreError, match="injected"):
                await ref.ask(Credit(50))
            assert used_persist_path(store, inline)
            assert (await ref.ask(Credit(30))).version == 2
        state, versions = await replayed_account(inner, "flaky")
        assert (state.balance, versions) == (30, [1, 2])


@both_persist_paths
async def test_a_hung_append_times_out_writes_nothing_and_the_actor_recovers(tmp_path: Path, inline: bool) -> None:
    async with SQLiteEventStore.open(tmp_path / "b.db") as inner:
        store = FaultyStore(inner, inline=inline)
        async with Runtime(store, [account]) as runtime:
            ref = runtime.ref(account, "hung")
            await ref.ask(OpenAccount("ann"))
            # Short only for the hung append: a real one may take longer than 0.2 s on a loaded machine.
            runtime.persist_timeout = 0.2
            store.hold_appends()
            with pytest.raises(PersistTimeoutError, match=r"did not complete within 0\.2 s"):
                await ref.ask(Credit(50))
            assert store.held_appends == 0  # the runtime gave up on it at the gate: nothing was written
            assert await inner.stream_version("account-hung") == 1
            assert used_persist_path(store, inline)
            store.release_appends()
            runtime.persist_timeout = 10.0
            assert (await ref.ask(Credit(30))).version == 2
        state, versions = await replayed_account(inner, "hung")
        assert (state.balance, versions) == (30, [1, 2])


async def test_close_finishes_queued_commands_then_refuses_new_ones(tmp_path: Path) -> None:
    results: list[int] = []
    sent = 0
    async with SQLiteEventStore.open(tmp_path / "b.db") as store:
        runtime = Runtime(store, [account])
        ref = runtime.ref(account, "closing")

        async def credit() -> None:
            nonlocal sent
            sent += 1  # the command is in the mailbox before this task next yields
            results.append((await ref.ask(Credit(1))).version)

        # Another writer holds the file's write lock, so the first credit's append waits and the others
        # stay queued; the lock is let go once the runtime has started closing.
        other = sqlite3.connect(tmp_path / "b.db", isolation_level=None, check_same_thread=False)

        async def let_go_once_closing() -> None:
            await wait_until(lambda: not runtime._sender.accepting, what="the runtime to start closing")
            other.execute("COMMIT")

        async with anyio.create_task_group() as callers:  # outlive the runtime: closing must answer them
            async with runtime:
                await ref.ask(OpenAccount("ann"))
                other.execute("BEGIN IMMEDIATE")
                for _ in range(300):
                    callers.start_soon(credit)
                await wait_until(lambda: sent == 300, what="every command sent")
                await wait_until(lambda: runtime.mailbox_length(account, "closing") == 299, what="299 queued")
                callers.start_soon(let_go_once_closing)
            assert await store.last_position() == 301  # closing finished every queued command
        other.close()
        assert sorted(results) == list(range(2, 302))
        with pytest.raises(RuntimeClosedError):
            await ref.ask(Credit(1))
        state, _ = await replayed_account(store, "closing")
        assert state.balance == 300


@both_persist_paths
async def test_full_mailbox_waits_or_fails_fast(tmp_path: Path, inline: bool) -> None:
    async with SQLiteEventStore.open(tmp_path / "b.db") as inner:
        store = FaultyStore(inner, inline=inline)
        async with Runtime(store, [account], write=WriteSettings(mailbox_capacity=4, max_batch=2)) as runtime:
            ref = runtime.ref(account, "busy")
            await ref.ask(OpenAccount("ann"))
            store.hold_appends()
            async with anyio.create_task_group() as tg:
                for _ in range(30):  # far more than the mailbox holds: callers wait for space
                    tg.start_soon(ref.ask, Credit(1))
                await store.held()
                await wait_until(lambda: runtime.mailbox_length(account, "busy") == 4, what="a full mailbox")
                with pytest.raises(MailboxFullError, match="account-busy"):
                    await ref.ask(Credit(1), wait_for_space=False)
                assert runtime.mailbox_length(account, "busy") == 4
                store.release_appends()
        assert used_persist_path(store, inline)
        state, _ = await replayed_account(inner, "busy")
        assert state.balance == 30


async def test_rejections_and_domain_errors_keep_the_actor_serving(tmp_path: Path) -> None:
    async with bank(tmp_path / "b.db") as (store, runtime):
        ref = runtime.ref(account, "acc")
        await ref.ask(OpenAccount("ann"))
        with pytest.raises(InsufficientFunds, match="below the overdraft limit"):
            await ref.ask(Debit(5))
        assert await store.last_position() == 1
        assert (await ref.ask(Credit(5))).version == 2


async def test_state_query_answers_in_mailbox_order_and_writes_nothing(tmp_path: Path) -> None:
    async with bank(tmp_path / "b.db") as (store, runtime):
        ref = runtime.ref(account, "q")
        assert (await ref.state()).opened is False
        await ref.ask(OpenAccount("ann"))
        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(ref.ask, Credit(2))
            tg.start_soon(ref.state)
        assert (await ref.state()).balance == 100
        assert await store.last_position() == 51
    async with bank(tmp_path / "b.db") as (store, runtime):
        loaded = await load_state(store, account, "q")
        assert (loaded.state.balance, loaded.version, loaded.position) == (100, 51, 51)
        assert (await runtime.ref(account, "q").state()) == loaded.state
        empty = await load_state(store, account, "never")
        assert (empty.state, empty.version, empty.position) == (account.initial, 0, 0)
