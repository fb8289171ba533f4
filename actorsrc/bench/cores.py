"""`actorsrc bench write --cores N` (and ``python -m actorsrc.bench.cores``): the write workload on one
machine's cores, in interleaved rounds.

Each round measures, each time in fresh processes over a fresh store:
- **1 process**: a plain `Runtime` on one store (one durable SQLite file, or a fresh PostgreSQL schema);
- **N processes, own aggregates**: `Runtime.for_cores` in N processes, each driving only the aggregates
  its part owns (nothing routed): the store's and the cores' share of the gain;
- **N processes, routed**: each process drives aggregates ``t{i}`` with ``i % N == its part``, so about
  (N-1)/N of its asks go to another process, as when any worker may get any request;
- with ``--peer``, the eventsourcing peer in its best configuration (picked in a short warm-up), in this
  process, so its ratio comes from the same run.
Throughput is all commands over the wall time from the common start to the last process's end. Every
process gets callers/N callers. The report gives each configuration's median and spread over the rounds,
and each round's ratios (median and spread).
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import anyio

from actorsrc.bench import rounds as interleaving
from actorsrc.bench.children import READY, next_report, running
from actorsrc.bench.workloads import Result

MODES = ("plain", "own", "routed")
START_TIMEOUT = 120.0
WARMUP_SHARE = 5  # the peer's warm-up runs 1/5 of its commands per configuration ...
WARMUP_TIME_LIMIT = 5.0  # ... for at most this long


@dataclass(frozen=True)
class Plan:
    store_url: str | None  # None: durable SQLite files
    cores: int
    aggregates: int = 10_000
    commands: int = 10  # per aggregate
    callers: int = 1000
    events_per_command: int = 1
    peer_commands: int = 5_000

    @property
    def total(self) -> int:
        return self.aggregates * self.commands


@dataclass(frozen=True)
class ProcessReport:
    started: float  # time.time(): the processes share the machine's clock
    ended: float
    commands: int


def _child(plan: Plan, mode: str, directory: Path, schema: str, go: Event, done: Event, out: Queue[Any]) -> None:
    """One process: open its runtime, say so, wait for go, drive its share, report, wait to be told to exit."""
    try:
        out.put(anyio.run(_drive, plan, mode, directory, schema, go, done, out, backend="asyncio"))
    except BaseException as exc:  # the parent must hear of it rather than wait for a report
        out.put(repr(exc))


async def _drive(
    plan: Plan, mode: str, directory: Path, schema: str, go: Event, done: Event, out: Queue[Any]
) -> ProcessReport:
    from contextlib import AsyncExitStack

    from actorsrc import Runtime, SQLiteEventStore
    from actorsrc.bench.domain import Add, tally
    from actorsrc.cores import Cores, part_of
    from actorsrc.store.base import EventStore

    async with AsyncExitStack() as stack:
        store: EventStore | None = None
        if plan.store_url is not None:
            from actorsrc.store.postgres import PostgresEventStore

            store = await stack.enter_async_context(PostgresEventStore.open(plan.store_url, schema=schema))
        if mode == "plain":
            if store is None:
                store = await stack.enter_async_context(SQLiteEventStore.open(directory / "plain.db"))
            runtime = await stack.enter_async_context(Runtime(store, [tally]))
            ids = list(range(plan.aggregates))
            callers = plan.callers
        else:
            runtime = await stack.enter_async_context(
                Runtime.for_cores(Cores(directory, plan.cores), [tally], store=store)
            )
            part = runtime.cores_part
            assert part is not None
            if mode == "own":
                ids = [i for i in range(plan.aggregates) if part_of(tally.stream_id(f"t{i}"), plan.cores) == part]
            else:
                ids = list(range(part, plan.aggregates, plan.cores))
            callers = max(1, plan.callers // plan.cores)
        refs = [runtime.ref(tally, f"t{i}") for i in ids]
        command = Add(plan.events_per_command)
        work = iter([ref for _ in range(plan.commands) for ref in refs])  # shared: each ask goes out once
        out.put(READY)
        await anyio.to_thread.run_sync(go.wait)
        sent = 0

        async def caller() -> None:
            nonlocal sent
            for ref in work:
                await ref.ask(command)
                sent += 1

        started = time.time()
        async with anyio.create_task_group() as tg:
            for _ in range(callers):
                tg.start_soon(caller)
        ended = time.time()
        report = ProcessReport(started, ended, sent)
        out.put(report)
        await anyio.to_thread.run_sync(done.wait)
    return report


async def measure(plan: Plan, mode: str, directory: Path) -> Result:
    """One measurement of `mode` ("plain", "own" or "routed") in fresh processes over a fresh store."""
    from actorsrc.bench.stores import drop_schema, fresh_schema

    context = multiprocessing.get_context("spawn")  # fresh interpreters: nothing inherited from this loop
    go, done, out = context.Event(), context.Event(), context.Queue()
    count = 1 if mode == "plain" else plan.cores
    run_directory = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=directory))
    schema = fresh_schema("bench_cores")
    processes = [
        context.Process(target=_child, args=(plan, mode, run_directory, schema, go, done, out), daemon=True)
        for _ in range(count)
    ]
    wait = START_TIMEOUT + 600
    try:
        async with running(processes, done):
            for _ in range(count):
                await next_report(out, "starting", wait)
            go.set()
            reports: list[ProcessReport] = [await next_report(out, "driving its load", wait) for _ in range(count)]
    finally:
        if plan.store_url is not None:
            await drop_schema(plan.store_url, schema)
        shutil.rmtree(run_directory, ignore_errors=True)
    seconds = max(r.ended for r in reports) - min(r.started for r in reports)
    commands = sum(r.commands for r in reports)
    label = {"plain": "1 process", "own": f"{plan.cores} processes, own aggregates"}
    what = label.get(mode, f"{plan.cores} processes, routed")
    return Result("write", what, commands, seconds, extra={"processes": count})


async def _pick_peer(plan: Plan, directory: Path) -> Any:
    """The peer's best configuration on a short warm-up (every configuration, fewer commands)."""
    from actorsrc.bench.peers import peer_write

    aggregates, each = _peer_shape(plan, WARMUP_SHARE)
    tried = await anyio.to_thread.run_sync(
        peer_write, plan.store_url, directory, aggregates, each, plan.events_per_command, WARMUP_TIME_LIMIT
    )
    return max(tried, key=lambda pair: pair[1].rate)[0]


