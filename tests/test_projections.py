"""The read side: projections, checkpoints, parked events, read-your-writes, rebuilds."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest

from actorsrc import (
    ANY,
    ConfigurationError,
    EventEnvelope,
    FailurePolicy,
    NewEvent,
    ProcessManager,
    Projection,
    Runtime,
    Send,
    SQLiteEventStore,
    SQLiteReadModel,
    WaitTimeoutError,
)
from actorsrc.records import Metadata, next_event_id
from examples.bank import AccountOpened, Credit, Debit, OpenAccount, account
from tests.read_side_fixtures import balances, read_balances, read_side


async def test_projection_follows_writes_and_wait_for_gives_read_your_writes(tmp_path: Path) -> None:
    async with read_side(tmp_path, balances) as (_, read_model, runtime):
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"))
        outcome = await ref.ask(Credit(40))
        await runtime.wait_for(balances, outcome.position, timeout=5)
        assert (await read_balances(read_model))["account-a"] == 40
        outcome = await ref.ask(Credit(2), consistency=[balances], timeout=5)
        assert (await read_balances(read_model))["account-a"] == 42
        assert runtime.handler_statuses()[0].position >= outcome.position


async def test_checkpoint_survives_restart_without_reapplying(tmp_path: Path) -> None:
    async with read_side(tmp_path, balances) as (_, _, runtime):
        outcome = await runtime.ref(account, "a").ask(OpenAccount("ann"))
        await runtime.ref(account, "a").ask(Credit(5), consistency=[balances])
    async with read_side(tmp_path, balances) as (_, read_model, runtime):
        outcome = await runtime.ref(account, "a").ask(Credit(6), consistency=["balances"])
        assert (await read_balances(read_model)) == {"account-a": 11}
        assert await read_model.checkpoint("balances") == outcome.position
        assert (await read_model.query("SELECT count(*) FROM applied"))[0][0] == 3


def _fragile(name: str, state: dict[str, Any], policy: FailurePolicy) -> Projection:
    def setup(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS seen (position INTEGER PRIMARY KEY, amount INTEGER)")

    def handle(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
        amount = getattr(envelope.event, "amount", 0)
        if amount == 13 and not state["fixed"]:
            state["attempts"] += 1
            raise ValueError("13 is unlucky")
        db.execute("INSERT INTO seen VALUES (?, ?)", (envelope.position, amount))

    return Projection(name=name, handle=handle, setup=setup, aggregates=[account], failure=policy)


async def test_poison_event_is_parked_later_events_flow_and_retry_after_fix(tmp_path: Path) -> None:
    state = {"fixed": False, "attempts": 0}
    fragile = _fragile("fragile", state, FailurePolicy(retries=2, backoff=0.001))
    async with read_side(tmp_path, fragile) as (_, read_model, runtime):
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"))
        poison = await ref.ask(Credit(13))
        after = await ref.ask(Credit(14))
        await runtime.wait_for(fragile, after.position, timeout=5)
        assert state["attempts"] == 4  # the batch, then alone: a first try and two retries
        (parked,) = await runtime.parked(fragile)
        assert (parked.position, parked.stream_id, parked.version, parked.type) == (
            poison.position,
            "account-a",
            2,
            "AccountCredited",
        )
        assert parked.attempts == 3
        assert "13 is unlucky" in parked.error
        assert [r[0] for r in await read_model.query("SELECT amount FROM seen ORDER BY position")] == [0, 14]
        with pytest.raises(ValueError, match="unlucky"):
            await runtime.retry_parked(parked.id)  # not fixed yet: still parked
        assert len(await runtime.parked()) == 1
        state["fixed"] = True
        await runtime.retry_parked(parked.id)
        assert await runtime.parked() == []
        assert [r[0] for r in await read_model.query("SELECT amount FROM seen ORDER BY position")] == [0, 13, 14]
        with pytest.raises(LookupError, match="no parked event with id"):
            await runtime.retry_parked(parked.id)


async def test_discarding_a_parked_event(tmp_path: Path) -> None:
    fragile = _fragile("fragile", {"fixed": False, "attempts": 0}, FailurePolicy(retries=0))
    async with read_side(tmp_path, fragile) as (_, _, runtime):
        await runtime.ref(account, "a").ask(OpenAccount("ann"))
        outcome = await runtime.ref(account, "a").ask(Credit(13), consistency=[fragile])
        (parked,) = await runtime.parked("fragile")
        assert (await runtime.discard_parked(parked.id)).position == outcome.position
        assert await runtime.parked() == []


async def test_wait_for_fails_at_once_and_clearly_when_the_handler_is_stopped(tmp_path: Path) -> None:
    stopping = _fragile(
        "stopping", {"fixed": False, "attempts": 0}, FailurePolicy(retries=1, backoff=0.001, then="stop")
    )
    async with read_side(tmp_path, stopping) as (_, read_model, runtime):
        ref = runtime.ref(account, "a")
        opened = await ref.ask(OpenAccount("ann"))
        await runtime.wait_for(stopping, opened.position, timeout=5)
        poison = await ref.ask(Credit(13))
        later = await ref.ask(Credit(1))
        stopped = (
            r"'stopping' will not reach position 3: it is stopped at 1 "
            r"\(event at position 2 \(AccountCredited on 'account-a' v2\) failed 2 times: ValueError: 13 is unlucky\)"
        )
        with anyio.fail_after(5), pytest.raises(WaitTimeoutError, match=stopped):
            await runtime.wait_for(stopping, later.position, timeout=30)  # the stop ends the wait, not the 30 s
        with pytest.raises(WaitTimeoutError, match=stopped):
            await runtime.wait_for(stopping, later.position, timeout=30)  # already stopped: at once
        (status,) = runtime.handler_statuses()
        assert (status.status, status.position) == ("stopped", opened.position)
        assert "13 is unlucky" in (status.stop_reason or "")
        assert await read_model.checkpoint("stopping") == opened.position
        assert await runtime.parked() == []
        assert poison.position == 2


async def test_rebuild_replays_into_an_identical_read_model_while_writes_go_on(tmp_path: Path) -> None:
    async with read_side(tmp_path, balances) as (_, read_model, runtime):
        for n in range(50):
            await runtime.ref(account, f"a{n}").ask(OpenAccount("x"))
            await runtime.ref(account, f"a{n}").ask(Credit(n + 1))
        last = await runtime.ref(account, "a0").ask(Credit(1), consistency=[balances])
        before = await read_balances(read_model)
        progress: list[tuple[int, int]] = []

        async def keep_writing() -> None:
            for n in range(20):
                await runtime.ref(account, "late").ask(OpenAccount("x") if n == 0 else Credit(1))

        async with anyio.create_task_group() as tg:
            tg.start_soon(keep_writing)
            target = await runtime.rebuild(balances, on_progress=lambda done, total: progress.append((done, total)))
        assert target >= last.position
        assert progress[-1] == (target, target)
        final = await runtime.ref(account, "late").ask(Credit(1), consistency=[balances])
        after = await read_balances(read_model)
        assert {k: v for k, v in after.items() if k != "account-late"} == before
        assert after["account-late"] == 20
        assert (await read_model.query("SELECT count(*) FROM applied"))[0][0] == final.position


@pytest.mark.slow
async def test_many_handlers_see_every_event_once_in_per_stream_order(tmp_path: Path) -> None:
    def recorder(name: str) -> Projection:
        def setup(db: sqlite3.Connection) -> None:
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {name} (seq INTEGER PRIMARY KEY, position INT UNIQUE, stream TEXT,"
                " version INT)"
            )

        def handle(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
            db.execute(
                f"INSERT INTO {name} (position, stream, version) VALUES (?, ?, ?)",
                (envelope.position, envelope.stream_id, envelope.version),
            )

        return Projection(name=name, handle=handle, setup=setup, events={"SomethingHappened": dict})

    handlers = [recorder(f"h{i}") for i in range(4)]
    total = 100_000
    async with read_side(tmp_path, *handlers) as (store, read_model, runtime):
        event = NewEvent("SomethingHappened", b"{}", Metadata(next_event_id()))

        async def writer(stream: int) -> None:
            for _ in range(total // 500 // 10):
                await store.append(f"s-{stream}", [event] * 10, ANY)

        async with anyio.create_task_group() as tg:
            for stream in range(500):
                tg.start_soon(writer, stream)
        last = await store.last_position()
        assert last == total
        for handler in handlers:
            await runtime.wait_for(handler, last, timeout=120)
        for handler in handlers:
            rows = await read_model.query(
                f"SELECT count(*), count(DISTINCT position), min(position), max(position) FROM {handler.name}"
            )
            assert rows[0] == (total, total, 1, total)
            out_of_order = await read_model.query(
                f"SELECT count(*) FROM {handler.name} a JOIN {handler.name} b"
                " ON a.stream = b.stream AND a.version = b.version + 1 WHERE a.seq < b.seq"
            )
            assert out_of_order[0][0] == 0


def test_handlers_need_a_read_model_and_unique_names(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "x.db")
    with pytest.raises(ConfigurationError, match="need a read_model"):
        Runtime(store, [account], handlers=[balances])
    with pytest.raises(ConfigurationError, match="two handlers are named 'balances'"):
        Runtime(store, [account], handlers=[balances, balances], read_model=SQLiteReadModel(tmp_path / "r.db"))
    with pytest.raises(ConfigurationError, match="projection name"):
        Projection(name="bad name", handle=lambda db, e: None, aggregates=[account])


async def test_a_rejected_process_manager_command_is_not_sent_again_on_replay(tmp_path: Path) -> None:
    def charge_fee(state: int, envelope: EventEnvelope[Any]) -> tuple[int, list[Send]]:
        return state + 1, [Send(account, envelope.stream_id.removeprefix("account-"), Debit(100))]

    fee = ProcessManager(
        name="fee", key=lambda e: e.stream_id, initial=0, react=charge_fee, events={"AccountOpened": AccountOpened}
    )
    async with read_side(tmp_path, fee) as (store, _, runtime):
        opened = await runtime.ref(account, "a").ask(OpenAccount("ann"))
        await runtime.wait_for(fee, opened.position, timeout=5)  # the fee is rejected: the balance is 0
        credited = await runtime.ref(account, "a").ask(Credit(500))
        await runtime.wait_for(fee, credited.position, timeout=5)
        await runtime.rebuild(fee)  # the replay must not charge the fee now that it would be accepted
        assert await store.last_position() == credited.position
        assert (await runtime.ref(account, "a").state()).balance == 500
