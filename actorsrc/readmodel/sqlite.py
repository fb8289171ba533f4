"""An SQLite read-model database: projection tables, handler checkpoints, parked events and
process-manager state, all in one file so a handler's writes and its checkpoint share a transaction.

Handler code runs on this database's connection thread, a whole batch per hop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from os import PathLike
from typing import TYPE_CHECKING, Any, Self, TypeVar

import aiosqlite

from actorsrc.errors import StoreClosedError, StoreError
from actorsrc.readmodel.base import ParkedEvent
from actorsrc.store.rows import micros_to_datetime, now_micros
from actorsrc.store.sqlite_thread import run_on_connection_thread

T = TypeVar("T")

if TYPE_CHECKING:
    from actorsrc.projection import EventEnvelope, Projection

_DDL = """
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

Work = Callable[[sqlite3.Connection], T]


def _set_checkpoint(conn: sqlite3.Connection, name: str, position: int) -> None:
    conn.execute(
        "INSERT INTO actorsrc_checkpoints (name, position, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        (name, position, now_micros()),
    )


def _in_transaction(conn: sqlite3.Connection, work: Work[T]) -> T:
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _parked(row: Sequence[Any]) -> ParkedEvent:
    id_, handler, position, stream_id, version, type_name, error, attempts, parked_at = row
    return ParkedEvent(
        id_, handler, position, stream_id, version, type_name, error, attempts, micros_to_datetime(parked_at)
    )


class SQLiteReadModel:
    """Open with ``async with SQLiteReadModel.open(path)``; query it with `query`."""

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = str(path)
        self._conn: aiosqlite.Connection | None = None

    @classmethod
    @asynccontextmanager
    async def open(cls, path: str | PathLike[str]) -> AsyncIterator[Self]:
        model = cls(path)
        try:
            model._conn = await aiosqlite.connect(model.path, isolation_level=None)
            await run_on_connection_thread(model._conn, _configure)
        except sqlite3.Error as exc:
            if model._conn is not None:
                await model._conn.close()
            raise StoreError(f"cannot open SQLite read model {model.path!r}: {exc}") from exc
        try:
            yield model
        finally:
            conn, model._conn = model._conn, None
            await conn.close()

    async def run(self, work: Work[T]) -> T:
        """Run `work(connection)` on the connection thread, outside any transaction."""
        if self._conn is None:
            raise StoreClosedError(f"SQLite read model {self.path!r} is not open")
        return await run_on_connection_thread(self._conn, work)

    async def transaction(self, work: Work[T], *, checkpoint: tuple[str, int] | None = None) -> T:
        """Run `work` in one transaction, moving the handler's checkpoint in the same commit."""

        def job(conn: sqlite3.Connection) -> T:
            result = work(conn)
            if checkpoint is not None:
                _set_checkpoint(conn, *checkpoint)
            return result

        return await self.run(lambda conn: _in_transaction(conn, job))

    async def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of a read query against the read model."""
        return await self.run(lambda conn: conn.execute(sql, params).fetchall())

    # -- checkpoints and parked events -------------------------------------------------------------

    async def checkpoint(self, name: str) -> int:
        rows = await self.query("SELECT position FROM actorsrc_checkpoints WHERE name = ?", (name,))
        return int(rows[0][0]) if rows else 0

    async def park(
        self, name: str, position: int, stream_id: str, version: int, type_name: str, error: str, attempts: int
    ) -> None:
        """Record a failed event and move the checkpoint past it, atomically."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO actorsrc_parked"
                " (handler, position, stream_id, version, type, error, attempts, parked_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, position, stream_id, version, type_name, error[:4000], attempts, now_micros()),
            )

        await self.transaction(work, checkpoint=(name, position))

    async def parked(self, name: str | None = None) -> list[ParkedEvent]:
        where, params = ("WHERE handler = ?", (name,)) if name is not None else ("", ())
        rows = await self.query(
            "SELECT id, handler, position, stream_id, version, type, error, attempts, parked_at"
            f" FROM actorsrc_parked {where} ORDER BY handler, position",
            params,
        )
        return [_parked(row) for row in rows]

    async def parked_event(self, parked_id: int) -> ParkedEvent | None:
        rows = await self.query(
            "SELECT id, handler, position, stream_id, version, type, error, attempts, parked_at"
            " FROM actorsrc_parked WHERE id = ?",
            (parked_id,),
        )
        return _parked(rows[0]) if rows else None

    async def discard_parked(self, parked_id: int) -> None:
        await self.transaction(lambda conn: delete_parked(conn, parked_id))

    async def setup(self, projection: Projection) -> None:
        await self.run(projection.setup)

    async def project(
        self,
        projection: Projection,
        envelopes: Sequence[EventEnvelope[Any]],
        checkpoint: tuple[str, int] | None,
        unpark: int | None = None,
    ) -> None:
        handle = projection.handle

        def work(conn: sqlite3.Connection) -> None:
            for envelope in envelopes:
                handle(conn, envelope)
            if unpark is not None:
                delete_parked(conn, unpark)

        await self.transaction(work, checkpoint=checkpoint)

    async def load_process_state(self, manager: str, key: str) -> bytes | None:
        return await self.run(lambda conn: load_process_state(conn, manager, key))

    async def settled_commands(self, manager: str, command_ids: list[str]) -> set[str]:
        return await self.run(lambda conn: settled_commands(conn, manager, command_ids))

    async def save_process(
        self,
        manager: str,
        states: dict[str, bytes],
        settled: dict[str, str],
        checkpoint: tuple[str, int] | None,
        unpark: int | None = None,
    ) -> None:
        def work(conn: sqlite3.Connection) -> None:
            for key, data in states.items():
                save_process_state(conn, manager, key, data)
            if settled:
                record_settled(conn, manager, settled)
            if unpark is not None:
                delete_parked(conn, unpark)

        await self.transaction(work, checkpoint=checkpoint)

    async def reset(self, name: str, projection: Projection | None) -> None:
        """Forget a handler's progress, parked events and state; a projection's tables start over."""

        def job(conn: sqlite3.Connection) -> None:
            if projection is not None:
                projection.reset(conn)
                projection.setup(conn)
            for table, column in (
                ("actorsrc_checkpoints", "name"),
                ("actorsrc_parked", "handler"),
                ("actorsrc_process_state", "manager"),
            ):
                conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))

        await self.transaction(job)


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    # The checkpoint commits with the projection's writes, so a lost tail after a power cut is
    # simply replayed: exactly-once holds without an fsync per batch.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(_DDL)


