"""A PostgreSQL read model: projection tables, checkpoints, parked events and process-manager state in
one database, so a projection's writes and its checkpoint commit in one transaction.

Projections for it are written with async functions over an asyncpg connection:

    async def handle(db: asyncpg.Connection, envelope: EventEnvelope) -> None:
        await db.execute("UPDATE balances SET balance = balance + $1 WHERE account = $2", ...)

`handle` runs inside the transaction that moves the checkpoint; `setup` and `reset` likewise. The
read model's schema is first on the connections' search path, so unqualified table names land there.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Self

import asyncpg

from actorsrc.errors import StoreClosedError, StoreError
from actorsrc.readmodel.base import ParkedEvent
from actorsrc.store.postgres_schema import check_schema_name
from actorsrc.store.rows import micros_to_datetime, now_micros

if TYPE_CHECKING:
    from actorsrc.projection import EventEnvelope, Projection
    from actorsrc.store.postgres_schema import PgConnection


def _ddl(s: str) -> list[str]:
    return [
        f'CREATE SCHEMA IF NOT EXISTS "{s}"',
        f'CREATE TABLE IF NOT EXISTS "{s}".checkpoints (name TEXT PRIMARY KEY, position BIGINT NOT NULL,'
        " updated_at BIGINT NOT NULL)",
        f'CREATE TABLE IF NOT EXISTS "{s}".parked (id BIGSERIAL PRIMARY KEY, handler TEXT NOT NULL,'
        " position BIGINT NOT NULL, stream_id TEXT NOT NULL, version BIGINT NOT NULL, type TEXT NOT NULL,"
        " error TEXT NOT NULL, attempts INT NOT NULL, parked_at BIGINT NOT NULL, UNIQUE (handler, position))",
        f'CREATE TABLE IF NOT EXISTS "{s}".process_state (manager TEXT NOT NULL, key TEXT NOT NULL,'
        " state BYTEA NOT NULL, PRIMARY KEY (manager, key))",
        f'CREATE TABLE IF NOT EXISTS "{s}".process_settled (manager TEXT NOT NULL, command_id TEXT NOT NULL,'
        " outcome TEXT NOT NULL, PRIMARY KEY (manager, command_id))",
    ]


async def _maybe_await(result: Any) -> None:
    if inspect.isawaitable(result):
        await result


class PostgresReadModel:
    """Open with ``async with PostgresReadModel.open(dsn, schema="actorsrc_read")``."""

    def __init__(self, dsn: str, *, schema: str = "actorsrc_read", max_connections: int = 5) -> None:
        self.dsn = dsn
        self.schema = check_schema_name(schema)
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
                for statement in _ddl(model.schema):
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

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[PgConnection]:
        async with self._require_pool().acquire() as conn, conn.transaction():
            yield conn

    async def query(self, sql: str, *params: Any) -> list[Any]:
        return [tuple(row) for row in await self._require_pool().fetch(sql, *params)]

    async def _set_checkpoint(self, conn: PgConnection, checkpoint: tuple[str, int] | None) -> None:
        if checkpoint is not None:
            await conn.execute(
                f'INSERT INTO "{self.schema}".checkpoints (name, position, updated_at) VALUES ($1, $2, $3)'
                " ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
                checkpoint[0],
                checkpoint[1],
                now_micros(),
            )

    async def _unpark(self, conn: PgConnection, unpark: int | None) -> None:
        if unpark is not None:
            await conn.execute(f'DELETE FROM "{self.schema}".parked WHERE id = $1', unpark)

    # -- the ReadModel protocol -------------------------------------------------------------------

    async def checkpoint(self, name: str) -> int:
        rows = await self.query(f'SELECT position FROM "{self.schema}".checkpoints WHERE name = $1', name)
        return int(rows[0][0]) if rows else 0

    async def setup(self, projection: Projection) -> None:
        async with self._transaction() as conn:
            await _maybe_await(projection.setup(conn))

    async def project(
        self,
        projection: Projection,
        envelopes: Sequence[EventEnvelope[Any]],
        checkpoint: tuple[str, int] | None,
        unpark: int | None = None,
    ) -> None:
        async with self._transaction() as conn:
            for envelope in envelopes:
                await _maybe_await(projection.handle(conn, envelope))
            await self._set_checkpoint(conn, checkpoint)
            await self._unpark(conn, unpark)

    async def park(
        self, name: str, position: int, stream_id: str, version: int, type_name: str, error: str, attempts: int
    ) -> None:
        async with self._transaction() as conn:
            await conn.execute(
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
            )
            await self._set_checkpoint(conn, (name, position))

    async def parked(self, name: str | None = None) -> list[ParkedEvent]:
        where, params = ("WHERE handler = $1", [name]) if name is not None else ("", [])
        rows = await self.query(
            "SELECT id, handler, position, stream_id, version, type, error, attempts, parked_at"
            f' FROM "{self.schema}".parked {where} ORDER BY handler, position',
            *params,
        )
        return [_parked(row) for row in rows]

    async def parked_event(self, parked_id: int) -> ParkedEvent | None:
        rows = await self.query(
            "SELECT id, handler, position, stream_id, version, type, error, attempts, parked_at"
            f' FROM "{self.schema}".parked WHERE id = $1',
            parked_id,
        )
        return _parked(rows[0]) if rows else None

    async def discard_parked(self, parked_id: int) -> None:
        async with self._transaction() as conn:
            await self._unpark(conn, parked_id)

    async def reset(self, name: str, projection: Projection | None) -> None:
        async with self._transaction() as conn:
            if projection is not None:
                await _maybe_await(projection.reset(conn))
                await _maybe_await(projection.setup(conn))
            for table, column in (("checkpoints", "name"), ("parked", "handler"), ("process_state", "manager")):
                await conn.execute(f'DELETE FROM "{self.schema}".{table} WHERE {column} = $1', name)

    async def load_process_state(self, manager: str, key: str) -> bytes | None:
        rows = await self.query(
            f'SELECT state FROM "{self.schema}".process_state WHERE manager = $1 AND key = $2', manager, key
        )
        return bytes(rows[0][0]) if rows else None

    async def settled_commands(self, manager: str, command_ids: list[str]) -> set[str]:
        rows = await self.query(
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
        checkpoint: tuple[str, int] | None,
        unpark: int | None = None,
    ) -> None:
        async with self._transaction() as conn:
            if states:
                await conn.executemany(
                    f'INSERT INTO "{self.schema}".process_state (manager, key, state) VALUES ($1, $2, $3)'
                    " ON CONFLICT (manager, key) DO UPDATE SET state = excluded.state",
                    [(manager, key, data) for key, data in states.items()],
                )
            if settled:
                await conn.executemany(
                    f'INSERT INTO "{self.schema}".process_settled (manager, command_id, outcome)'
                    " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    [(manager, command_id, outcome) for command_id, outcome in settled.items()],
                )
            await self._set_checkpoint(conn, checkpoint)
            await self._unpark(conn, unpark)


def _parked(row: Sequence[Any]) -> ParkedEvent:
    id_, handler, position, stream_id, version, type_name, error, attempts, parked_at = row
    return ParkedEvent(
        id_, handler, position, stream_id, version, type_name, error, attempts, micros_to_datetime(parked_at)
    )
