"""An SQLite read-model database: projection tables, handler checkpoints, parked events and
process-manager state, all in one file so a handler's writes and its checkpoint share a transaction.

Handler code (the portable form: plain functions over a `sqlite3.Connection`, see
`actorsrc.readmodel.portable`) runs on this database's connection thread, a whole batch per hop. The file is created
readable by its owner only; ":memory:" gives a private in-memory read model (for tests and scratch
replays). Failures of the database itself raise `ReadModelError`, whether they surface in our own
statements (BEGIN, COMMIT, checkpoints) or in a handler's (a full disk, a lock, an I/O error); any
other exception from a handler's code is its own and is raised as itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from os import PathLike
from typing import TYPE_CHECKING, Any, Self, TypeVar

from actorsrc.errors import ConfigurationError, ReadModelError, StoreClosedError, StoreError
from actorsrc.readmodel.base import Checkpoint, ParkedEvent, handler_code, partition_prefix
from actorsrc.readmodel.parked_rows import PARKED_COLUMNS, parked_from_row
from actorsrc.readmodel.portable import is_async
from actorsrc.readmodel.sqlite_connection import ConnectionThread
from actorsrc.readmodel.sqlite_failures import is_database_failure
from actorsrc.readmodel.sqlite_rows import (
    claim_checkpoint,
    delete_parked,
    load_process_state,
    move_checkpoint,
    read_checkpoint,
    record_settled,
    save_process_state,
    settled_commands,
)
from actorsrc.readmodel.sqlite_schema import ReadModelConnection, configure
from actorsrc.sql.encoding import now_micros
from actorsrc.sql.private_files import ensure_private_file

T = TypeVar("T")

if TYPE_CHECKING:
    from actorsrc.projection import EventEnvelope, Projection

Work = Callable[[sqlite3.Connection], T]


class _Abandoned(Exception):
    """The caller of a transaction gave up on it (timed out or cancelled): it rolls back."""


class SQLiteReadModel:
    """Open with ``async with SQLiteReadModel.open(path)`` (a file, or ":memory:"); query it with `query`.

    Closing waits up to `close_timeout` seconds for work in flight; a handler stuck in Python code on the
    connection's thread is abandoned after that (see `sqlite_connection`), so closing never hangs. A handler
    past its timeout waits as long for a COMMIT it reached in time, then gets `ReadModelError`.
    """

    def __init__(self, path: str | PathLike[str], *, close_timeout: float = 10.0) -> None:
        self.path = str(path)
        self.close_timeout = close_timeout
        self._thread: ConnectionThread | None = None

    @classmethod
    @asynccontextmanager
    async def open(cls, path: str | PathLike[str], *, close_timeout: float = 10.0) -> AsyncIterator[Self]:
        model = cls(path, close_timeout=close_timeout)
        thread = ConnectionThread(f"SQLite read model {model.path!r}", commit_wait=close_timeout)
        try:
            ensure_private_file(model.path)
            await thread.open(model._connect)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open SQLite read model {model.path!r}: {exc}") from exc
        model._thread = thread
        try:
            yield model
        finally:
            model._thread = None
            await thread.close(model.close_timeout)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, factory=ReadModelConnection)
        try:
            configure(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _require_thread(self) -> ConnectionThread:
        if self._thread is None:
            raise StoreClosedError(f"SQLite read model {self.path!r} is not open")
        return self._thread

    @contextmanager
    def _ours(self, what: str) -> Iterator[None]:
        """Statements of the read model itself: any database error is the read model's failure."""
        try:
            yield
        except sqlite3.Error as exc:
            raise ReadModelError(f"SQLite read model {self.path!r}: {what} failed: {exc}") from exc

    @contextmanager
    def _theirs(self, whose: str) -> Iterator[None]:
        """User code: its own errors go through as themselves, the database's become `ReadModelError`."""
        try:
            yield
        except sqlite3.Error as exc:
            if is_database_failure(exc):
                raise ReadModelError(f"SQLite read model {self.path!r}: the database failed in {whose}: {exc}") from exc
            raise

    def _in_transaction(
        self,
        conn: sqlite3.Connection,
        work: Work[T],
        whose: str,
        checkpoint: Checkpoint | None = None,
        unpark: int | None = None,
    ) -> T:
        thread = self._require_thread()
        with self._ours("BEGIN"):
            if conn.in_transaction:  # a ROLLBACK that failed earlier left it open
                conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
        try:
            thread.handler_started()
            with self._theirs(whose):
                result = work(conn)
            with self._ours("moving the checkpoint"):
                if checkpoint is not None:
                    move_checkpoint(conn, checkpoint)
                if unpark is not None:
                    delete_parked(conn, unpark)
            if not thread.may_commit():
                raise _Abandoned
            with self._ours("COMMIT"):
                conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with suppress(sqlite3.Error):  # the next transaction rolls back first
                    conn.execute("ROLLBACK")
            raise
        return result

    async def _own(self, what: str, work: Work[T]) -> T:
        """Run one of the read model's own reads or writes (not user code) on the connection thread."""

        def job(conn: sqlite3.Connection) -> T:
            with self._ours(what):
                return work(conn)

        return await self._require_thread().call(job, label=what)

    async def run(self, work: Work[T]) -> T:
        """Run `work(connection)` on the connection thread, outside any transaction."""
        return await self._require_thread().call(work, label="run()")

    async def transaction(self, work: Work[T], *, checkpoint: tuple[str, int] | Checkpoint | None = None) -> T:
        """Run `work` in one transaction, moving the handler's checkpoint in the same commit."""
        mark = Checkpoint(*checkpoint) if isinstance(checkpoint, tuple) else checkpoint
        return await self._require_thread().call(
            lambda conn: self._in_transaction(conn, work, "the transaction's work", mark), label="a transaction"
        )

    async def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of a read query against the read model."""
        return await self.run(lambda conn: conn.execute(sql, params).fetchall())

    # -- checkpoints and parked events -------------------------------------------------------------

    async def checkpoint(self, name: str) -> int:
        return await self._own("reading a checkpoint", lambda conn: read_checkpoint(conn, name))

    async def partition_checkpoints(self, handler: str) -> dict[str, int]:
        prefix = partition_prefix(handler)
        sql = "SELECT name, position FROM actorsrc_checkpoints WHERE substr(name, 1, ?) = ?"
        rows = await self._own(
            "reading partition checkpoints", lambda conn: conn.execute(sql, (len(prefix), prefix)).fetchall()
        )
        return {name: int(position) for name, position in rows}

    async def claim_checkpoint(self, name: str, fence: int) -> int:
        def work(conn: sqlite3.Connection) -> int:
            with self._ours("claiming a checkpoint"):
                return claim_checkpoint(conn, name, fence)

        return await self._require_thread().call(
            lambda conn: self._in_transaction(conn, work, "claiming a checkpoint"), label=f"claiming {name!r}"
        )

    async def park(
        self,
        name: str,
        position: int,
        stream_id: str,
        version: int,
        type_name: str,
        error: str,
        attempts: int,
        *,
        after: int | None = None,
        checkpoint: str | None = None,
        fence: int | None = None,
    ) -> None:
        """Record a failed event and move the checkpoint past it, atomically."""

        def work(conn: sqlite3.Connection) -> None:
            with self._ours("parking an event"):
                conn.execute(
                    "INSERT OR REPLACE INTO actorsrc_parked"
                    " (handler, position, stream_id, version, type, error, attempts, parked_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (name, position, stream_id, version, type_name, error[:4000], attempts, now_micros()),
                )

        mark = Checkpoint(checkpoint or name, position, after, fence)
        await self._require_thread().call(
            lambda conn: self._in_transaction(conn, work, "parking", mark), label=f"parking an event of {name!r}"
        )

    async def parked(self, name: str | None = None) -> list[ParkedEvent]:
        where, params = ("WHERE handler = ?", (name,)) if name is not None else ("", ())
        sql = f"SELECT {PARKED_COLUMNS} FROM actorsrc_parked {where} ORDER BY handler, position"
        rows = await self._own("listing parked events", lambda conn: conn.execute(sql, params).fetchall())
        return [parked_from_row(row) for row in rows]

    async def parked_event(self, parked_id: int) -> ParkedEvent | None:
        sql = f"SELECT {PARKED_COLUMNS} FROM actorsrc_parked WHERE id = ?"
        rows = await self._own("reading a parked event", lambda conn: conn.execute(sql, (parked_id,)).fetchall())
        return parked_from_row(rows[0]) if rows else None

    async def discard_parked(self, parked_id: int) -> None:
        await self._require_thread().call(
            lambda conn: self._in_transaction(conn, lambda c: delete_parked(c, parked_id), "discarding"),
            label="discarding a parked event",
        )

    async def setup(self, projection: Projection, *, timeout: float | None = None) -> None:
        thread = self._require_thread()
        whose = handler_code(projection.name, "setup")
        _check_portable(projection)

        def job(conn: sqlite3.Connection) -> None:
            thread.handler_started()
            with self._theirs(whose):
                projection.setup(conn)

        await thread.call(job, label=whose, timeout=timeout)

    async def project(
        self,
        projection: Projection,
        envelopes: Sequence[EventEnvelope[Any]],
        checkpoint: Checkpoint | None,
        unpark: int | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        handle = projection.handle

        def work(conn: sqlite3.Connection) -> None:
            for envelope in envelopes:
                handle(conn, envelope)

        whose = handler_code(projection.name, "handle", envelopes)
        await self._require_thread().call(
            lambda conn: self._in_transaction(conn, work, whose, checkpoint, unpark), label=whose, timeout=timeout
        )

    async def load_process_state(self, manager: str, key: str) -> bytes | None:
        return await self._own("loading process state", lambda conn: load_process_state(conn, manager, key))

    async def settled_commands(self, manager: str, command_ids: list[str]) -> set[str]:
        return await self._own("reading settled commands", lambda conn: settled_commands(conn, manager, command_ids))

    async def save_process(
        self,
        manager: str,
        states: dict[str, bytes],
        settled: dict[str, str],
        checkpoint: Checkpoint | None,
        unpark: int | None = None,
    ) -> None:
        def work(conn: sqlite3.Connection) -> None:
            with self._ours("saving process state"):
                for key, data in states.items():
                    save_process_state(conn, manager, key, data)
                if settled:
                    record_settled(conn, manager, settled)

        await self._require_thread().call(
            lambda conn: self._in_transaction(conn, work, "saving", checkpoint, unpark),
            label=f"saving process manager {manager!r}",
        )

    async def reset(self, name: str, projection: Projection | None) -> None:
        """Forget a handler's progress, parked events and state; a projection's tables start over."""

        def job(conn: sqlite3.Connection) -> None:
            if projection is not None:
                projection.reset(conn)
                projection.setup(conn)
            with self._ours("resetting a handler"):
                for table, column in (
                    ("actorsrc_checkpoints", "name"),
                    ("actorsrc_parked", "handler"),
                    ("actorsrc_process_state", "manager"),
                ):
                    conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))
                # A cluster's partitions' checkpoints (and fences) too: they would skip what was reset.
                prefix = partition_prefix(name)
                conn.execute("DELETE FROM actorsrc_checkpoints WHERE substr(name, 1, ?) = ?", (len(prefix), prefix))

        await self._require_thread().call(
            lambda conn: self._in_transaction(conn, job, f"the reset of {name!r}"), label=f"resetting {name!r}"
        )


def _check_portable(projection: Projection) -> None:
    for part in ("handle", "setup", "reset"):
        if is_async(getattr(projection, part)):
            raise ConfigurationError(
                f"projection {projection.name!r}: its {part} is `async def`, written for asyncpg (PostgreSQL only);"
                " write it as a plain function over db.execute(sql, params) with ? placeholders to run it on"
                " every read model"
            )
