"""Where a benchmark writes: a durable SQLite file in a temp dir, or PostgreSQL in a fresh schema."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from actorsrc import EventStore, SQLiteEventStore


class BadStoreUrl(ValueError):
    pass


def check_store_url(url: str | None) -> str | None:
    if url is not None and not url.startswith(("postgresql://", "postgres://")):
        raise BadStoreUrl(f"--store must be a postgresql:// URL (or left out for SQLite), got {url!r}")
    return url


@asynccontextmanager
async def bench_store(url: str | None, directory: Path, name: str) -> AsyncIterator[tuple[EventStore, dict[str, Any]]]:
    """The store and its settings, for the report. A PostgreSQL schema is dropped afterwards."""
    if url is None:
        async with SQLiteEventStore.open(directory / f"{name}.db") as store:
            yield (
                store,
                {"kind": "sqlite", "journal_mode": "wal", "synchronous": "full", "sqlite": sqlite3.sqlite_version},
            )
        return
    import asyncpg

    from actorsrc.store.postgres import PostgresEventStore

    schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    try:
        async with PostgresEventStore.open(url, schema=schema) as store:
            yield store, {"kind": "postgresql", "schema": schema, "asyncpg": asyncpg.__version__}
    finally:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
