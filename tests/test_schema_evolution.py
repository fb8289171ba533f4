"""Schema evolution (upcasters, renames) and time travel."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actorsrc import (
    Aggregate,
    ConfigurationError,
    EventDecodeError,
    EventEnvelope,
    Projection,
    Runtime,
    SQLiteEventStore,
    SQLiteReadModel,
    WriteSettings,
    load_state,
)
from actorsrc.hashing import slice_of
from actorsrc.timetravel import replay_projection, stream_history
from examples.bank import Credit, Debit, OpenAccount, account
from tests.helpers import bank
from tests.read_side_fixtures import balances, read_balances

# -- a wallet whose deposit event was renamed and reshaped twice ---------------------------------


@dataclass(frozen=True, slots=True)
class Deposit:
    amount: int


@dataclass(frozen=True, slots=True)
class FundsDeposited:  # v3; v1 was "MoneyDeposited" {"cents"}, v2 renamed the field to "amount"
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class FundsDepositedV2:
    amount: int


@dataclass(frozen=True, slots=True)
class Wallet:
    total: int = 0
    currencies: tuple[str, ...] = ()


def _evolve(state: Wallet, event: FundsDeposited) -> Wallet:
    return Wallet(state.total + event.amount, tuple(sorted({*state.currencies, event.currency})))


def _decide(state: Wallet, command: Deposit) -> Sequence[FundsDeposited]:
    return [FundsDeposited(command.amount, "EUR")]


def _v1_to_v2(old: dict[str, Any]) -> dict[str, Any]:
    return {"amount": old["cents"]}


def _v2_to_v3(old: dict[str, Any]) -> dict[str, Any]:
    return {**old, "currency": "EUR"}


wallet: Aggregate[Wallet, Deposit, FundsDeposited] = Aggregate(
    name="wallet",
    initial=Wallet(),
    decide=_decide,
    evolve=_evolve,
    events={"FundsDeposited": FundsDeposited},
    commands=(Deposit,),
    schema_versions={"FundsDeposited": 3},
    upcasters={("FundsDeposited", 1): _v1_to_v2, ("FundsDeposited", 2): _v2_to_v3},
    renamed_events={"MoneyDeposited": "FundsDeposited"},
)


def _old_rows(db: Path) -> None:
    """Rows as older versions of the application wrote them, inserted with plain SQL."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT INTO streams (key, name, version) VALUES (1, 'wallet-w', 3)")
        rows = [
            (1, 1, "MoneyDeposited", 1, b'{"cents": 100}'),  # old name, first shape
            (2, 2, "FundsDeposited", 2, b'{"amount": 20}'),  # new name, second shape
            (3, 3, "FundsDeposited", 3, b'{"amount": 3, "currency": "USD"}'),  # current
        ]
        conn.executemany(
            "INSERT INTO events (position, stream_key, version, type, schema_version, data, metadata, recorded_at,"
            " slice)"
            f" VALUES (?, 1, ?, ?, ?, ?, ?, 1751587200000000, {slice_of('wallet-w')})",
            [(p, v, t, s, d, f'["old-{p}"]'.encode()) for p, v, t, s, d in rows],
        )
    conn.close()


def _deposits_setup(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS deposits (position INTEGER PRIMARY KEY, type TEXT, amount INT, currency TEXT)"
    )


