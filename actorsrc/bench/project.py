"""Projection catch-up and end-to-end lag, on SQLite or PostgreSQL.

catch-up: E events (bank credits over 1,000 accounts) are written first, then a runtime starts with a
projection that upserts a balance per event into the read model; the figure is events/s until its
checkpoint reaches the end of the log.
lag: commands go in at a steady rate; for each, the time from its reply (events durable) until the
projection has applied them (`wait_for` returns): median and p99.
On PostgreSQL the same two measurements run over a PostgreSQL store and read model, with the same
projection written for asyncpg.
"""

from __future__ import annotations

import sqlite3
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import msgspec

from actorsrc import ANY, EventEnvelope, EventStore, NewEvent, Projection, Runtime, SQLiteEventStore, SQLiteReadModel
from actorsrc.bench.account import AccountCredited, AccountOpened, Credit, OpenAccount, account
from actorsrc.bench.stores import bench_read_model, bench_store, postgres_settings, sqlite_settings
from actorsrc.bench.workloads import Result
from actorsrc.progress import Progress
from actorsrc.records import Metadata, next_event_id

ACCOUNTS = 1000


async def _setup(db: Any) -> None:
    await db.execute("CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, balance BIGINT NOT NULL)")


async def _handle(db: Any, envelope: EventEnvelope[Any]) -> None:
    event = envelope.event
    amount = event.amount if isinstance(event, AccountCredited) else 0
    await db.execute(
        "INSERT INTO balances (account, balance) VALUES ($1, $2)"
        " ON CONFLICT (account) DO UPDATE SET balance = balances.balance + excluded.balance",
        envelope.stream_id,
        amount,
    )


pg_balances = Projection(name="bench_balances", handle=_handle, setup=_setup, aggregates=[account], batch_size=2000)


async def _write_log(store: EventStore, events: int) -> int:
    """`events` bank events over ACCOUNTS streams, appended 100 at a time (set-up, not measured)."""
    opened = msgspec.json.encode(AccountOpened("bench", 0))
    credited = msgspec.json.encode(AccountCredited(1))
    per_account = events // ACCOUNTS
    with Progress(per_account * ACCOUNTS, "project: writing the log") as progress:

        async def fill(n: int) -> None:
            for first in range(0, per_account, 100):
                batch = [
                    NewEvent("AccountOpened", opened, Metadata(next_event_id()))
                    if version == 0
                    else NewEvent("AccountCredited", credited, Metadata(next_event_id()))
                    for version in range(first, min(first + 100, per_account))
                ]
                await store.append(f"account-b{n}", batch, ANY)
                progress.advance(len(batch))

        async with anyio.create_task_group() as tg:
            for n in range(ACCOUNTS):
                tg.start_soon(fill, n)
    return await store.last_position()


async def _pg_catch_up(url: str, directory: Path, events: int) -> Result:
    async with bench_store(url, directory, "catchup") as (store, _):
        last = await _write_log(store, events)
        async with bench_read_model(url, directory, "catchup") as read_model:
            started = time.perf_counter()
            async with Runtime(store, [account], handlers=[pg_balances], read_model=read_model) as runtime:
                with Progress(last, "project: catching up") as progress:
                    async with anyio.create_task_group() as tg:

                        async def show() -> None:
                            while True:
                                progress.advance(await read_model.checkpoint(pg_balances.name) - progress.count)
                                await anyio.sleep(0.5)

                        tg.start_soon(show)
                        await runtime.wait_for(pg_balances, last, timeout=3600)
                        tg.cancel_scope.cancel()
            seconds = time.perf_counter() - started
            total = (await read_model.query("SELECT sum(balance) FROM balances"))[0][0]
    if total != last - ACCOUNTS:
        raise AssertionError(f"projected balances sum to {total}, expected {last - ACCOUNTS}")
    return Result("project", "catch-up into the read model", last, seconds, unit="events/s")


async def _pg_lag(url: str, directory: Path, seconds: float, rate: float) -> list[float]:
    async with (
        bench_store(url, directory, "lag") as (store, _),
        bench_read_model(url, directory, "lag") as read_model,
        Runtime(store, [account], handlers=[pg_balances], read_model=read_model) as runtime,
    ):
        return await measure_lag(runtime, pg_balances, seconds, rate)


def _sqlite_setup(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, balance INTEGER NOT NULL)")


