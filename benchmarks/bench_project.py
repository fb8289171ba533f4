"""Projection catch-up and end-to-end lag.

On SQLite these are benchmarks/projection.py's `catch_up` and `lag`. On PostgreSQL the same two
measurements run over a PostgreSQL store and read model, with the same projection written for asyncpg.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import anyio
import msgspec

from actorsrc import ANY, EventEnvelope, EventStore, NewEvent, Projection, Runtime
from actorsrc.messages import Metadata, next_event_id
from actorsrc.progress import Progress
from benchmarks.bench_store import bench_read_model, bench_store, postgres_settings, sqlite_settings
from benchmarks.bench_workloads import Result
from benchmarks.projection import measure_lag
from examples.bank import AccountCredited, AccountOpened, account

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


async def project(
    store_url: str | None, directory: Path, events: int, lag_seconds: float, rate: float
) -> tuple[list[Result], dict[str, Any]]:
    lag_what = f"lag at {rate:,.0f} commands/s (reply to applied)"
    if store_url is None:
        from benchmarks import projection

        print(f"project: writing {events:,} events, then catching up (SQLite)", file=sys.stderr)
        caught = await projection.catch_up(directory, events)
        catch_up = Result("project", "catch-up into the read model", int(caught["events"]), caught["seconds"])
        catch_up.unit = "events/s"
        print(f"project: {lag_what}, for {lag_seconds:g} s", file=sys.stderr)
        lagged = await projection.lag(directory, lag_seconds, rate)
        lag = Result("project", lag_what, int(lagged["commands"]), lag_seconds, unit="commands/s")
        lag.quantiles_ms = {0.5: lagged["lag_p50_ms"], 0.99: lagged["lag_p99_ms"]}
        # projection.py writes the catch-up log with synchronous=NORMAL (set-up only); the lag run is durable.
        return [catch_up, lag], {**sqlite_settings(), "catch_up_log": "synchronous=normal (set-up)"}
    catch_up = await _pg_catch_up(store_url, directory, events)
    print(f"project: {lag_what}, for {lag_seconds:g} s", file=sys.stderr)
    lags = await _pg_lag(store_url, directory, lag_seconds, rate)
    lag = Result("project", lag_what, len(lags), lag_seconds, latencies_ms=[seconds * 1000 for seconds in lags])
    return [catch_up, lag], await postgres_settings(store_url)
