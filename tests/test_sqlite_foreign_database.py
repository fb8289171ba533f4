"""A database that is not an actorsrc store is refused and left byte for byte as it was; ours are recognised."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from actorsrc.errors import ForeignDatabaseError, StoreError
from actorsrc.store import sqlite_schema
from actorsrc.store.base import NO_STREAM
from actorsrc.store.sqlite import SQLiteEventStore
from actorsrc.testing.store_contract import new_event


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pragmas(path: Path) -> tuple[int, int, str, list[str]]:
    conn = sqlite3.connect(path)
    try:
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        tables = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    finally:
        conn.close()
    return application_id, version, mode, tables


def _make(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


async def _refused(path: Path, match: str) -> None:
    before = _digest(path)
    siblings = sorted(p.name for p in path.parent.iterdir())
    with pytest.raises(ForeignDatabaseError, match=match) as caught:
        async with SQLiteEventStore.open(path):
            pass
    assert isinstance(caught.value, StoreError)
    assert "it was left untouched" in str(caught.value)
    assert _digest(path) == before
    assert sorted(p.name for p in path.parent.iterdir()) == siblings  # no -wal, -shm or -journal left


async def test_an_application_database_with_its_own_events_table_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    _make(
        path,
        "CREATE TABLE events (id INTEGER PRIMARY KEY, title TEXT, starts_at TEXT)",
        "INSERT INTO events (title, starts_at) VALUES ('launch', '2024-05-01')",
    )
    await _refused(path, r"'.*app\.db' is not an actorsrc store: it holds tables 'events'")
    assert _pragmas(path) == (0, 0, "delete", ["events"])


async def test_a_database_marked_by_another_application_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    _make(path, "PRAGMA application_id = 1234", "CREATE TABLE streams (key INTEGER PRIMARY KEY)")
    await _refused(path, r"application id 0x4d2")


async def test_an_unmarked_database_with_only_an_index_or_view_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.db"
    _make(path, "CREATE VIEW answer AS SELECT 42")
    await _refused(path, "no tables but other schema objects")


async def test_a_file_that_is_not_a_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("shopping list: eggs, flour, milk, and a few more things to fill a page header\n" * 10)
    await _refused(path, "it is not an SQLite database")


async def test_an_existing_empty_file_becomes_a_marked_store(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    path.touch()
    async with SQLiteEventStore.open(path) as store:
        await store.append("s", [new_event()], NO_STREAM)
    application_id, version, mode, tables = _pragmas(path)
    assert (application_id, version, mode) == (sqlite_schema.APPLICATION_ID, sqlite_schema.SCHEMA_VERSION, "wal")
    assert tables == ["command_ids", "events", "fences", "snapshots", "streams"]


@pytest.mark.parametrize("old_version", [1, 2, 3])
async def test_a_store_from_before_the_marker_opens_and_is_stamped(tmp_path: Path, old_version: int) -> None:
    path = tmp_path / "events.db"
    async with SQLiteEventStore.open(path) as store:
        await store.append("s", [new_event("old")], NO_STREAM)
    # What an older actorsrc left: no application id, its user_version, and only the tables it knew.
    dropped = {1: ["snapshots", "command_ids"], 2: ["command_ids"], 3: []}[old_version]
    _make(
        path,
        "PRAGMA application_id = 0",
        f"PRAGMA user_version = {old_version}",
        *(f"DROP TABLE {name}" for name in dropped),
    )
    async with SQLiteEventStore.open(path) as store:
        assert [r.data for r in await store.read_stream("s")] == [b'{"p":"old"}']
        await store.append("s", [new_event("new", command_id="c-1")], 1)
        assert await store.find_commands("s", ["c-1"]) == {"c-1": (2, 2)}
    application_id, version, _, tables = _pragmas(path)
    assert (application_id, version) == (sqlite_schema.APPLICATION_ID, sqlite_schema.SCHEMA_VERSION)
    assert tables == ["command_ids", "events", "fences", "snapshots", "streams"]


async def test_an_unmarked_database_whose_tables_only_share_our_names_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lookalike.db"
    _make(
        path,
        "PRAGMA user_version = 3",
        "CREATE TABLE streams (key INTEGER PRIMARY KEY, name TEXT, version INTEGER)",
        "CREATE TABLE events (id INTEGER PRIMARY KEY, payload TEXT)",
    )
    await _refused(path, "tables 'events', 'streams' .*user_version 3")


async def test_a_store_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with SQLiteEventStore.open(path):
        pass
    _make(path, f"PRAGMA user_version = {sqlite_schema.SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this actorsrc understands"):
        async with SQLiteEventStore.open(path):
            pass


async def test_a_failed_schema_creation_leaves_nothing_half_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.db"
    broken = [*sqlite_schema.STATEMENTS[:2], "CREATE TABLE broken (", *sqlite_schema.STATEMENTS[2:]]
    monkeypatch.setattr(sqlite_schema, "STATEMENTS", broken)
    with pytest.raises(StoreError, match="cannot open SQLite store"):
        async with SQLiteEventStore.open(path):
            pass
    assert _pragmas(path) == (0, 0, "delete", [])
    monkeypatch.undo()
    async with SQLiteEventStore.open(path) as store:  # and the next open creates it whole
        await store.append("s", [new_event()], NO_STREAM)
    assert _pragmas(path)[:2] == (sqlite_schema.APPLICATION_ID, sqlite_schema.SCHEMA_VERSION)
