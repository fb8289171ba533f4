"""The peer and the raw ceiling, run in the same process as actorsrc's figures.

Peer: the `eventsourcing` library (9.5.6, the `bench` extra) in its documented style, the one in
benchmarks/replay.py: an `Aggregate` with `@event` methods, an `Application` whose command method
does `repository.get`, calls the aggregate, then `save`. Each of the configurations listed in
/work/shared/BENCHMARKS.md is tried and the best is reported. Raw ceiling: the fastest batched insert of
the same rows into actorsrc's own schema with the bare driver (aiosqlite executemany, asyncpg COPY).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

SQLITE_CONFIGS: list[dict[str, str]] = [
    {"AGGREGATE_CACHE_MAXSIZE": ""},
    *(
        {"AGGREGATE_CACHE_MAXSIZE": "10000", "AGGREGATE_CACHE_FASTFORWARD": ff, "DEEPCOPY_FROM_AGGREGATE_CACHE": dc}
        for ff in ("y", "n")
        for dc in ("y", "n")
    ),
]
POSTGRES_THREADS = (1, 8)
_SHORT = {
    "AGGREGATE_CACHE_MAXSIZE": "cache",
    "AGGREGATE_CACHE_FASTFORWARD": "fastforward",
    "DEEPCOPY_FROM_AGGREGATE_CACHE": "deepcopy",
}


@dataclass
class PeerRun:
    config: str
    commands: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.commands / self.seconds


def peer_available() -> str | None:
    """None when eventsourcing imports, else why not."""
    try:
        import eventsourcing  # noqa: F401
    except ImportError as exc:
        return str(exc)
    return None


def _env(store_url: str | None, directory: Path, config: dict[str, str], threads: int) -> tuple[dict[str, str], str]:
    env = {"COMPRESSOR_TOPIC": "", "CIPHER_TOPIC": "", "IS_SNAPSHOTTING_ENABLED": "n", **config}
    if store_url is None:
        env.update(
            PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=str(directory / f"peer-{uuid.uuid4().hex}.db")
        )
        return env, ""
    url = urlparse(store_url)
    schema = f"peer_{uuid.uuid4().hex[:10]}"
    env.update(
        PERSISTENCE_MODULE="eventsourcing.postgres",
        POSTGRES_DBNAME=url.path.lstrip("/"),
        POSTGRES_HOST=url.hostname or "127.0.0.1",
        POSTGRES_PORT=str(url.port or 5432),
        POSTGRES_USER=url.username or "postgres",
        POSTGRES_PASSWORD=url.password or "",
        POSTGRES_SCHEMA=schema,
        POSTGRES_POOL_SIZE=str(max(5, threads)),
    )
    return env, schema


def _schema(store_url: str, schema: str, *, create: bool) -> None:
    import psycopg

    with psycopg.connect(store_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"' if create else f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _run(env: dict[str, str], aggregates: int, commands_each: int, threads: int) -> float:
    from benchmarks.replay import PeerBank

    app = PeerBank(env=env)
    try:
        ids = [app.open_account("owner") for _ in range(aggregates)]
        work = [account_id for _ in range(commands_each - 1) for account_id in ids]
        started = time.perf_counter()
        if threads == 1:
            for account_id in work:
                app.credit(account_id, 1)
        else:  # each thread owns its own aggregates, so there are no conflicts to retry

            def worker(index: int) -> None:
                for account_id in work[index::threads]:
                    app.credit(account_id, 1)

            pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join()
        return time.perf_counter() - started
    finally:
        app.close()


def peer_write(store_url: str | None, directory: Path, aggregates: int, commands_each: int) -> list[PeerRun]:
    """The peer's credits/s over `aggregates` accounts, in each configuration (opening is not timed)."""
    runs: list[PeerRun] = []
    thread_counts = (1,) if store_url is None else POSTGRES_THREADS
    for config in SQLITE_CONFIGS:
        for threads in thread_counts:
            if threads > 1 and aggregates < threads:
                continue
            env, schema = _env(store_url, directory, config, threads)
            if store_url is not None:
                _schema(store_url, schema, create=True)
            try:
                seconds = _run(env, aggregates, commands_each, threads)
            finally:
                if store_url is not None:
                    _schema(store_url, schema, create=False)
            label = " ".join(f"{_SHORT[k]}={v or 'unset'}" for k, v in config.items()) + f" threads={threads}"
            runs.append(PeerRun(label, aggregates * (commands_each - 1), seconds))
    return runs


async def raw_ceiling(store_url: str | None, directory: Path, aggregates: int, commands_each: int) -> tuple[str, float]:
    """(what, rows/s): the bare driver's best batched insert of the same rows into the same schema."""
    if store_url is None:
        from benchmarks.write_path import raw_insert_ceiling

        best = max(
            [
                await raw_insert_ceiling(directory / f"raw-{batch}.db", aggregates, commands_each, batch)
                for batch in (1000, 5000)
            ],
            key=lambda r: r.per_second,
        )
        return best.name, best.per_second
    return "raw asyncpg COPY (5000 rows/commit)", await _copy_ceiling(store_url, aggregates, commands_each)


async def _copy_ceiling(store_url: str, aggregates: int, commands_each: int) -> float:
    import asyncpg
    import msgspec

    from actorsrc.messages import Metadata, NewEvent, next_event_id
    from actorsrc.store.postgres import PostgresEventStore
    from actorsrc.store.rows import event_row, now_micros

    schema = f"raw_{uuid.uuid4().hex[:10]}"
    async with PostgresEventStore.open(store_url, schema=schema):
        pass  # the schema, empty
    conn: Any = await asyncpg.connect(store_url)
    try:
        keys = [
            row[0]
            for row in await conn.fetch(
                f'INSERT INTO "{schema}".streams (name, version) SELECT unnest($1::text[]), 0 RETURNING key',
                [f"tally-t{i}" for i in range(aggregates)],
            )
        ]
        data = msgspec.json.encode({"amount": 1})
        total, position, versions = aggregates * commands_each, 0, [0] * aggregates
        started = time.perf_counter()
        while position < total:
            rows = []
            for _ in range(min(5000, total - position)):
                stream = position % aggregates
                versions[stream] += 1
                position += 1
                event = NewEvent("Added", data, Metadata(next_event_id()))
                rows.append(event_row(position, keys[stream], versions[stream], event, now_micros()))
            async with conn.transaction():
                await conn.fetchval(f'SELECT position FROM "{schema}".log_head WHERE id = 1 FOR UPDATE')
                await conn.copy_records_to_table(
                    "events",
                    schema_name=schema,
                    records=rows,
                    columns=[
                        "position",
                        "stream_key",
                        "version",
                        "type",
                        "schema_version",
                        "data",
                        "metadata",
                        "recorded_at",
                    ],
                )
                await conn.execute(f'UPDATE "{schema}".log_head SET position = $1 WHERE id = 1', position)
        return total / (time.perf_counter() - started)
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