def _sqlite_handle(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
    event = envelope.event
    amount = event.amount if isinstance(event, AccountCredited) else 0
    db.execute(
        "INSERT INTO balances (account, balance) VALUES (?, ?)"
        " ON CONFLICT (account) DO UPDATE SET balance = balance + excluded.balance",
        (envelope.stream_id, amount),
    )


balances = Projection(
    name="bench_balances", handle=_sqlite_handle, setup=_sqlite_setup, aggregates=[account], batch_size=2000
)


async def catch_up_sqlite(directory: Path, events: int) -> dict[str, float]:
    async with SQLiteEventStore.open(directory / "events.db", durable=False) as store:
        await _write_log(store, events)
        last = await store.last_position()
        async with SQLiteReadModel.open(directory / "read.db") as read_model:
            started = time.perf_counter()
            async with Runtime(store, [account], handlers=[balances], read_model=read_model) as runtime:
                await runtime.wait_for(balances, last, timeout=3600)
            elapsed = time.perf_counter() - started
            total = (await read_model.query("SELECT sum(balance) FROM balances"))[0][0]
    assert total == last - 1000, (total, last)
    return {"events": last, "seconds": elapsed, "events_per_second": last / elapsed}


async def measure_lag(runtime: Runtime, handler: Projection, seconds: float, rate: float) -> list[float]:
    """Commands at a steady `rate`; for each, seconds from its reply until `handler` has applied it."""
    lags: list[float] = []
    for n in range(100):
        await runtime.ref(account, f"l{n}").ask(OpenAccount("x"))

    async def one(n: int) -> None:
        outcome = await runtime.ref(account, f"l{n % 100}").ask(Credit(1))
        replied = time.perf_counter()
        await runtime.wait_for(handler, outcome.position, timeout=60)
        lags.append(time.perf_counter() - replied)

    interval = 1.0 / rate
    async with anyio.create_task_group() as tg:
        start = time.perf_counter()
        n = 0
        while (now := time.perf_counter()) - start < seconds:
            due = start + n * interval
            if now < due:
                await anyio.sleep(due - now)
            tg.start_soon(one, n)
            n += 1
    return lags


async def lag_sqlite(directory: Path, seconds: float, rate: float) -> dict[str, float]:
    async with (
        SQLiteEventStore.open(directory / "lag-events.db") as store,
        SQLiteReadModel.open(directory / "lag-read.db") as read_model,
        Runtime(store, [account], handlers=[balances], read_model=read_model) as runtime,
    ):
        lags = await measure_lag(runtime, balances, seconds, rate)
    lags.sort()
    return {
        "commands": len(lags),
        "rate_per_second": rate,
        "lag_p50_ms": statistics.median(lags) * 1000,
        "lag_p99_ms": lags[int(len(lags) * 0.99)] * 1000,
    }


async def project(
    store_url: str | None, directory: Path, events: int, lag_seconds: float, rate: float
) -> tuple[list[Result], dict[str, Any]]:
    lag_what = f"lag at {rate:,.0f} commands/s (reply to applied)"
    if store_url is None:
        print(f"project: writing {events:,} events, then catching up (SQLite)", file=sys.stderr)
        caught = await catch_up_sqlite(directory, events)
        catch_up = Result("project", "catch-up into the read model", int(caught["events"]), caught["seconds"])
        catch_up.unit = "events/s"
        print(f"project: {lag_what}, for {lag_seconds:g} s", file=sys.stderr)
        lagged = await lag_sqlite(directory, lag_seconds, rate)
        lag = Result("project", lag_what, int(lagged["commands"]), lag_seconds, unit="commands/s")
        lag.quantiles_ms = {0.5: lagged["lag_p50_ms"], 0.99: lagged["lag_p99_ms"]}
        # catch_up_sqlite writes the log with synchronous=NORMAL (set-up only); the lag run is durable.
        return [catch_up, lag], {**sqlite_settings(), "catch_up_log": "synchronous=normal (set-up)"}
    catch_up = await _pg_catch_up(store_url, directory, events)
    print(f"project: {lag_what}, for {lag_seconds:g} s", file=sys.stderr)
    lags = await _pg_lag(store_url, directory, lag_seconds, rate)
    lag = Result("project", lag_what, len(lags), lag_seconds, latencies_ms=[seconds * 1000 for seconds in lags])
    return [catch_up, lag], await postgres_settings(store_url)
