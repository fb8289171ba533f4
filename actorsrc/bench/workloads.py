"""The write workloads of `actorsrc bench` (many aggregates, one hot aggregate, open-loop latency),
each measured through the whole runtime, and the `Result` every workload reports."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from actorsrc import AggregateRef, Runtime
from actorsrc.bench.domain import Add, tally
from actorsrc.bench.gcmode import gc_mode, runtime_options
from actorsrc.bench.stores import bench_store
from actorsrc.progress import Progress

LATENCY_TARGET_MS = 50.0  # p99 at half of peak throughput


@dataclass
class Result:
    workload: str
    what: str
    operations: int
    seconds: float
    unit: str = "commands/s"
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    quantiles_ms: dict[float, float] = field(default_factory=dict)  # when only summaries are known
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.operations / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return self.quantiles_ms.get(q)
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def drive(
    work: Iterator[tuple[AggregateRef[Any, Any, Any], Any]], callers: int, total: int, label: str
) -> tuple[float, list[float]]:
    """Send every (ref, command) from `callers` concurrent tasks; returns (seconds, latencies in ms)."""
    latencies: list[float] = []
    clock = time.perf_counter
    with Progress(total, label) as progress:

        async def caller() -> None:
            for ref, command in work:  # one shared iterator: each command goes out exactly once
                started = clock()
                await ref.ask(command)
                latencies.append((clock() - started) * 1000)
                progress.advance()

        started = clock()
        async with anyio.create_task_group() as tg:
            for _ in range(callers):
                tg.start_soon(caller)
        return clock() - started, latencies


@asynccontextmanager
async def tally_runtime(
    store_url: str | None, directory: Path, name: str, default_gc: bool | None
) -> AsyncIterator[tuple[Runtime, dict[str, Any]]]:
    """A Runtime of tallies on a fresh store, and the store's settings. `default_gc`: None leaves the
    collector as the process has it; True/False sets it up (see `gcmode`) for the Runtime's whole life."""
    with gc_mode(default_gc):
        async with (
            bench_store(store_url, directory, name) as (store, settings),
            Runtime(store, [tally], **runtime_options(default_gc)) as runtime,
        ):
            yield runtime, settings


async def write(
    store_url: str | None,
    directory: Path,
    aggregates: int,
    commands: int,
    callers: int,
    events_per_command: int,
    *,
    default_gc: bool | None = None,
) -> tuple[Result, dict[str, Any]]:
    """`commands` commands to each of `aggregates` tallies, round-robin, from `callers` tasks."""
    async with tally_runtime(store_url, directory, "write", default_gc) as (runtime, settings):
        refs = [runtime.ref(tally, f"t{i}") for i in range(aggregates)]
        command = Add(events_per_command)
        work = ((ref, command) for _ in range(commands) for ref in refs)
        thresholds = list(gc.get_threshold())
        seconds, latencies = await drive(work, callers, aggregates * commands, f"write, {callers} callers")
    extra = {
        "aggregates": aggregates,
        "callers": callers,
        "events_per_command": events_per_command,
        "gc_thresholds": thresholds,
    }
    return Result("write", "actorsrc", aggregates * commands, seconds, latencies_ms=latencies, extra=extra), settings


async def hot(
    store_url: str | None, directory: Path, total: int, callers: int, *, default_gc: bool | None = None
) -> tuple[Result, dict[str, Any]]:
    """`total` commands to one aggregate from `callers` tasks: its actor batches what queues up."""
    async with tally_runtime(store_url, directory, "hot", default_gc) as (runtime, settings):
        ref = runtime.ref(tally, "hot")
        thresholds = list(gc.get_threshold())
        seconds, latencies = await drive(((ref, Add()) for _ in range(total)), callers, total, "hot")
    extra = {"callers": callers, "gc_thresholds": thresholds}
    return Result("hot", "actorsrc", total, seconds, latencies_ms=latencies, extra=extra), settings


async def open_loop(rate: float, seconds: float, one: Callable[[int], Coroutine[Any, Any, None]], label: str) -> float:
    """Start `one(n)` every 1/rate s for `seconds`, never waiting for earlier ones (an open loop: a slow
    reply cannot slow the offered load down), then wait for all. Returns the seconds from start to the end."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    failures: list[BaseException] = []

    def finished(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            failures.append(exc)

    total = max(1, round(rate * seconds))
    with Progress(total, label) as progress:
        start = time.perf_counter()
        for n in range(total):
            due = start + n / rate
            if (now := time.perf_counter()) < due:
                await asyncio.sleep(due - now)
            # Plain tasks: anyio's start_soon costs ~36 us here, which would be the bottleneck at 15k/s.
            task = loop.create_task(one(n))
            tasks.add(task)
            task.add_done_callback(finished)
            progress.advance()
        if tasks:
            await asyncio.wait(tasks)
        elapsed = time.perf_counter() - start
    if failures:
        raise failures[0]
    return elapsed


async def open_loop_latency(
    store_url: str | None,
    directory: Path,
    rate: float,
    seconds: float,
    aggregates: int,
    *,
    default_gc: bool | None = None,
) -> Result:
    """Commands started on a fixed schedule (not waiting for replies): latency at a given load.

    The aggregates are recovered first, so the figure is the steady state.
    """
    latencies: list[float] = []
    async with tally_runtime(store_url, directory, "latency", default_gc) as (runtime, _):
        refs = [runtime.ref(tally, f"l{i}") for i in range(aggregates)]
        await drive(((ref, Add()) for ref in refs), 500, aggregates, "latency: warming up")

        async def one(n: int) -> None:
            started = time.perf_counter()
            await refs[n % aggregates].ask(Add())
            latencies.append((time.perf_counter() - started) * 1000)

        elapsed = await open_loop(rate, seconds, one, f"latency: open loop at {rate:,.0f}/s")
    result = Result("write", f"actorsrc, open loop at {rate:,.0f}/s (half of peak)", len(latencies), elapsed)
    result.latencies_ms = latencies
    p99 = result.percentile(0.99)
    met = p99 is not None and p99 < LATENCY_TARGET_MS
    result.extra = {"target_rate": rate, "p99_target_ms": LATENCY_TARGET_MS, "p99_target_met": met}
    return result
