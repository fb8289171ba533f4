"""The SQLite read model's own tables (checkpoints, parked events, process-manager state) and its
connection's settings."""

from __future__ import annotations

import sqlite3

READ_MODEL_DDL = """
CREATE TABLE IF NOT EXISTS actorsrc_checkpoints (
    name       TEXT PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS actorsrc_parked (
    id        INTEGER PRIMARY KEY,
    handler   TEXT    NOT NULL,
    position  INTEGER NOT NULL,
    stream_id TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    type      TEXT    NOT NULL,
    error     TEXT    NOT NULL,
    attempts  INTEGER NOT NULL,
    parked_at INTEGER NOT NULL,
    UNIQUE (handler, position)
);
CREATE TABLE IF NOT EXISTS actorsrc_process_settled (
    manager    TEXT NOT NULL,
    command_id TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    PRIMARY KEY (manager, command_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS actorsrc_process_state (
    manager TEXT NOT NULL,
    key     TEXT NOT NULL,
    state   BLOB NOT NULL,
    PRIMARY KEY (manager, key)
) WITHOUT ROWID;
"""


def configure(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    # The checkpoint commits with the projection's writes, so a lost tail after a power cut is
    # simply replayed: exactly-once holds without an fsync per batch.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(READ_MODEL_DDL)


class ReadModelConnection(sqlite3.Connection):
    """The read model's connection: `executescript` keeps to the open transaction.

    sqlite3's `executescript` COMMITs any open transaction first, which would commit half a projection
    batch (and its handler would then run outside the transaction that moves the checkpoint). Inside a
    transaction the script runs statement by statement instead; outside one, as sqlite3 does.
    """

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        if not self.in_transaction:
            return super().executescript(sql_script)
        cursor = self.cursor()
        statement = ""
        for char in sql_script:
            statement += char
            if char == ";" and sqlite3.complete_statement(statement):
                cursor.execute(statement)
                statement = ""
        if statement.strip():
            cursor.execute(statement)
        return cursor
