"""The SQLite schema, chosen for insert speed.

Streams get small integer keys: the per-stream index is then (int, int) instead of
(text, int), which keeps index pages dense and the write amplification of a batch touching
many streams low. The global position is the rowid, so it is gapless and in commit order
(SQLite has one writer at a time and a rolled-back rowid is reused).
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 3

DDL = """
CREATE TABLE IF NOT EXISTS streams (
    key     INTEGER PRIMARY KEY,
    name    TEXT    NOT NULL UNIQUE,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,
    stream_key     INTEGER NOT NULL,
    version        INTEGER NOT NULL,
    type           TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    data           BLOB    NOT NULL,
    metadata       BLOB    NOT NULL,
    recorded_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_stream ON events (stream_key, version);
CREATE TABLE IF NOT EXISTS snapshots (
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    position       INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    data           BLOB    NOT NULL,
    taken_at       INTEGER NOT NULL,
    PRIMARY KEY (stream_id, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS command_ids (
    stream_key    INTEGER NOT NULL,
    command_id    TEXT    NOT NULL,
    first_version INTEGER NOT NULL,
    last_version  INTEGER NOT NULL,
    PRIMARY KEY (stream_key, command_id)
) WITHOUT ROWID;
"""


def configure(conn: sqlite3.Connection, *, durable: bool) -> None:
    """Pragmas for every connection: WAL, and fsync on every commit when `durable`."""
    conn.execute("PRAGMA busy_timeout = 10000")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"could not switch the database to WAL mode (got {mode!r})")
    # FULL syncs the WAL on every commit: an acknowledged append survives a power cut.
    # NORMAL survives a process crash but may lose the last commits on power loss.
    conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")


def migrate(conn: sqlite3.Connection) -> None:
    """Create or upgrade the schema; safe to run on every open."""
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"the database schema is version {found}, newer than this actorsrc understands "
            f"({SCHEMA_VERSION}); upgrade actorsrc"
        )
    conn.executescript(DDL)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
