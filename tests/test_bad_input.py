"""Bad input gets a clear, typed error that names what was wrong, and writes nothing."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from actorsrc import (
    Aggregate,
    ConfigurationError,
    EventDecodeError,
    InvalidDecisionError,
    InvalidStreamIdError,
    RecoveryError,
    Runtime,
    SQLiteEventStore,
    UnknownCommandError,
    UnknownEventTypeError,
)
from actorsrc.hashing import slice_of
from examples.bank import AccountState, Credit, OpenAccount, account
from examples.bank.domain import decide as bank_decide
from tests.helpers import bank


@dataclass(frozen=True)
class Unrelated:
    pass


@dataclass(frozen=True)
class StrayEvent:
    pass


async def test_wrong_command_type_is_refused_before_the_actor(tmp_path: Path) -> None:
    async with bank(tmp_path / "b.db") as (store, runtime):
        with pytest.raises(UnknownCommandError, match=r"Unrelated is not a command of aggregate 'account'"):
            await runtime.ref(account, "a").ask(Unrelated())  # type: ignore[arg-type]
        assert isinstance(UnknownCommandError(), TypeError)
        assert await store.last_position() == 0


@pytest.mark.parametrize("bad_id", ["", "  ", "x" * 600, 7, None, "a\x00b"])
async def test_bad_aggregate_ids_are_refused(tmp_path: Path, bad_id: object) -> None:
    async with bank(tmp_path / "b.db") as (_, runtime):
        with pytest.raises(InvalidStreamIdError, match="account id"):
            runtime.ref(account, bad_id)  # type: ignore[arg-type]
        assert isinstance(InvalidStreamIdError(), ValueError)


async def test_unregistered_aggregate_is_refused(tmp_path: Path) -> None:
    other: Aggregate[int, Unrelated, StrayEvent] = Aggregate(
        name="other",
        initial=0,
        decide=lambda s, c: [],
        evolve=lambda s, e: s,
        events={"StrayEvent": StrayEvent},
        commands=(Unrelated,),
    )
    async with bank(tmp_path / "b.db") as (_, runtime):
        with pytest.raises(ConfigurationError, match="'other' is not registered"):
            runtime.ref(other, "x")


async def test_bad_command_id_and_timeout_are_refused(tmp_path: Path) -> None:
    async with bank(tmp_path / "b.db") as (store, runtime):
        ref = runtime.ref(account, "a")
        with pytest.raises(ValueError, match="command_id"):
            await ref.ask(OpenAccount("ann"), command_id="")
        with pytest.raises(ValueError, match="timeout"):
            await ref.ask(OpenAccount("ann"), timeout=-1)
        assert await store.last_position() == 0


def _with_decide(decide: Callable[[AccountState, Any], Sequence[object]]) -> Aggregate[AccountState, Any, Any]:
    return Aggregate(
        name="account",
        initial=AccountState(),
        decide=decide,
        evolve=account.evolve,
        events=account.events,
        commands=account.commands,
    )


async def test_a_bug_in_decide_reaches_the_caller_and_the_actor_keeps_serving(tmp_path: Path) -> None:
    def buggy(state: AccountState, command: object) -> Sequence[object]:
        if isinstance(command, Credit) and command.amount == 13:
            raise ZeroDivisionError("unlucky")
        return bank_decide(state, command)  # type: ignore[arg-type]

    aggregate = _with_decide(buggy)
    async with SQLiteEventStore.open(tmp_path / "b.db") as store, Runtime(store, [aggregate]) as runtime:
        ref = runtime.ref(aggregate, "a")
        await ref.ask(OpenAccount("ann"))
        with pytest.raises(ZeroDivisionError, match="unlucky"):
            await ref.ask(Credit(13))
        assert (await ref.ask(Credit(14))).version == 2
        assert await store.last_position() == 2


async def test_decide_returning_an_unregistered_event_writes_nothing(tmp_path: Path) -> None:
    aggregate = _with_decide(lambda state, command: [StrayEvent()])
    async with SQLiteEventStore.open(tmp_path / "b.db") as store, Runtime(store, [aggregate]) as runtime:
        with pytest.raises(
            InvalidDecisionError, match=r"^account\.decide returned .* for OpenAccount: StrayEvent is not a"
        ):
            await runtime.ref(aggregate, "a").ask(OpenAccount("ann"))
        assert await store.last_position() == 0


def _raw_insert(db: Path, type_name: str, data: bytes, metadata: bytes = b'["e1"]') -> None:
    """Write a row the way another (older, buggy) program might have, bypassing actorsrc."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT OR IGNORE INTO streams (key, name, version) VALUES (1, 'account-bad', 0)")
        version = conn.execute("SELECT version + 1 FROM streams WHERE key = 1").fetchone()[0]
        conn.execute("UPDATE streams SET version = ? WHERE key = 1", (version,))
        conn.execute(
            "INSERT INTO events (stream_key, version, type, schema_version, data, metadata, recorded_at, slice)"
            f" VALUES (1, ?, ?, 1, ?, ?, 0, {slice_of('account-bad')})",
            (version, type_name, data, metadata),
        )
    conn.close()


