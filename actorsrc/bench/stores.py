"""Where a benchmark writes: a durable SQLite file in a temp dir, or PostgreSQL in a fresh schema.

Every PostgreSQL schema a run creates is dropped when the run leaves it, whether it succeeded or not.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actorsrc import EventStore, SQLiteEventStore, SQLiteReadModel

if TYPE_CHECKING:
    from actorsrc.readmodel.postgres import PostgresReadModel


class BadStoreUrl(ValueError):
    pass


def check_store_url(url: str | None) -> str | None:
    if url is not None and not url.startswith(("postgresql://", "postgres://")):
        raise BadStoreUrl(f"--store must be a postgresql:// URL (or left out for SQLite), got {url!r}")
    return url


def sqlite_settings() -> dict[str, Any]:
    return {"kind": "sqlite", "journal_mode": "wal", "synchronous": "full", "sqlite": sqlite3.sqlite_version}


def fresh_schema(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def drop_schema(url: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def postgres_settings(url: str) -> dict[str, Any]:
    """What decides durability and speed on the server, for the report."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        settings = {name: await conn.fetchval(f"SHOW {name}") for name in ("synchronous_commit", "fsync")}
        server = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return {"kind": "postgresql", "server": server, "asyncpg": asyncpg.__version__, **settings}


@asynccontextmanager
async def bench_store(url: str | None, directory: Path, name: str) -> AsyncIterator[tuple[EventStore, dict[str, Any]]]:
    """The store and its settings, for the report."""
    if url is None:
        async with SQLiteEventStore.open(directory / f"{name}.db") as store:
            yield store, sqlite_settings()
        return
    from actorsrc.store.postgres import PostgresEventStore

    schema = fresh_schema(f"bench_{name}")
    settings = {**await postgres_settings(url), "schema": schema}
    try:
        async with PostgresEventStore.open(url, schema=schema) as pg_store:
            yield pg_store, settings
    finally:
        await drop_schema(url, schema)


@asynccontextmanager
async def bench_read_model(
    url: str | None, directory: Path, name: str
) -> AsyncIterator[SQLiteReadModel | PostgresReadModel]:
    """A read model of the same kind as the store: an SQLite file, or a fresh PostgreSQL schema."""
    if url is None:
        async with SQLiteReadModel.open(directory / f"{name}-read.db") as read_model:
            yield read_model
        return
    from actorsrc.readmodel.postgres import PostgresReadModel

    schema = fresh_schema(f"bench_{name}_read")
    try:
        async with PostgresReadModel.open(url, schema=schema) as pg_read_model:
            yield pg_read_model
    finally:
        await drop_schema(url, schema)
