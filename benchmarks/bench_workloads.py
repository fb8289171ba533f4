"""The workloads of `actorsrc bench`, each measured through the whole runtime."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from actorsrc import Runtime, SQLiteReadModel
from actorsrc.progress import Progress
from benchmarks.bench_domain import Add, tally
from benchmarks.bench_store import bench_store


@dataclass
class Result:
    workload: str
    what: str
    operations: int
    seconds: float
    unit: str = "commands/s"
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.operations / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def _drive(work: Iterator[tuple[Any, Any]], callers: int, total: int, label: str) -> tuple[float, list[float]]:
    """Send every (ref, command) from `callers` concurrent tasks; returns (seconds, latencies in ms)."""
    latencies: list[float] = []
    clock = time.perf_counter
    with Progress(total, label) as progress:

        async def caller() -> None:
            for ref, command in work:
                started = clock()
                await ref.ask(command)
                latencies.append((clock() - started) * 1000)
                progress.advance()

        started = clock()
        async with anyio.create_task_group() as tg:
            for _ in range(callers):
                tg.start_soon(caller)
        return clock() - started, latencies


async def write(
    store_url: str | None, directory: Path, aggregates: int, commands: int, callers: int, events_per_command: int
) -> tuple[Result, dict[str, Any]]:
    async with bench_store(store_url, directory, "write") as (store, settings), Runtime(store, [tally]) as runtime:
        refs = [runtime.ref(tally, f"t{i}") for i in range(aggregates)]
        command = Add(events_per_command)
        work = ((ref, command) for _ in range(commands) for ref in refs)
        seconds, latencies = await _drive(work, callers, aggregates * commands, "write")
    extra = {"aggregates": aggregates, "callers": callers, "events_per_command": events_per_command}
    return Result("write", "actorsrc", aggregates * commands, seconds, latencies_ms=latencies, extra=extra), settings


async def hot(store_url: str | None, directory: Path, total: int, callers: int) -> tuple[Result, dict[str, Any]]:
    async with bench_store(store_url, directory, "hot") as (store, settings), Runtime(store, [tally]) as runtime:
        ref = runtime.ref(tally, "hot")
        seconds, latencies = await _drive(((ref, Add()) for _ in range(total)), callers, total, "hot")
    return Result("hot", "actorsrc", total, seconds, latencies_ms=latencies, extra={"callers": callers}), settings


async def open_loop_latency(
    store_url: str | None, directory: Path, rate: float, seconds: float, aggregates: int
) -> Result:
    """Commands started on a fixed schedule (not waiting for replies): latency at a given load.

    The aggregates are recovered first, so the figure is the steady state; the load generator starts
    plain asyncio tasks (anyio's start_soon costs ~36 us here, which would be the bottleneck at 15k/s).
    """
    latencies: list[float] = []
    async with bench_store(store_url, directory, "latency") as (store, _), Runtime(store, [tally]) as runtime:
        refs = [runtime.ref(tally, f"l{i}") for i in range(aggregates)]
        await _drive(((ref, Add()) for ref in refs), 500, aggregates, "latency: warming up")

        async def one(n: int) -> None:
            started = time.perf_counter()
            await refs[n % aggregates].ask(Add())
            latencies.append((time.perf_counter() - started) * 1000)

        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()
        interval, sent = 1.0 / rate, 0
        start = time.perf_counter()
        while (now := time.perf_counter()) - start < seconds:
            due = start + sent * interval
            if now < due:
                await asyncio.sleep(due - now)
            while sent * interval <= time.perf_counter() - start:  # catch up if the loop fell behind
                task = loop.create_task(one(sent))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
        if tasks:
            await asyncio.wait(tasks)
        elapsed = time.perf_counter() - start
    return Result("write", f"actorsrc, open loop at {rate:,.0f}/s", len(latencies), elapsed, latencies_ms=latencies)


async def saga(directory: Path, orders: int, callers: int) -> Result:
    """The shop end to end: place orders; the fulfilment saga captures, marks paid, ships each one."""
    from examples.shop.app import open_shop, settle
    from examples.shop.domain import OrderLine, PlaceOrder, order

    async with open_shop(directory / "shop.db", directory / "shop-read.db") as (_, read_model, runtime):
        line = (OrderLine("sku", 1, 1000),)
        work = ((runtime.ref(order, f"o{n}"), PlaceOrder(f"c{n % 100}", line)) for n in range(orders))
        started = time.perf_counter()
        _, latencies = await _drive(work, callers, orders, "saga: placing")
        await settle(runtime, timeout=600)
        seconds = time.perf_counter() - started
        shipped = await _count_shipped(read_model)
    if shipped != orders:
        raise AssertionError(f"only {shipped} of {orders} orders were shipped")
    return Result(
        "saga",
        "actorsrc, placed to shipped",
        orders,
        seconds,
        unit="orders/s",
        latencies_ms=latencies,
        extra={"note": "latencies are of placing; the rate is to all shipped"},
    )


async def _count_shipped(read_model: SQLiteReadModel) -> int:
    rows = await read_model.query("SELECT count(*) FROM orders_by_customer WHERE status = 'shipped'")
    return int(rows[0][0])


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


Measure = Callable[[], Awaitable[Result]]