@pytest.mark.parametrize(
    ("type_name", "data", "metadata", "cause", "message"),
    [
        (
            "AccountVanished",
            b"{}",
            b'["e1"]',
            UnknownEventTypeError,
            r"'account-bad' version 2 holds event type 'AccountVanished'",
        ),
        (
            "AccountCredited",
            b"\xff\xfe not json",
            b'["e1"]',
            EventDecodeError,
            r"'account-bad' version 2 \(AccountCredited\) does not decode",
        ),
        (
            "AccountCredited",
            b'{"amount": "ten"}',
            b'["e1"]',
            EventDecodeError,
            r"'account-bad' version 2 \(AccountCredited\) does not decode: Expected `int`",
        ),
    ],
)
async def test_unreadable_stored_events_give_a_typed_error_naming_stream_version_type(
    tmp_path: Path, type_name: str, data: bytes, metadata: bytes, cause: type[Exception], message: str
) -> None:
    db = tmp_path / "b.db"
    async with bank(db) as (store, runtime):
        await runtime.ref(account, "bad").ask(OpenAccount("ann"))
    _raw_insert(db, type_name, data, metadata)
    async with bank(db) as (store, runtime):
        ref = runtime.ref(account, "bad")
        for _ in range(2):  # the actor stays usable: the error repeats instead of crashing anything
            with pytest.raises(RecoveryError, match="account-bad") as caught:
                await ref.ask(Credit(1))
            assert isinstance(caught.value.__cause__, cause)
            assert re.search(message, str(caught.value.__cause__))
        assert await store.last_position() == 2
        assert (await runtime.ref(account, "good").ask(OpenAccount("bob"))).version == 1


async def test_corrupted_metadata_is_a_typed_error_on_the_reads_that_need_it(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    async with bank(db) as (_, runtime):
        await runtime.ref(account, "bad").ask(OpenAccount("ann"))
    _raw_insert(db, "AccountCredited", b'{"amount": 1}', b"garbage")
    async with bank(db) as (store, runtime):
        message = r"'account-bad' version 2 at position 2 \(AccountCredited\) does not decode: metadata"
        with pytest.raises(EventDecodeError, match=message):
            await store.read_stream("account-bad")
        with pytest.raises(EventDecodeError, match=message) as caught:
            await store.read_all()
        assert caught.value.position == 2
        # Replay needs only the payload, which is intact: the account still works.
        assert (await runtime.ref(account, "bad").ask(Credit(1))).version == 3


async def test_a_command_class_instead_of_an_instance_is_explained(tmp_path: Path) -> None:
    async with bank(tmp_path / "b.db") as (_, runtime):
        with pytest.raises(
            UnknownCommandError, match=r"got the class Credit; pass an instance, e\.g\. Credit\(\.\.\.\)"
        ):
            await runtime.ref(account, "a").ask(Credit)  # type: ignore[arg-type]