def _deposits_handle(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
    event = envelope.event
    db.execute(
        "INSERT INTO deposits VALUES (?, ?, ?, ?)", (envelope.position, envelope.type, event.amount, event.currency)
    )


deposits = Projection(name="deposits", handle=_deposits_handle, setup=_deposits_setup, aggregates=[wallet])
EXPECTED_DEPOSITS = [
    (1, "FundsDeposited", 100, "EUR"),
    (2, "FundsDeposited", 20, "EUR"),
    (3, "FundsDeposited", 3, "USD"),
    (4, "FundsDeposited", 4, "EUR"),
]


async def test_old_rows_read_correctly_through_rename_and_two_step_chain_on_every_path(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    async with SQLiteEventStore.open(db):
        pass  # the current schema, empty
    _old_rows(db)
    async with (
        SQLiteEventStore.open(db) as store,
        SQLiteReadModel.open(tmp_path / "read.db") as read_model,
        Runtime(store, [wallet], handlers=[deposits], read_model=read_model) as runtime,
    ):
        loaded = await load_state(store, wallet, "w")  # recovery path
        assert loaded.state == Wallet(123, ("EUR", "USD"))
        outcome = await runtime.ref(wallet, "w").ask(Deposit(4))  # the actor recovers through the chain
        assert outcome.version == 4
        assert (await runtime.ref(wallet, "w").state()).total == 127
        await runtime.wait_for(deposits, outcome.position, timeout=5)  # the global log path, in a projection
        assert await read_model.query("SELECT * FROM deposits ORDER BY position") == EXPECTED_DEPOSITS
        history = await stream_history(store, wallet, "w")
        assert [(e.type, e.event) for e in history][:2] == [
            ("FundsDeposited", FundsDeposited(100, "EUR")),
            ("FundsDeposited", FundsDeposited(20, "EUR")),
        ]
        async with SQLiteReadModel.open(":memory:") as scratch:
            assert await replay_projection(store, deposits, scratch) == 4
            assert await scratch.query("SELECT * FROM deposits ORDER BY position") == EXPECTED_DEPOSITS
    conn = sqlite3.connect(db)
    stored = conn.execute("SELECT type, schema_version, data FROM events ORDER BY position").fetchall()
    conn.close()
    assert stored[0] == ("MoneyDeposited", 1, b'{"cents": 100}')  # never rewritten


def test_a_gap_in_an_upcaster_chain_is_a_startup_error() -> None:
    with pytest.raises(
        ConfigurationError,
        match=r"'FundsDeposited' is at schema version 3 but has no upcaster "
        r"from version 2 to 3",
    ):
        replace(wallet, upcasters={("FundsDeposited", 1): _v1_to_v2})
    with pytest.raises(ConfigurationError, match="upcaster for 'FundsDeposited' from version 3"):
        replace(wallet, upcasters={**wallet.upcasters, ("FundsDeposited", 3): _v2_to_v3})
    with pytest.raises(ConfigurationError, match="maps to 'Nope', which is not registered"):
        replace(wallet, renamed_events={"Old": "Nope"})


async def test_a_failing_upcaster_or_a_too_new_row_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    async with SQLiteEventStore.open(db):
        pass
    _old_rows(db)
    broken = replace(wallet, upcasters={**wallet.upcasters, ("FundsDeposited", 1): lambda old: {"amount": old["x"]}})
    older_code = replace(  # the application as it was at version 2, meeting a row written by version 3
        wallet,
        events={"FundsDeposited": FundsDepositedV2},
        evolve=lambda state, event: state,
        schema_versions={"FundsDeposited": 2},
        upcasters={("FundsDeposited", 1): _v1_to_v2},
    )
    async with SQLiteEventStore.open(db) as store:
        with pytest.raises(
            EventDecodeError,
            match=r"'wallet-w' version 1 \(MoneyDeposited\).*upcasting from schema "
            r"version 1 to 3 failed: KeyError",
        ):
            await load_state(store, broken, "w")
        with pytest.raises(
            EventDecodeError,
            match=r"version 3 \(FundsDeposited\).*stored at schema version 3, "
            r"newer than this code's 2",
        ):
            await load_state(store, older_code, "w")


# -- time travel ------------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(amounts=st.lists(st.integers(-300, 300).filter(bool), min_size=1, max_size=25))
async def test_state_as_of_version_k_is_the_fold_of_the_first_k_events(amounts: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with bank(Path(tmp) / "b.db") as (store, runtime):
            ref = runtime.ref(account, "t")
            await ref.ask(OpenAccount("ann", overdraft_limit=10_000))
            for amount in amounts:
                await ref.ask(Credit(amount) if amount > 0 else Debit(-amount))
            history = await stream_history(store, account, "t")
            for k in range(len(history) + 1):
                as_of = await load_state(store, account, "t", to_version=k)
                assert as_of.state == account.replay(e.event for e in history[:k])
                assert as_of.version == k


async def test_state_as_of_a_moment_around_the_edges(tmp_path: Path) -> None:
    async with bank(tmp_path / "b.db", write=WriteSettings(passivate_after=None)) as (store, runtime):
        ref = runtime.ref(account, "t")
        await ref.ask(OpenAccount("ann"))
        for amount in (10, 20, 30):
            await ref.ask(Credit(amount))
        history = await stream_history(store, account, "t")
        times = [e.recorded_at for e in history]
        assert times == sorted(times)
        before = await load_state(store, account, "t", at=times[0] - timedelta(microseconds=1))
        assert (before.version, before.state) == (0, account.initial)
        for k, moment in enumerate(times, start=1):
            exact = await load_state(store, account, "t", at=moment)  # an event at exactly that time counts
            assert exact.version == max(i for i, t in enumerate(times, start=1) if t <= moment)
            assert exact.version >= k
        after = await load_state(store, account, "t", at=times[-1] + timedelta(days=365))
        assert (after.version, after.state.balance) == (4, 60)
        plus_two = times[2].astimezone(timezone(timedelta(hours=2)))  # the same moment, another zone
        assert (await load_state(store, account, "t", at=plus_two)).version >= 3
        with pytest.raises(ValueError, match="timezone-aware"):
            await load_state(store, account, "t", at=datetime(2026, 7, 4))


async def test_projection_replayed_to_a_past_position_equals_the_live_one_then(tmp_path: Path) -> None:
    async with (
        SQLiteEventStore.open(tmp_path / "events.db") as store,
        SQLiteReadModel.open(tmp_path / "read.db") as read_model,
        Runtime(store, [account], handlers=[balances], read_model=read_model) as runtime,
    ):
        for n in range(10):
            await runtime.ref(account, f"a{n}").ask(OpenAccount("x"))
            await runtime.ref(account, f"a{n}").ask(Credit(n + 1))
        then = await runtime.ref(account, "a3").ask(Credit(100), consistency=[balances])
        live_then = await read_balances(read_model)
        moment = (await stream_history(store, account, "a3"))[-1].recorded_at
        for n in range(10):
            await runtime.ref(account, f"a{n}").ask(Debit(1), consistency=[balances])
        assert await read_balances(read_model) != live_then
        async with SQLiteReadModel.open(tmp_path / "scratch.db") as scratch:
            assert await replay_projection(store, balances, scratch, to_position=then.position) == then.position
            assert await read_balances(scratch) == live_then
        async with SQLiteReadModel.open(":memory:") as scratch:
            assert await replay_projection(store, balances, scratch, until=moment) == then.position
            assert await read_balances(scratch) == live_then
        assert await read_balances(read_model) != live_then  # the live read model was left alone


@dataclass(frozen=True, slots=True)
class NoteAdded:  # today's shape: `legacy` was removed, `tag` was added with a default
    text: str
    tag: str = "general"


async def test_removed_fields_are_ignored_and_added_fields_take_their_defaults(tmp_path: Path) -> None:
    notes: Aggregate[tuple[str, ...], Deposit, NoteAdded] = Aggregate(
        name="notes",
        initial=(),
        decide=lambda state, command: [],
        evolve=lambda state, e: (*state, f"{e.tag}:{e.text}"),
        events={"NoteAdded": NoteAdded},
        commands=(Deposit,),
    )
    db = tmp_path / "notes.db"
    async with SQLiteEventStore.open(db):
        pass
    conn = sqlite3.connect(db)
    with conn:  # written by an older version: a `legacy` field, no `tag`
        conn.execute("INSERT INTO streams (key, name, version) VALUES (1, 'notes-n', 2)")
        conn.executemany(
            "INSERT INTO events (position, stream_key, version, type, schema_version, data, metadata, recorded_at,"
            " slice)"
            f" VALUES (?, 1, ?, 'NoteAdded', 1, ?, '[\"e\"]', 0, {slice_of('notes-n')})",
            [(1, 1, b'{"text": "hello", "legacy": 42}'), (2, 2, b'{"text": "bye", "tag": "farewell"}')],
        )
    conn.close()
    async with SQLiteEventStore.open(db) as store:
        assert (await load_state(store, notes, "n")).state == ("general:hello", "farewell:bye")
