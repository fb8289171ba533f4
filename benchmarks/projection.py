"""Projection catch-up throughput and end-to-end lag, on SQLite.

    python -m benchmarks.projection --events 1000000 --lag-seconds 10 --rate 2000

catch-up: E events (bank credits over 1,000 accounts) are written first, then a runtime starts with a
projection that upserts a balance per event into an SQLite read model; the figure is events/s until
its checkpoint reaches the end of the log.
lag: commands go in at a steady rate; for each, the time from its reply (events durable) until the
projection has applied them (`wait_for` returns): median and p99.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import msgspec
import structlog

from actorsrc import ANY, EventEnvelope, NewEvent, Projection, Runtime, SQLiteEventStore, SQLiteReadModel
from actorsrc.messages import Metadata, next_event_id
from examples.bank import AccountCredited, AccountOpened, Credit, OpenAccount, account


def _setup(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, balance INTEGER NOT NULL)")


def _handle(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
    event = envelope.event
    amount = event.amount if isinstance(event, AccountCredited) else 0
    db.execute(
        "INSERT INTO balances (account, balance) VALUES (?, ?)"
        " ON CONFLICT (account) DO UPDATE SET balance = balance + excluded.balance",
        (envelope.stream_id, amount),
    )


balances = Projection(name="bench_balances", handle=_handle, setup=_setup, aggregates=[account], batch_size=2000)


async def _write_log(store: SQLiteEventStore, events: int, accounts: int = 1000) -> None:
    opened = msgspec.json.encode(AccountOpened("bench", 0))
    credited = msgspec.json.encode(AccountCredited(1))
    per_account = events // accounts
    chunk = 100

    async def fill(n: int) -> None:
        stream = f"account-b{n}"
        written = 0
        while written < per_account:
            count = min(chunk, per_account - written)
            batch = [
                NewEvent(
                    "AccountOpened" if written + i == 0 else "AccountCredited",
                    opened if written + i == 0 else credited,
                    Metadata(next_event_id()),
                )
                for i in range(count)
            ]
            await store.append(stream, batch, ANY)
            written += count

    async with anyio.create_task_group() as tg:
        for n in range(accounts):
            tg.start_soon(fill, n)


async def catch_up(directory: Path, events: int) -> dict[str, float]:
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


async def lag(directory: Path, seconds: float, rate: float) -> dict[str, float]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--lag-seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=2000.0, help="commands/s during the lag measurement")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    with tempfile.TemporaryDirectory() as tmp:
        result = {
            "catch_up": anyio.run(catch_up, Path(tmp), args.events),
            "lag": anyio.run(lag, Path(tmp), args.lag_seconds, args.rate),
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    c, g = result["catch_up"], result["lag"]
    print(f"catch-up: {c['events']:,.0f} events in {c['seconds']:.2f} s = {c['events_per_second']:,.0f} events/s")
    print(
        f"lag at {g['rate_per_second']:,.0f} commands/s ({g['commands']:,.0f} commands): "
        f"p50 {g['lag_p50_ms']:.1f} ms, p99 {g['lag_p99_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
