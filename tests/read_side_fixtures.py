"""Projections used by the read-side tests and the projection crash worker, and a read side to run them on."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from actorsrc import EventEnvelope, Projection, Runtime, SQLiteEventStore, SQLiteReadModel
from examples.bank import AccountCredited, AccountDebited, AccountOpened, account


def _setup_balances(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, balance INTEGER NOT NULL)")
    db.execute("CREATE TABLE IF NOT EXISTS applied (position INTEGER PRIMARY KEY)")  # a repeat would fail here


def _reset_balances(db: sqlite3.Connection) -> None:
    db.execute("DROP TABLE IF EXISTS balances")
    db.execute("DROP TABLE IF EXISTS applied")


def _handle_balance(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
    db.execute("INSERT INTO applied (position) VALUES (?)", (envelope.position,))
    match envelope.event:
        case AccountOpened():
            db.execute("INSERT INTO balances (account, balance) VALUES (?, 0)", (envelope.stream_id,))
        case AccountCredited(amount):
            db.execute("UPDATE balances SET balance = balance + ? WHERE account = ?", (amount, envelope.stream_id))
        case AccountDebited(amount):
            db.execute("UPDATE balances SET balance = balance - ? WHERE account = ?", (amount, envelope.stream_id))


balances = Projection(
    name="balances", handle=_handle_balance, setup=_setup_balances, reset=_reset_balances, aggregates=[account]
)


async def read_balances(read_model: Any) -> dict[str, int]:
    rows = await read_model.query("SELECT account, balance FROM balances")
    return {name: balance for name, balance in rows}


@asynccontextmanager
async def read_side(
    tmp_path: Path, *handlers: Any, read_model_type: type[SQLiteReadModel] = SQLiteReadModel, **options: Any
) -> AsyncIterator[tuple[SQLiteEventStore, SQLiteReadModel, Runtime]]:
    """A file store, a file read model (of `read_model_type`) and a runtime with `handlers`."""
    async with (
        SQLiteEventStore.open(tmp_path / "events.db") as store,
        read_model_type.open(tmp_path / "read.db") as read_model,
        Runtime(store, [account], handlers=handlers, read_model=read_model, **options) as runtime,
    ):
        yield store, read_model, runtime
