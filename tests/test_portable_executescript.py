"""`db.executescript` inside a projection keeps to the transaction that moves the checkpoint, on every
read model (sqlite3's own executescript would COMMIT the open transaction first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actorsrc import EventEnvelope, Projection, Runtime, SQLiteEventStore
from examples.bank import AccountCredited, Credit, OpenAccount, account
from tests.test_portable_projection import READ_MODELS


def setup(db: Any) -> None:
    db.executescript(
        "CREATE TABLE IF NOT EXISTS script_credits (position BIGINT PRIMARY KEY, amount BIGINT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS script_notes (position BIGINT PRIMARY KEY, note TEXT NOT NULL);"
    )


def reset(db: Any) -> None:
    db.executescript("DROP TABLE IF EXISTS script_credits; DROP TABLE IF EXISTS script_notes;")


def handle(db: Any, envelope: EventEnvelope[Any]) -> None:
    if isinstance(envelope.event, AccountCredited):
        db.execute("INSERT INTO script_credits VALUES (?, ?)", (envelope.position, envelope.event.amount))
        # A literal ';' inside a string must not split the script.
        db.executescript(f"INSERT INTO script_notes VALUES ({envelope.position}, 'credited; noted');")


scripted = Projection(name="scripted", handle=handle, setup=setup, reset=reset, aggregates=[account])


@pytest.mark.parametrize("kind", list(READ_MODELS))
async def test_executescript_in_setup_and_handle_keeps_to_the_transaction(kind: str, tmp_path: Path) -> None:
    async with (
        READ_MODELS[kind](tmp_path) as read_model,
        SQLiteEventStore.open(tmp_path / "events.db") as store,
        Runtime(store, [account], handlers=[scripted], read_model=read_model) as runtime,
    ):
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"))
        for amount in (1, 2, 3):
            await ref.ask(Credit(amount))
        last = await store.last_position()
        await runtime.wait_for(scripted, last, timeout=10)
        assert await runtime.parked() == []
        credits = await read_model.query("SELECT amount FROM script_credits ORDER BY position", ())
        notes = await read_model.query("SELECT note FROM script_notes ORDER BY position", ())
        assert [row[0] for row in credits] == [1, 2, 3]
        assert [row[0] for row in notes] == ["credited; noted"] * 3
        await runtime.rebuild(scripted)  # reset and setup run in the read model's transaction too
        again = await read_model.query("SELECT amount FROM script_credits ORDER BY position", ())
        assert again == credits
        assert await read_model.checkpoint("scripted") == last
