"""A store written before slices existed (SQLite schema 4, PostgreSQL schema 1) is migrated on open: each
old event gets its stream's slice, sliced reads find them, and fences work."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import msgspec
import pytest

from actorsrc.errors import FencedAppendError
from actorsrc.hashing import slice_of
from actorsrc.records import Metadata
from actorsrc.store import postgres_schema, sqlite_schema
from actorsrc.store.base import EventStore, FencingStore
from actorsrc.store.postgres import PostgresEventStore
from actorsrc.store.sqlite import SQLiteEventStore
from actorsrc.testing.store_contract import new_event
from tests.postgres_support import fresh_schema, require_postgres

_STREAMS = [f"old-{i}" for i in range(30)]
_METADATA = msgspec.json.encode(Metadata("e"))
_OLD_SQLITE = [  # what schema 4 created (events without a slice; no fences)
    "CREATE TABLE streams (key INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, version INTEGER NOT NULL)",
    "CREATE TABLE events (position INTEGER PRIMARY KEY, stream_key INTEGER NOT NULL, version INTEGER NOT NULL,"
    " type TEXT NOT NULL, schema_version INTEGER NOT NULL, data BLOB NOT NULL, metadata BLOB NOT NULL,"
    " recorded_at INTEGER NOT NULL)",
    "CREATE UNIQUE INDEX events_by_stream ON events (stream_key, version)",
    "CREATE TABLE snapshots (stream_id TEXT NOT NULL, version INTEGER NOT NULL, position INTEGER NOT NULL,"
    " schema_version INTEGER NOT NULL, data BLOB NOT NULL, taken_at INTEGER NOT NULL,"
    " PRIMARY KEY (stream_id, version)) WITHOUT ROWID",
    "CREATE TABLE command_ids (stream_key INTEGER NOT NULL, command_id TEXT NOT NULL,"
    " first_version INTEGER NOT NULL, last_version INTEGER NOT NULL, PRIMARY KEY (stream_key, command_id))"
    " WITHOUT ROWID",
]


def _old_rows() -> tuple[list[tuple[int, str, int]], list[tuple[int, int, int, str, int, bytes, bytes, int]]]:
    """Streams (key, name, version) and events: two rounds over every stream, interleaved."""
    events = []
    position = 0
    for round_ in (1, 2):
        for key, _name in enumerate(_STREAMS, start=1):
            position += 1
            events.append((position, key, round_, "Old", 1, b"{}", _METADATA, 1_700_000_000_000_000))
    return [(key, name, 2) for key, name in enumerate(_STREAMS, start=1)], events


async def _check_migrated(store: EventStore) -> None:
    everything = await store.read_all(0, 1000)
    assert len(everything) == 2 * len(_STREAMS)
    for low, high in [(0, 512), (512, 1024), (slice_of("old-7"), slice_of("old-7") + 1)]:
        wanted = [r for r in everything if low <= slice_of(r.stream_id) < high]
        assert wanted
        assert await store.read_all(0, 1000, slices=(low, high)) == wanted
    assert isinstance(store, FencingStore)
    await store.raise_fence(0, 2)
    with pytest.raises(FencedAppendError):
        await store.append("old-1", [new_event()], 2, fence=(0, 1))
    await store.append("old-1", [new_event("new")], 2, fence=(0, 2))
    (new,) = await store.read_all(len(everything), slices=(slice_of("old-1"), slice_of("old-1") + 1))
    assert new.data == b'{"p":"new"}'


async def test_an_sqlite_store_of_schema_4_gets_slices_and_fences(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    streams, events = _old_rows()
    conn = sqlite3.connect(path)
    try:
        for statement in _OLD_SQLITE:
            conn.execute(statement)
        conn.executemany("INSERT INTO streams VALUES (?, ?, ?)", streams)
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", events)
        conn.execute(f"PRAGMA application_id = {sqlite_schema.APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 4")
        conn.commit()
    finally:
        conn.close()
    async with SQLiteEventStore.open(path) as store:
        await _check_migrated(store)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_schema.SCHEMA_VERSION
        slices = dict(conn.execute("SELECT s.name, e.slice FROM events e JOIN streams s ON s.key = e.stream_key"))
        assert slices == {name: slice_of(name) for name in _STREAMS}
        plan = " ".join(
            str(row)
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT position FROM events WHERE slice >= 3 AND slice < 4 AND position > 0"
            )
        )
        assert "events_by_slice" in plan
    finally:
        conn.close()


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async for name in fresh_schema():
        yield name


async def test_a_postgres_schema_of_version_1_gets_slices_and_fences(schema: str) -> None:
    dsn = require_postgres()
    streams, events = _old_rows()
    s = schema
    conn = await asyncpg.connect(dsn)
    try:
        for statement in [
            f'CREATE SCHEMA "{s}"',
            f'CREATE TABLE "{s}".schema_version (version INT NOT NULL)',
            f'INSERT INTO "{s}".schema_version VALUES (1)',
            f'CREATE TABLE "{s}".streams (key BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE,'
            " version BIGINT NOT NULL)",
            f'CREATE TABLE "{s}".events (position BIGINT PRIMARY KEY, stream_key BIGINT NOT NULL,'
            " version BIGINT NOT NULL, type TEXT NOT NULL, schema_version INT NOT NULL, data BYTEA NOT NULL,"
            " metadata BYTEA NOT NULL, recorded_at BIGINT NOT NULL)",
            f'CREATE UNIQUE INDEX events_by_stream ON "{s}".events (stream_key, version)',
            f'CREATE TABLE "{s}".log_head (id INT PRIMARY KEY CHECK (id = 1), position BIGINT NOT NULL)',
            f'INSERT INTO "{s}".log_head VALUES (1, {len(events)})',
        ]:
            await conn.execute(statement)
        await conn.executemany(f'INSERT INTO "{s}".streams VALUES ($1, $2, $3)', streams)
        await conn.execute(f"SELECT setval(pg_get_serial_sequence('\"{s}\".streams', 'key'), {len(streams)})")
        await conn.executemany(f'INSERT INTO "{s}".events VALUES ($1, $2, $3, $4, $5, $6, $7, $8)', events)
    finally:
        await conn.close()
    async with PostgresEventStore.open(dsn, schema=schema) as store:
        await _check_migrated(store)
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval(f'SELECT max(version) FROM "{s}".schema_version') == postgres_schema.SCHEMA_VERSION
        rows = await conn.fetch(
            f'SELECT s.name, e.slice FROM "{s}".events e JOIN "{s}".streams s ON s.key = e.stream_key'
        )
        assert {name: slice_ for name, slice_ in rows} == {name: slice_of(name) for name in _STREAMS}
        nullable = await conn.fetchval(
            "SELECT is_nullable FROM information_schema.columns"
            " WHERE table_schema = $1 AND table_name = 'events' AND column_name = 'slice'",
            s,
        )
        assert nullable == "NO"
    finally:
        await conn.close()
