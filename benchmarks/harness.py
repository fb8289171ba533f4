"""`actorsrc bench`: the workloads, the peers, and the report (a table, or JSON).

    actorsrc bench write --compare           # 10,000 aggregates, against eventsourcing and the raw ceiling
    actorsrc bench hot --compare             # one aggregate under 200 concurrent callers
    actorsrc bench replay --compare          # rehydrating 10,000 events, with and without snapshots
    actorsrc bench project                   # projection catch-up and end-to-end lag
    actorsrc bench saga                      # the shop's process manager, end to end
    actorsrc bench write --plot docs/throughput.png
    ... --store postgresql://user@127.0.0.1/db   # on PostgreSQL (a fresh schema, dropped afterwards)

Figures drift with the machine; ratios measured in the same run do not. Results go to stdout;
progress goes to stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
import structlog

import actorsrc
from actorsrc.cli_args import positive_int
from actorsrc.tuning import tune_gc
from benchmarks import bench_workloads as workloads
from benchmarks.bench_store import BadStoreUrl, check_store_url
from benchmarks.bench_workloads import Result
from benchmarks.peers import peer_available, peer_write, raw_ceiling

WORKLOADS = ("write", "hot", "replay", "project", "saga")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--store", default=None, help="postgresql://... (default: a durable SQLite file)")
    parser.add_argument("--compare", action="store_true", help="also run the peer and the raw ceiling")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--plot", type=Path, default=None, help="write: plot throughput against callers (PNG)")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (pip install -e '.[fast]')")
    parser.add_argument("--default-gc", action="store_true", help="keep CPython's GC thresholds")
    parser.add_argument("--aggregates", type=positive_int, default=10_000)
    parser.add_argument("--commands", type=positive_int, default=10, help="per aggregate")
    parser.add_argument("--callers", type=positive_int, default=None, help="concurrent callers")
    parser.add_argument("--events-per-command", type=positive_int, default=1)
    parser.add_argument("--total", type=positive_int, default=50_000, help="hot: commands in all")
    parser.add_argument("--peer-commands", type=positive_int, default=5_000, help="commands the peer runs")
    parser.add_argument("--length", type=positive_int, default=10_000, help="replay: events per aggregate")
    parser.add_argument("--events", type=positive_int, default=1_000_000, help="project: events to catch up on")
    parser.add_argument("--lag-seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=2000.0, help="project: commands/s during the lag run")
    parser.add_argument("--orders", type=positive_int, default=2000, help="saga: orders to place")
    parser.add_argument("--latency-seconds", type=float, default=5.0, help="write: open-loop run at half peak")


def run(args: argparse.Namespace) -> int:
    try:
        check_store_url(args.store)
    except BadStoreUrl as exc:
        print(f"actorsrc bench: {exc}", file=sys.stderr)
        return 2
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    if not args.default_gc:
        tune_gc()  # process-wide, so the peer in the same run gets it too
    with tempfile.TemporaryDirectory() as tmp:
        report = anyio.run(_measure, args, Path(tmp), backend="asyncio", backend_options={"use_uvloop": args.uvloop})
    report["settings"]["gc_thresholds"] = list(gc.get_threshold())
    report["settings"]["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(report, indent=2) if args.json else _table(report))
    return 0


async def _measure(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "python": platform.python_version(),
        "actorsrc": actorsrc.__version__,
        "sqlite": sqlite3.sqlite_version,
        "uvloop": args.uvloop,
    }
    rows: list[dict[str, Any]] = []
    ratios: dict[str, float] = {}
    if args.workload in ("write", "hot"):
        await _write_or_hot(args, directory, settings, rows, ratios)
    elif args.workload == "replay":
        await _replay(args, directory, rows, ratios)
    elif args.workload == "project":
        from benchmarks.projection import catch_up, lag

        caught = await catch_up(directory, args.events)
        rows.append(
            _row(Result("project", "catch-up into SQLite", int(caught["events"]), caught["seconds"], unit="events/s"))
        )
        lagged = await lag(directory, args.lag_seconds, args.rate)
        rows.append(
            {
                "workload": "project",
                "what": f"lag at {args.rate:,.0f} commands/s",
                "rate": None,
                "unit": "",
                "p50_ms": lagged["lag_p50_ms"],
                "p95_ms": None,
                "p99_ms": lagged["lag_p99_ms"],
            }
        )
    else:
        rows.append(_row(await workloads.saga(directory, args.orders, args.callers or 200)))
    return {"workload": args.workload, "results": rows, "ratios": ratios, "settings": settings}


async def _write_or_hot(
    args: argparse.Namespace,
    directory: Path,
    settings: dict[str, Any],
    rows: list[dict[str, Any]],
    ratios: dict[str, float],
) -> None:
    if args.workload == "write":
        callers = args.callers or 1000
        ours, store_settings = await workloads.write(
            args.store, directory, args.aggregates, args.commands, callers, args.events_per_command
        )
        half = ours.rate / 2
        latency = await workloads.open_loop_latency(args.store, directory, half, args.latency_seconds, args.aggregates)
        rows += [_row(ours), _row(latency)]
        if args.plot is not None:
            await _plot(args, directory)
    else:
        ours, store_settings = await workloads.hot(args.store, directory, args.total, args.callers or 200)
        rows.append(_row(ours))
    settings["store"] = store_settings
    if not args.compare:
        return
    missing = peer_available()
    if missing is not None:
        print(f"actorsrc bench: the peer is missing ({missing}); pip install -e '.[bench]'", file=sys.stderr)
    else:
        import eventsourcing

        settings["eventsourcing"] = eventsourcing.__version__ if hasattr(eventsourcing, "__version__") else "9.5.6"
        peer_aggregates, each = (max(1, args.peer_commands // args.commands), args.commands + 1)
        if args.workload == "hot":
            peer_aggregates, each = 1, args.peer_commands + 1
        runs = await anyio.to_thread.run_sync(peer_write, args.store, directory, peer_aggregates, each)
        for peer in runs:
            rows.append(_row(Result(args.workload, f"eventsourcing ({peer.config})", peer.commands, peer.seconds)))
        best = max(runs, key=lambda r: r.rate)
        ratios["actorsrc / eventsourcing (best)"] = ours.rate / best.rate
    if args.workload == "write":
        what, rate = await raw_ceiling(args.store, directory, args.aggregates, args.commands * args.events_per_command)
        rows.append(
            {
                "workload": "write",
                "what": what,
                "rate": rate,
                "unit": "rows/s",
                "p50_ms": None,
                "p95_ms": None,
                "p99_ms": None,
            }
        )
        ratios["actorsrc events/s / raw ceiling"] = ours.rate * args.events_per_command / rate


async def _replay(
    args: argparse.Namespace, directory: Path, rows: list[dict[str, Any]], ratios: dict[str, float]
) -> None:
    from benchmarks import replay

    results, _ = await replay.compare(args.length, 5, 50, directory)
    for r in results:
        if not args.compare and r.name.startswith("eventsourcing"):
            continue
        rows.append(
            {
                "workload": "replay",
                "what": r.name,
                "rate": r.events_per_second,
                "unit": "events/s",
                "p50_ms": r.median_s * 1000,
                "p95_ms": None,
                "p99_ms": None,
            }
        )
        if r.ratio is not None and args.compare and r.compared_with:
            ratios[f"{r.name} / peer"] = r.ratio


async def _plot(args: argparse.Namespace, directory: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("actorsrc bench: --plot needs matplotlib: pip install -e '.[bench]'", file=sys.stderr)
        return
    points: list[tuple[int, float]] = []
    for callers in (1, 10, 100, 1000, 4000):
        total = min(40_000, 200 * callers)  # one caller waits for each fsync: keep its run short
        aggregates = min(10_000, total)
        run_directory = directory / f"plot-{callers}"
        run_directory.mkdir()
        result, _ = await workloads.write(args.store, run_directory, aggregates, total // aggregates, callers, 1)
        points.append((callers, result.rate))
    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.plot([p[0] for p in points], [p[1] for p in points], marker="o")
    axes.set_xscale("log")
    axes.set_xlabel("concurrent callers")
    axes.set_ylabel("commands/s")
    axes.set_title("actorsrc write throughput, durable SQLite")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.plot, dpi=110)


def _row(result: Result) -> dict[str, Any]:
    return {
        "workload": result.workload,
        "what": result.what,
        "rate": result.rate,
        "unit": result.unit,
        "operations": result.operations,
        "seconds": result.seconds,
        "p50_ms": result.percentile(0.5),
        "p95_ms": result.percentile(0.95),
        "p99_ms": result.percentile(0.99),
        **result.extra,
    }


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _table(report: dict[str, Any]) -> str:
    lines = [f"{'workload':8} {'what':78} {'rate':>12} {'unit':10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"]
    for row in report["results"]:
        lines.append(
            f"{row['workload']:8} {row['what'][:78]:78} {_fmt(row['rate'], ',.0f'):>12} {row['unit']:10} "
            f"{_fmt(row['p50_ms'], '.1f'):>8} {_fmt(row['p95_ms'], '.1f'):>8} {_fmt(row['p99_ms'], '.1f'):>8}"
        )
    for name, ratio in report["ratios"].items():
        lines.append(f"ratio  {name}: {ratio:.2f}")
    lines.append("settings: " + json.dumps(report["settings"]))
    return "\n".join(lines)
