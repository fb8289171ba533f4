"""`actorsrc bench write|hot --compare`: actorsrc and the peer side by side in time.

1. Warm-up: actorsrc once, then every peer configuration on a small workload; the fastest is "the
   peer's best" (and the fastest with one thread, for the one-caller pair).
2. Interleaved rounds (`rounds.interleave`): actorsrc, the peer's best, actorsrc with the other GC
   set-up, actorsrc with one caller, the peer with one thread (when its best has more). Every ratio is
   taken within a round; the report gives each ratio's median and spread.
3. Once, after the rounds (write only): the raw ceilings, the open loop at half of the median peak, and
   the caller sweep.
Every measurement writes to a fresh database (a new file or schema), removed afterwards.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from actorsrc.bench import report, rounds, sweep, workloads
from actorsrc.bench.gcmode import describe
from actorsrc.bench.peers import PeerConfig, PeerRun, peer_run, peer_version, peer_write
from actorsrc.bench.workloads import LATENCY_TARGET_MS, Result

WARMUP_SHARE = 5  # the warm-up runs 1/5 of the peer's commands ...
WARMUP_TIME_LIMIT = 5.0  # ... for at most this long per configuration

OURS = "actorsrc"
PEER = "eventsourcing, best configuration"
OTHER_GC = "actorsrc, other GC"
ONE_CALLER = "actorsrc, 1 caller"
PEER_ONE_THREAD = "eventsourcing, 1 thread"

Measure = Callable[[], Awaitable[Result]]


@dataclass
class Compared:
    results: list[Result] = field(default_factory=list)
    ratios: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    store: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # top-level report entries (the sweep)
    peak_rss_mb_before_peer: float | None = None


@dataclass(frozen=True)
class Shape:
    """The peer's workload, which the one-caller pair shares: `aggregates` x `each` commands."""

    aggregates: int
    each: int
    events: int

    @staticmethod
    def of(args: argparse.Namespace, scale: int = 1) -> Shape:
        commands = max(1, args.peer_commands // scale)
        if args.workload == "hot":
            return Shape(1, commands, 1)
        aggregates = min(args.aggregates, max(1, commands // args.commands))
        return Shape(aggregates, max(1, commands // aggregates), args.events_per_command)


class _Runs:
    """Each measurement in a directory of its own, deleted afterwards (the SQLite files add up)."""

    def __init__(self, args: argparse.Namespace, directory: Path) -> None:
        self.args = args
        self.directory = directory
        self.counter = itertools.count()
        self.store: dict[str, Any] = {}

    async def ours(self, callers: int, default_gc: bool, shape: Shape | None = None) -> Result:
        """The workload (or, given a `shape`, the peer's) through the whole runtime."""
        args, run_directory = self.args, self.fresh()
        try:
            if args.workload == "hot":
                total = shape.each if shape else args.total
                result, store = await workloads.hot(args.store, run_directory, total, callers, default_gc=default_gc)
            else:
                aggregates, each = (shape.aggregates, shape.each) if shape else (args.aggregates, args.commands)
                result, store = await workloads.write(
                    args.store, run_directory, aggregates, each, callers, args.events_per_command, default_gc=default_gc
                )
        finally:
            shutil.rmtree(run_directory, ignore_errors=True)
        self.store = self.store or store
        return result

    async def peer(self, config: PeerConfig, shape: Shape) -> Result:
        run_directory = self.fresh()
        try:
            run: PeerRun = await anyio.to_thread.run_sync(
                peer_run, self.args.store, run_directory, config, shape.aggregates, shape.each, shape.events
            )
        finally:
            shutil.rmtree(run_directory, ignore_errors=True)
        return _peer_result(self.args.workload, run)

    def fresh(self) -> Path:
        path = self.directory / f"run-{next(self.counter)}"
        path.mkdir()
        return path


def _peer_result(workload: str, run: PeerRun) -> Result:
    what = f"eventsourcing ({run.config})"
    return Result(workload, what, run.commands, run.seconds, latencies_ms=run.latencies_ms)


async def _warm_up(runs: _Runs, args: argparse.Namespace) -> tuple[list[Result], PeerConfig, PeerConfig]:
    """Rows for every peer configuration on the small workload, the best, and the best with one thread."""
    small = Shape.of(args, WARMUP_SHARE)
    await runs.ours(args.callers, args.default_gc, small)  # imports, first files: not on a measured clock
    tried: list[tuple[PeerConfig, PeerRun]] = await anyio.to_thread.run_sync(
        peer_write, args.store, runs.directory, small.aggregates, small.each, small.events, WARMUP_TIME_LIMIT
    )
    rows = [_peer_result(args.workload, run) for _, run in tried]
    for row in rows:
        row.what = f"  warm-up: {row.what}"
    best = max(tried, key=lambda pair: pair[1].rate)[0]
    one_thread = max((pair for pair in tried if pair[0].threads == 1), key=lambda pair: pair[1].rate)[0]
    return rows, best, one_thread


def _ratio(samples: dict[str, list[Result]], top: str, *bottom: str) -> dict[str, Any]:
    """`top` / `bottom` round by round; with several bottoms, the fastest of them in each round (the peer's
    best at full size is not always the warm-up's pick: its one-thread row may beat it)."""
    fastest = [max(found) for found in zip(*([r.rate for r in samples[name]] for name in bottom), strict=True)]
    return rounds.spread(rounds.per_round([r.rate for r in samples[top]], fastest))


def _p50_ratio(samples: dict[str, list[Result]], peer: str, ours: str) -> dict[str, Any]:
    def p50s(name: str) -> list[float]:
        return [r.percentile(0.5) or 0.0 for r in samples[name]]

    return rounds.spread(rounds.per_round(p50s(peer), p50s(ours)))


async def compare(args: argparse.Namespace, directory: Path) -> Compared:
    out = Compared()
    runs = _Runs(args, directory)
    shape = Shape.of(args)
    warm_rows, best, one_thread = await _warm_up(runs, args)
    headline_gc: bool = args.default_gc

    async def headline() -> Result:
        result = await runs.ours(args.callers, headline_gc)
        if out.peak_rss_mb_before_peer is None:  # the peer's full-size runs come after this one
            out.peak_rss_mb_before_peer = report.peak_rss_mb()
        return result

    measurers: list[tuple[str, Measure]] = [
        (OURS, headline),
        (PEER, lambda: runs.peer(best, shape)),
        (OTHER_GC, lambda: runs.ours(args.callers, not headline_gc)),
        (ONE_CALLER, lambda: runs.ours(1, headline_gc, shape)),
    ]
    peer_one = PEER if best.threads == 1 else PEER_ONE_THREAD
    if peer_one == PEER_ONE_THREAD:
        measurers.append((PEER_ONE_THREAD, lambda: runs.peer(one_thread, shape)))
    samples = await rounds.interleave(measurers, args.rounds)

    tuned, default = (OTHER_GC, OURS) if headline_gc else (OURS, OTHER_GC)
    out.results = [
        rounds.summary(samples[OURS], OURS),
        rounds.summary(samples[PEER], f"{samples[PEER][0].what}, best configuration"),
        rounds.summary(samples[OTHER_GC], f"actorsrc, {describe(not headline_gc)}"),
        rounds.summary(samples[ONE_CALLER], ONE_CALLER),
    ]
    if peer_one == PEER_ONE_THREAD:
        what = f"{samples[PEER_ONE_THREAD][0].what}, for the one-caller pair"
        out.results.append(rounds.summary(samples[PEER_ONE_THREAD], what))
    out.results += warm_rows
    out.ratios = {
        "actorsrc / eventsourcing (best configuration), commands/s": _ratio(samples, OURS, PEER, peer_one),
        "actorsrc with CPython's default GC / tuned GC, commands/s": _ratio(samples, default, tuned),
        "one caller: actorsrc / eventsourcing (1 thread), commands/s": _ratio(samples, ONE_CALLER, peer_one),
        "one caller: eventsourcing p50 / actorsrc p50 (> 1: actorsrc answers sooner)": _p50_ratio(
            samples, peer_one, ONE_CALLER
        ),
    }
    out.store = runs.store
    median_rate = out.results[0].rate
    if args.workload == "write":
        await _after_rounds(args, runs, out, median_rate)
    out.notes += _notes(args, shape, best, headline_gc, samples[PEER][0].operations)
    return out


async def _after_rounds(args: argparse.Namespace, runs: _Runs, out: Compared, median_rate: float) -> None:
    """Write only, once: the ceilings (against the median), the open loop at half of it, the sweep."""
    from actorsrc.bench.ceiling import raw_ceilings

    rows_each = args.commands * args.events_per_command
    total = args.aggregates * rows_each
    ceiling_directory = runs.fresh()
    for index, (what, rate) in enumerate(await raw_ceilings(args.store, ceiling_directory, args.aggregates, rows_each)):
        out.results.append(Result("write", what, total, total / rate, unit="events/s"))
        name = "raw driver ceiling" if index == 0 else what.split(" (")[0] + " ceiling"
        out.ratios[f"actorsrc events/s / {name}"] = median_rate * args.events_per_command / rate
    shutil.rmtree(ceiling_directory, ignore_errors=True)

    latency_directory = runs.fresh()
    latency = await workloads.open_loop_latency(
        args.store,
        latency_directory,
        median_rate / 2,
        args.latency_seconds,
        args.aggregates,
        default_gc=args.default_gc,
    )
    shutil.rmtree(latency_directory, ignore_errors=True)
    out.results.append(latency)
    verdict = "met" if latency.extra["p99_target_met"] else "NOT met"
    out.notes.append(f"open loop at half of the median peak: p99 < {LATENCY_TARGET_MS:.0f} ms {verdict}")

    sizes = sweep.QUICK if args.quick else sweep.FULL
    points = await sweep.sweep(
        args.store, runs.fresh(), args.callers, args.commands, args.events_per_command, args.rounds, sizes,
        args.default_gc,
    )  # fmt: skip
    out.results += points
    curve = [(row.extra["callers"], row.rate) for row in points]
    levels_off = sweep.level_off(curve)
    out.extra["sweep"] = {
        "level_off_callers": levels_off,
        "level_off_share": sweep.LEVEL_OFF,
        "points": [{"callers": callers, "throughput": rate} for callers, rate in curve],
    }
    out.notes.append(
        f"caller sweep ({args.rounds} pass(es), median per point): throughput levels off at {levels_off} callers"
        f" (the first count reaching {sweep.LEVEL_OFF:.0%} of the sweep's best, {max(r for _, r in curve):,.0f}/s)"
    )


def _notes(args: argparse.Namespace, shape: Shape, best: PeerConfig, headline_gc: bool, peer_ops: int) -> list[str]:
    few = "" if args.rounds >= rounds.FIGURES_NEED_ROUNDS else f" (fewer than {rounds.FIGURES_NEED_ROUNDS}: no figure)"
    notes = [
        f"{args.rounds} interleaved round(s){few}: actorsrc, the peer's best, actorsrc with the other GC set-up,"
        " actorsrc with 1 caller, [the peer with 1 thread]; each ratio is taken within a round, then its median"
        " (min-max over the rounds); rows show median throughput and each quantile's median over the rounds;"
        " the headline ratio divides by the faster of the peer's rows in each round",
        f"actorsrc rows: {describe(headline_gc)} unless the row says otherwise; the peer runs under the"
        f" process's own GC thresholds {list(gc.get_threshold())}",
        f"warm-up: every peer configuration on 1/{WARMUP_SHARE} of its commands (at most {WARMUP_TIME_LIMIT:.0f} s"
        f" each) picks the best: {best.label}",
        f"eventsourcing {peer_version()}: {peer_ops} commands over {shape.aggregates} aggregate(s) a round"
        " (repository.get, the aggregate's method, save; opening not timed)",
        f"one caller: actorsrc with callers=1 on the peer's workload ({shape.aggregates} aggregate(s) x"
        f" {shape.each}), against the peer's best configuration with 1 thread",
    ]
    if args.workload == "hot" and args.store:
        notes.append("peer on one aggregate: 8 threads would only conflict, so 1 thread")
    return notes
