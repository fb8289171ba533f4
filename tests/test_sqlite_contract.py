from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from actorsrc.sql.sqlite_thread import run_on_connection_thread
from actorsrc.store.base import EventStore
from actorsrc.store.sqlite import SQLiteEventStore
from actorsrc.testing import EventStoreContract, StoreFactory

_COLUMNS = ("metadata", "recorded_at")


def _update(conn: sqlite3.Connection, position: int, column: str, value: bytes | int) -> None:
    assert column in _COLUMNS
    conn.execute(f"UPDATE events SET {column} = ? WHERE position = ?", (value, position))


class TestSQLiteEventStoreContract(EventStoreContract):
    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> StoreFactory:
        return lambda: SQLiteEventStore.open(tmp_path / "events.db")

    async def corrupt_row(self, store: EventStore, position: int, column: str, value: bytes | int) -> None:
        assert isinstance(store, SQLiteEventStore)
        conn = sqlite3.connect(store.path)  # another program writing to the file
        try:
            with conn:
                _update(conn, position, column, value)
        finally:
            conn.close()


class TestInMemorySQLiteEventStoreContract(EventStoreContract):
    reopens_same_database = False

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        return lambda: SQLiteEventStore.open(":memory:")

    async def corrupt_row(self, store: EventStore, position: int, column: str, value: bytes | int) -> None:
        # The database lives in the store's one connection: write through it (test-only private access).
        assert isinstance(store, SQLiteEventStore)
        assert store._writer is not None
        await run_on_connection_thread(store._writer, _update, position, column, value)