def delete_parked(conn: sqlite3.Connection, parked_id: int) -> None:
    conn.execute("DELETE FROM actorsrc_parked WHERE id = ?", (parked_id,))


def load_process_state(conn: sqlite3.Connection, manager: str, key: str) -> bytes | None:
    row = conn.execute(
        "SELECT state FROM actorsrc_process_state WHERE manager = ? AND key = ?", (manager, key)
    ).fetchone()
    return bytes(row[0]) if row else None


def save_process_state(conn: sqlite3.Connection, manager: str, key: str, state: bytes) -> None:
    conn.execute(
        "INSERT INTO actorsrc_process_state (manager, key, state) VALUES (?, ?, ?)"
        " ON CONFLICT (manager, key) DO UPDATE SET state = excluded.state",
        (manager, key, state),
    )


def settled_commands(conn: sqlite3.Connection, manager: str, command_ids: list[str]) -> set[str]:
    """Which of `command_ids` were rejected or wrote nothing before: they must not be sent again."""
    found: set[str] = set()
    for start in range(0, len(command_ids), 500):
        chunk = command_ids[start : start + 500]
        rows = conn.execute(
            "SELECT command_id FROM actorsrc_process_settled WHERE manager = ?"
            f" AND command_id IN ({','.join('?' * len(chunk))})",
            (manager, *chunk),
        )
        found.update(row[0] for row in rows)
    return found


def record_settled(conn: sqlite3.Connection, manager: str, outcomes: dict[str, str]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO actorsrc_process_settled (manager, command_id, outcome) VALUES (?, ?, ?)",
        [(manager, command_id, outcome) for command_id, outcome in outcomes.items()],
    )
