"""A PostgreSQL read model: projection tables, checkpoints, parked events and process-manager state in
one database, so a projection's writes and its checkpoint commit in one transaction.

A projection's `handle`, `setup` and `reset` run inside the transaction that moves the checkpoint, in
either of two forms:

- portable (plain functions, the form that runs on every read model): the code runs in a worker thread
  and gets a `PortableConnection`, the sqlite3-style ``db.execute(sql, params)`` with ``?`` placeholders,
  each statement crossing to the event loop (see `actorsrc.readmodel.portable`);
- async, for PostgreSQL only, over the asyncpg connection itself (one hop fewer per statement):

    async def handle(db: asyncpg.Connection, envelope: EventEnvelope) -> None:
        await db.execute("UPDATE balances SET balance = balance + $1 WHERE account = $2", ...)

The read model's schema is first on the connections' search path, so unqualified table names land there.

Failures of the database or the link (a lost connection, a full disk, a server shutting down, a
deadlock or serialization failure, a closed pool), in our statements or in a handler's, raise
`ReadModelError`; any other exception from a handler's code is its own and is raised as itself. Our
own statements have a deadline (`command_timeout`), so a dead link cannot hold a handler forever; a
handler overrunning its `FailurePolicy.timeout` is cancelled (asyncpg cancels its statement) and rolled
back; a portable handler's thread cannot be stopped, but every statement it tries afterwards is refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Self, TypeVar

import anyio
import asyncpg

from actorsrc.errors import ConfigurationError, HandlerTimeoutError, ReadModelError, StoreClosedError, StoreError
from actorsrc.readmodel.base import (
    Checkpoint,
    CheckpointFencedError,
    CheckpointMovedError,
    ParkedEvent,
    fence_row,
    handler_code,
    partition_prefix,
)
from actorsrc.readmodel.parked_rows import PARKED_COLUMNS, parked_from_row
from actorsrc.readmodel.portable import PortableConnection, is_async
from actorsrc.readmodel.postgres_ddl import read_model_ddl
from actorsrc.readmodel.postgres_failures import DATABASE_FAILURES, OWN_FAILURES
from actorsrc.readmodel.postgres_handler_code import LET_GO, in_thread, not_awaitable, query_arguments, roll_back
from actorsrc.sql.encoding import now_micros
from actorsrc.sql.postgres import check_schema_name

if TYPE_CHECKING:
    from actorsrc.projection import EventEnvelope, Projection
    from actorsrc.sql.postgres import PgConnection

__all__ = ["LET_GO", "PostgresReadModel"]

T = TypeVar("T")


class PostgresReadModel:
    """Open with ``async with PostgresReadModel.open(dsn, schema="actorsrc_read")``.

    `command_timeout` bounds each of the read model's own statements (BEGIN, COMMIT, checkpoints, parked
    events), in seconds (None: wait forever); handlers' statements are bounded by their `FailurePolicy.timeout`.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "actorsrc_read",
        max_connections: int = 5,
        command_timeout: float | None = 30.0,
    ) -> None:
        if command_timeout is not None and not command_timeout > 0:
            raise ConfigurationError(
                f"command_timeout must be a number of seconds > 0 or None, got {command_timeout!r}"
            )
        self.dsn = dsn
        self.schema = check_schema_name(schema)
        self.command_timeout = command_timeout
        self._max_connections = max_connections
        self._pool: asyncpg.Pool | None = None

    @classmethod
    @asynccontextmanager
    async def open(cls, dsn: str, **options: Any) -> AsyncIterator[Self]:
        model = cls(dsn, **options)
        try:
            # The read model's schema comes first on the search path: a projection's unqualified tables
            # live next to its checkpoints.
            model._pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=model._max_connections,
                server_settings={"search_path": f'"{model.schema}", public'},
            )
            async with model._pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"actorsrc-read:{model.schema}")
                for statement in read_model_ddl(model.schema):
                    await conn.execute(statement)
        except (OSError, asyncpg.PostgresError) as exc:
            if model._pool is not None:
                await model._pool.close()
            raise StoreError(f"cannot open the PostgreSQL read model (schema {model.schema!r}): {exc}") from exc
        try:
            yield model
        finally:
            pool, model._pool = model._pool, None
            if pool is not None:
                await pool.close()

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreClosedError(f"PostgreSQL read model (schema {self.schema!r}) is not open")
        return self._pool

    def _failed(self, what: str, exc: BaseException) -> ReadModelError:
        return ReadModelError(f"PostgreSQL read model (schema {self.schema!r}): {what} failed: {exc!r}")

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[PgConnection]:
        """One transaction. What its body raises goes through as it is (the body classifies its own
        errors); acquiring, BEGIN, COMMIT and ROLLBACK failing is the read model's failure."""
        pool = self._require_pool()
        timeout = self.command_timeout
        from_body: BaseException | None = None
        try:
            async with pool.acquire(timeout=timeout) as conn:
                await conn.execute("BEGIN", timeout=timeout)
                try:
                    yield conn
                except BaseException as exc:
                    from_body = exc
                    await roll_back(conn)
                    raise
                try:
                    await conn.execute("COMMIT", timeout=timeout)
                except BaseException:
                    await roll_back(conn)
                    raise
        except Exception as exc:
            if exc is from_body:
                raise
            raise self._failed("a transaction", exc) from exc

    async def _ours(self, what: str, statement: Awaitable[T]) -> T:
        """One of the read model's own statements: any failure is the read model's."""
        try:
            return await statement
        except OWN_FAILURES as exc:
            raise self._failed(what, exc) from exc

    async def _theirs(self, conn: PgConnection, whose: str, code: Callable[[], Awaitable[None]]) -> None:
        """A handler's code: its own errors go through as themselves, the database's become `ReadModelError`."""
        try:
            await code()
        except Exception as exc:
            if isinstance(exc, DATABASE_FAILURES) or conn.is_closed():
                raise self._failed(whose, exc) from exc
            raise

    async def _timed(
        self, conn: PgConnection, whose: str, code: Callable[[], Awaitable[None]], timeout: float | None
    ) -> None:
        with anyio.move_on_after(timeout) as deadline:
            await self._theirs(conn, whose, code)
        if deadline.cancelled_caught:
            raise HandlerTimeoutError(
                f"{whose} ran longer than its timeout of {timeout} s; it was cancelled and rolled back "
                "(raise FailurePolicy.timeout if it needs longer)"
            )

    async def _call(self, conn: PgConnection, whose: str, code: Callable[[Any], Any]) -> None:
        """A projection's `setup` or `reset`, async (over `conn`) or portable (in a thread)."""
        if is_async(code):
            await code(conn)
        else:
            await in_thread(conn, lambda db: not_awaitable(code(db), whose))

    async def _fetch(self, what: str, sql: str, *params: Any) -> list[Any]:
        pool = self._require_pool()
        rows = await self._ours(what, pool.fetch(sql, *params, timeout=self.command_timeout))
        return [tuple(row) for row in rows]

    async def query(self, sql: str, *params: Any) -> list[Any]:
        """Rows (tuples) of a read query. Portable: ``query("... WHERE a = ?", (a,))``, as on SQLite; also
        asyncpg's own form, ``query("... WHERE a = $1", a)``."""
        sql, params = query_arguments(sql, params)
        return [tuple(row) for row in await self._require_pool().fetch(sql, *params)]

    async def _move_checkpoint(self, conn: PgConnection, checkpoint: Checkpoint | None) -> None:
        if checkpoint is None:
            return
        timeout = self.command_timeout
        table = f'"{self.schema}".checkpoints'
        if checkpoint.fence is not None:
            # Locks the fence row: a claim by a newer owner waits for this commit, or this one sees it.
            held = await self._ours(
                "reading the checkpoint's fence",
                conn.fetchval(
                    f"SELECT position FROM {table} WHERE name = $1 FOR UPDATE",
                    fence_row(checkpoint.name),
                    timeout=timeout,
                ),
            )
            if (held or 0) > checkpoint.fence:
                raise CheckpointFencedError(checkpoint.name, checkpoint.fence, held)
        if checkpoint.after is not None:
            found = await self._ours(
                "reading the checkpoint",
                conn.fetchval(
                    f"SELECT position FROM {table} WHERE name = $1 FOR UPDATE", checkpoint.name, timeout=timeout
                ),
            )
            if (found or 0) != checkpoint.after:
                raise CheckpointMovedError(checkpoint.name, checkpoint.after, found or 0)
        await self._ours(
            "moving the checkpoint",
            conn.execute(
                f"INSERT INTO {table} (name, position, updated_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
                checkpoint.name,
                checkpoint.position,
                now_micros(),
                timeout=timeout,
            ),
        )

    async def _unpark(self, conn: PgConnection, unpark: int | None) -> None:
        if unpark is not None:
            await self._ours(
                "dropping a parked event",
                conn.execute(f'DELETE FROM "{self.schema}".parked WHERE id = $1', unpark, timeout=self.command_timeout),
            )

    # -- the ReadModel protocol -------------------------------------------------------------------

    async def checkpoint(self, name: str) -> int:
        rows = await self._fetch(
            "reading a checkpoint", f'SELECT position FROM "{self.schema}".checkpoints WHERE name = $1', name
        )
        return int(rows[0][0]) if rows else 0

    async def claim_checkpoint(self, name: str, fence: int) -> int:
        table = f'"{self.schema}".checkpoints'
        timeout = self.command_timeout
        async with self._transaction() as conn:
            # GREATEST: of two racing claims the higher token wins, whichever commits last.
            held = await self._ours(
                "claiming a checkpoint",
                conn.fetchval(
                    f"INSERT INTO {table} (name, position, updated_at) VALUES ($1, $2, $3) ON CONFLICT (name)"
                    f" DO UPDATE SET position = GREATEST({table}.position, excluded.position),"
                    " updated_at = excluded.updated_at RETURNING position",
                    fence_row(name),
                    fence,
                    now_micros(),
                    timeout=timeout,
                ),
            )
            if held > fence:
                raise CheckpointFencedError(name, fence, held)
            found = await self._ours(
                "reading a checkpoint",
                conn.fetchval(f"SELECT position FROM {table} WHERE name = $1", name, timeout=timeout),
            )
        return int(found or 0)

    async def partition_checkpoints(self, handler: str) -> dict[str, int]:
        rows = await self._fetch(
            "reading partition checkpoints",
            f'SELECT name, position FROM "{self.schema}".checkpoints WHERE starts_with(name, $1)',
            partition_prefix(handler),
        )
        return {name: int(position) for name, position in rows}

    async def setup(self, projection: Projection, *, timeout: float | None = None) -> None:
        whose = handler_code(projection.name, "setup")
        async with self._transaction() as conn:
            # One setup of a projection at a time (a cluster starts its partitions at once, on several
            # nodes): concurrent CREATE ... IF NOT EXISTS can still collide in PostgreSQL's catalog.
            await self._ours(
                "locking the setup",
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext($1))",
                    f"actorsrc-setup:{self.schema}:{projection.name}",
                    timeout=self.command_timeout,
                ),
            )
            await self._timed(conn, whose, lambda: self._call(conn, whose, projection.setup), timeout)

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
        whose = handler_code(projection.name, "handle", envelopes)

        async with self._transaction() as conn:
            if is_async(handle):

                async def run() -> None:
                    for envelope in envelopes:
                        await handle(conn, envelope)

            else:

                def work(db: PortableConnection) -> None:
                    for envelope in envelopes:
                        not_awaitable(handle(db, envelope), whose)

                async def run() -> None:
                    await in_thread(conn, work)

            await self._timed(conn, whose, run, timeout)
            await self._move_checkpoint(conn, checkpoint)
            await self._unpark(conn, unpark)

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
        async with self._transaction() as conn:
            await self._ours(
                "parking an event",
                conn.execute(
                    f'INSERT INTO "{self.schema}".parked'
                    " (handler, position, stream_id, version, type, error, attempts, parked_at)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (handler, position) DO UPDATE"
                    " SET error = excluded.error, attempts = excluded.attempts, parked_at = excluded.parked_at",
                    name,
                    position,
                    stream_id,
                    version,
                    type_name,
                    error[:4000],
                    attempts,
                    now_micros(),
                    timeout=self.command_timeout,
                ),
            )
            await self._move_checkpoint(conn, Checkpoint(checkpoint or name, position, after, fence))

    async def parked(self, name: str | None = None) -> list[ParkedEvent]:
        where, params = ("WHERE handler = $1", [name]) if name is not None else ("", [])
        rows = await self._fetch(
            "listing parked events",
            f'SELECT {PARKED_COLUMNS} FROM "{self.schema}".parked {where} ORDER BY handler, position',
            *params,
        )
        return [parked_from_row(row) for row in rows]

    async def parked_event(self, parked_id: int) -> ParkedEvent | None:
        rows = await self._fetch(
            "reading a parked event",
            f'SELECT {PARKED_COLUMNS} FROM "{self.schema}".parked WHERE id = $1',
            parked_id,
        )
        return parked_from_row(rows[0]) if rows else None

    async def discard_parked(self, parked_id: int) -> None:
        async with self._transaction() as conn:
            await self._unpark(conn, parked_id)

    async def reset(self, name: str, projection: Projection | None) -> None:
        async with self._transaction() as conn:
            if projection is not None:
                whose = handler_code(projection.name, "reset")
                await self._theirs(conn, whose, lambda: self._call(conn, whose, projection.reset))
                await self._theirs(conn, whose, lambda: self._call(conn, whose, projection.setup))
            for table, column in (("checkpoints", "name"), ("parked", "handler"), ("process_state", "manager")):
                await self._ours(
                    "resetting a handler",
                    conn.execute(
                        f'DELETE FROM "{self.schema}".{table} WHERE {column} = $1', name, timeout=self.command_timeout
                    ),
                )
            # A cluster's partitions' checkpoints (and fences) too: they would skip what was reset.
            await self._ours(
                "resetting a handler",
                conn.execute(
                    f'DELETE FROM "{self.schema}".checkpoints WHERE starts_with(name, $1)',
                    partition_prefix(name),
                    timeout=self.command_timeout,
                ),
            )

    async def load_process_state(self, manager: str, key: str) -> bytes | None:
        rows = await self._fetch(
            "loading process state",
            f'SELECT state FROM "{self.schema}".process_state WHERE manager = $1 AND key = $2',
            manager,
            key,
        )
        return bytes(rows[0][0]) if rows else None

    async def settled_commands(self, manager: str, command_ids: list[str]) -> set[str]:
        rows = await self._fetch(
            "reading settled commands",
            f'SELECT command_id FROM "{self.schema}".process_settled WHERE manager = $1'
            " AND command_id = ANY($2::text[])",
            manager,
            command_ids,
        )
        return {row[0] for row in rows}

    async def save_process(
        self,
        manager: str,
        states: dict[str, bytes],
        settled: dict[str, str],
        checkpoint: Checkpoint | None,
        unpark: int | None = None,
    ) -> None:
        timeout = self.command_timeout
        async with self._transaction() as conn:
            if states:
                await self._ours(
                    "saving process state",
                    conn.executemany(
                        f'INSERT INTO "{self.schema}".process_state (manager, key, state) VALUES ($1, $2, $3)'
                        " ON CONFLICT (manager, key) DO UPDATE SET state = excluded.state",
                        [(manager, key, data) for key, data in states.items()],
                        timeout=timeout,
                    ),
                )
            if settled:
                await self._ours(
                    "saving settled commands",
                    conn.executemany(
                        f'INSERT INTO "{self.schema}".process_settled (manager, command_id, outcome)'
                        " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        [(manager, command_id, outcome) for command_id, outcome in settled.items()],
                        timeout=timeout,
                    ),
                )
            await self._move_checkpoint(conn, checkpoint)
            await self._unpark(conn, unpark)
