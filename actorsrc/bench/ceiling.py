"""The raw ceilings: the bare driver's fastest batched insert of the same rows into actorsrc's own schema
(aiosqlite executemany, asyncpg COPY; on SQLite also plain `sqlite3`), run in the same process as
actorsrc's figures. The rows are built before the clock starts, so the ceilings time the database and
its driver only."""

from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

from actorsrc.bench.stores import drop_schema, fresh_schema
from actorsrc.hashing import slice_of
from actorsrc.records import Metadata
from actorsrc.sql.sqlite_thread import run_on_connection_thread
from actorsrc.store import sqlite_schema

SQLITE_BATCHES = (1000, 5000)


@dataclass
class WriteResult:
    name: str
    commands: int
    seconds: float
    per_second: float
    p50_ms: float | None = None
    p99_ms: float | None = None


Batch = tuple[list[tuple[int, str, int]], list[tuple[Any, ...]]]
"""One commit's rows: the streams' (key, name, version) and the events' rows."""


def sqlite_batches(aggregates: int, commands_each: int, batch: int) -> list[Batch]:
    """Every commit's rows, built before any timing: a ceiling measures the driver, not the row building
    (uuid4 ids, metadata encoding), which actorsrc itself does while the previous batch commits."""
    total = aggregates * commands_each
    encode = msgspec.json.Encoder().encode
    payload = encode({"amount": 1})  # as an AccountCredited(1) encodes
    names = [f"account-acc-{key}" for key in range(aggregates)]
    slices = [slice_of(name) for name in names]
    versions = [0] * aggregates
    batches: list[Batch] = []
    position = stream = 0
    now = time.time_ns() // 1000
    while position < total:
        rows = []
        touched: dict[int, int] = {}
        for _ in range(min(batch, total - position)):
            position += 1
            versions[stream] += 1
            touched[stream] = versions[stream]
            meta = encode(Metadata(uuid.uuid4().hex))
            rows.append(
                (position, stream + 1, versions[stream], "AccountCredited", 1, payload, meta, now, slices[stream])
            )
            stream = (stream + 1) % aggregates
        batches.append(([(key + 1, names[key], v) for key, v in touched.items()], rows))
    return batches


_UPSERT_STREAMS = " ".join(
    (
        "INSERT INTO streams (key, name, version) VALUES (?, ?, ?)",
        "ON CONFLICT (key) DO UPDATE SET version = excluded.version",
    )
)
_INSERT_EVENTS = "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"


async def raw_insert_ceiling(path: Path, aggregates: int, commands_each: int, batch: int) -> WriteResult:
    """The rows of `commands_each` bank credits to each of `aggregates` accounts, into actorsrc's schema
    with plain aiosqlite executemany, `batch` rows a commit (rows built before the clock starts)."""
    batches = sqlite_batches(aggregates, commands_each, batch)
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        await run_on_connection_thread(conn, sqlite_schema.configure, durable=True)
        await run_on_connection_thread(conn, sqlite_schema.migrate)
        start = time.perf_counter()
        for streams, rows in batches:
            await conn.execute("BEGIN IMMEDIATE")
            await conn.executemany(_UPSERT_STREAMS, streams)
            await conn.executemany(_INSERT_EVENTS, rows)
            await conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
    total = aggregates * commands_each
    return WriteResult(f"raw aiosqlite executemany ({batch} rows/commit)", total, elapsed, total / elapsed)


def plain_sqlite3_ceiling(path: Path, aggregates: int, commands_each: int, batch: int) -> WriteResult:
    """The same rows, schema and durability with the standard library's `sqlite3`, no event loop at all:
    the second ceiling, what SQLite itself takes."""
    batches = sqlite_batches(aggregates, commands_each, batch)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        sqlite_schema.configure(conn, durable=True)
        sqlite_schema.migrate(conn)
        start = time.perf_counter()
        for streams, rows in batches:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_UPSERT_STREAMS, streams)
            conn.executemany(_INSERT_EVENTS, rows)
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    total = aggregates * commands_each
    return WriteResult(f"plain sqlite3 executemany ({batch} rows/commit)", total, elapsed, total / elapsed)