def _peer_shape(plan: Plan, share: int = 1) -> tuple[int, int]:
    commands = max(1, plan.peer_commands // share)
    aggregates = min(plan.aggregates, max(1, commands // plan.commands))
    return aggregates, max(1, commands // aggregates)


async def cores_write(
    plan: Plan, directory: Path, rounds: int, *, peer: bool = False
) -> tuple[list[Result], dict[str, Any], list[str]]:
    """Interleaved rounds of 1 process, N processes (own aggregates), N processes (routed) and, with `peer`,
    the eventsourcing peer's best; each configuration's median row, the ratios' medians and spreads, notes."""
    measurers: list[tuple[str, Callable[[], Awaitable[Result]]]] = [
        (mode, lambda mode=mode: measure(plan, mode, directory))  # type: ignore[misc]
        for mode in MODES
    ]
    notes: list[str] = []
    if peer:
        from actorsrc.bench.peers import peer_run, peer_version

        best = await _pick_peer(plan, directory)
        aggregates, each = _peer_shape(plan)

        async def the_peer() -> Result:
            run = await anyio.to_thread.run_sync(
                peer_run, plan.store_url, directory, best, aggregates, each, plan.events_per_command
            )
            return Result("write", f"eventsourcing ({run.config})", run.commands, run.seconds)

        measurers.append(("peer", the_peer))
        notes.append(
            f"eventsourcing {peer_version()}: best configuration in a warm-up: {best.label}; "
            f"{aggregates} aggregates x {each} commands per round, in this process"
        )
    samples = await interleaving.interleave(measurers, rounds)
    results = [interleaving.summary(found, found[0].what) for found in samples.values()]
    rates = {name: [r.rate for r in found] for name, found in samples.items()}
    ratios: dict[str, Any] = {
        f"{plan.cores} processes, own aggregates / 1 process": _ratio(rates, "own", "plain"),
        f"{plan.cores} processes, routed / 1 process": _ratio(rates, "routed", "plain"),
    }
    if peer:
        ratios["1 process / eventsourcing (best)"] = _ratio(rates, "plain", "peer")
        ratios[f"{plan.cores} processes, own aggregates / eventsourcing (best)"] = _ratio(rates, "own", "peer")
        ratios[f"{plan.cores} processes, routed / eventsourcing (best)"] = _ratio(rates, "routed", "peer")
    store = "durable SQLite (WAL, synchronous=full), one file per part" if plan.store_url is None else "PostgreSQL"
    notes += [
        f"cores: {rounds} interleaved rounds; throughput = median (every round in --json); {store}",
        f"{plan.aggregates} aggregates x {plan.commands} commands, {plan.events_per_command} event(s) each; "
        f"{plan.callers} callers in all (callers/N per process)",
        "'own aggregates': each process drives the aggregates its part owns (nothing routed); 'routed': each "
        "drives t{i} with i % N == its part, so about (N-1)/N of its asks go to another process",
    ]
    return results, ratios, notes


def _ratio(rates: dict[str, list[float]], top: str, bottom: str) -> dict[str, Any]:
    return interleaving.spread(interleaving.per_round(rates[top], rates[bottom]))


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m actorsrc.bench.cores", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--cores", type=int, default=2, help="processes (parts); default 2")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--store", default=None, help="postgresql://... (default: durable SQLite files)")
    parser.add_argument("--aggregates", type=int, default=10_000)
    parser.add_argument("--commands", type=int, default=10, help="commands per aggregate")
    parser.add_argument("--callers", type=int, default=1000)
    parser.add_argument("--no-peer", action="store_true", help="leave out the eventsourcing peer")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    from actorsrc.bench import report
    from actorsrc.bench.peers import missing_peer
    from actorsrc.bench.stores import check_store_url, postgres_settings, sqlite_settings

    plan = Plan(check_store_url(args.store), args.cores, args.aggregates, args.commands, args.callers)
    peer = not args.no_peer and missing_peer(plan.store_url) is None
    with tempfile.TemporaryDirectory(prefix="actorsrc-bench-cores-") as directory:
        results, ratios, notes = await cores_write(plan, Path(directory), args.rounds, peer=peer)
    if not peer and not args.no_peer:
        notes.append(f"no peer: {missing_peer(plan.store_url)}")
    store = sqlite_settings() if plan.store_url is None else await postgres_settings(plan.store_url)
    return {
        "workload": f"write --cores {plan.cores}",
        "results": [report.row(r) for r in results],
        "ratios": ratios,
        "notes": notes,
        "store": store,
        "versions": report.versions(*(["eventsourcing"] if peer else [])),
        "peak_rss_mb": report.peak_rss_mb(),
        "machine": report.machine(),
    }


def main(argv: list[str] | None = None) -> None:
    import json

    from actorsrc.bench import report

    args = _arguments(argv)
    out = anyio.run(_main, args)
    print(json.dumps(out, indent=2, default=str) if args.json else report.table(out))


if __name__ == "__main__":
    main(sys.argv[1:])