async def raw_ceilings(
    store_url: str | None, directory: Path, aggregates: int, rows_each: int
) -> list[tuple[str, float]]:
    """[(what, rows/s)]: the bare driver's best batched insert of the same rows into the same schema, rows
    built before timing; on SQLite also plain `sqlite3` (the first is what actorsrc's driver allows)."""
    if store_url is None:
        best = max(
            [
                await raw_insert_ceiling(directory / f"raw-{batch}.db", aggregates, rows_each, batch)
                for batch in SQLITE_BATCHES
            ],
            key=lambda r: r.per_second,
        )
        plain = max(
            [
                plain_sqlite3_ceiling(directory / f"plain-{batch}.db", aggregates, rows_each, batch)
                for batch in SQLITE_BATCHES
            ],
            key=lambda r: r.per_second,
        )
        return [(best.name, best.per_second), (plain.name, plain.per_second)]
    return [
        (
            "raw asyncpg COPY (5000 rows/commit, rows built before timing)",
            await _copy_ceiling(store_url, aggregates, rows_each),
        )
    ]


async def _copy_ceiling(store_url: str, aggregates: int, rows_each: int) -> float:
    """COPY of the events, with the streams' versions and the log head moved in the same transaction,
    as actorsrc's writer does."""
    import asyncpg

    from actorsrc.records import NewEvent, next_event_id
    from actorsrc.sql.encoding import now_micros
    from actorsrc.store.postgres import PostgresEventStore
    from actorsrc.store.postgres_writer import EVENT_COLUMNS
    from actorsrc.store.rows import event_row

    schema = fresh_schema("bench_raw")
    try:
        async with PostgresEventStore.open(store_url, schema=schema):
            pass  # the schema, empty
        conn: Any = await asyncpg.connect(store_url)
        try:
            names = [f"tally-t{i}" for i in range(aggregates)]
            insert = f'INSERT INTO "{schema}".streams (name, version) SELECT unnest($1::text[]), 0 RETURNING key'
            keys = [row[0] for row in await conn.fetch(insert, names)]
            slices = [slice_of(name) for name in names]
            data = msgspec.json.encode({"amount": 1})
            total, position, versions = aggregates * rows_each, 0, [0] * aggregates
            batches: list[tuple[dict[int, int], list[Any], int]] = []  # built before timing
            while position < total:
                rows = []
                touched: dict[int, int] = {}
                for _ in range(min(5000, total - position)):
                    stream = position % aggregates
                    versions[stream] += 1
                    touched[keys[stream]] = versions[stream]
                    position += 1
                    event = NewEvent("Added", data, Metadata(next_event_id()))
                    rows.append(
                        event_row(position, keys[stream], versions[stream], event, now_micros(), slices[stream])
                    )
                batches.append((touched, rows, position))
            started = time.perf_counter()
            for touched, rows, head in batches:
                async with conn.transaction():
                    await conn.fetchval(f'SELECT position FROM "{schema}".log_head WHERE id = 1 FOR UPDATE')
                    await conn.execute(
                        f'UPDATE "{schema}".streams AS s SET version = v.version'
                        " FROM unnest($1::bigint[], $2::bigint[]) AS v(key, version) WHERE s.key = v.key",
                        list(touched),
                        list(touched.values()),
                    )
                    await conn.copy_records_to_table("events", schema_name=schema, records=rows, columns=EVENT_COLUMNS)
                    await conn.execute(f'UPDATE "{schema}".log_head SET position = $1 WHERE id = 1', head)
            return total / (time.perf_counter() - started)
        finally:
            await conn.close()
    finally:
        await drop_schema(store_url, schema)
