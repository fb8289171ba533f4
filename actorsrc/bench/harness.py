"""`actorsrc bench`: the workloads, the peers, and the report (a table, or JSON).

    actorsrc bench write --compare           # 10,000 aggregates, against eventsourcing and the raw ceilings
    actorsrc bench hot --compare             # one aggregate under 200 concurrent callers
    ... --compare --rounds 5                 # write/hot: interleaved rounds (default 3; figures need >= 3)
    actorsrc bench replay --compare          # rehydrating 10,000 events, with and without snapshots
    actorsrc bench project                   # projection catch-up and end-to-end lag
    actorsrc bench saga                      # the shop's process manager, end to end (needs a checkout)
    actorsrc bench write --plot docs/throughput.png
    actorsrc bench write --quick             # small sizes, a few seconds: a smoke test
    ... --store postgresql://user@127.0.0.1/db   # on PostgreSQL (fresh schemas, dropped afterwards)
    actorsrc bench write --cores 2 --compare          # 1 process, then 2 (own aggregates, and routed), and the peer
    actorsrc bench write --cluster 3 --store postgresql://... --nats nats://127.0.0.1:4222
                                             # 1, 2 and 3 node processes in a cluster (see actorsrc.bench.cluster)

--compare and --plot need the `bench` extra (pip install 'actorsrc[bench]'). Figures drift with the
machine; ratios measured in the same run do not. The report goes to stdout, progress to stderr.
write/hot --compare interleave actorsrc and the peer in rounds (see actorsrc.bench.compare): each ratio
comes with its median and spread over the rounds, next to the default-GC and one-caller figures and,
for write, a caller sweep.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio

from actorsrc.bench import report
from actorsrc.bench.extra import MissingExtra
from actorsrc.bench.gcmode import CPYTHON_GC_THRESHOLDS
from actorsrc.bench.peers import missing_peer
from actorsrc.bench.stores import BadStoreUrl, check_store_url
from actorsrc.bench.workloads import LATENCY_TARGET_MS, Result
from actorsrc.cli.args import positive_float, positive_int

WORKLOADS = ("write", "hot", "replay", "project", "saga")
COMPARED = ("write", "hot", "replay")  # the workloads --compare runs the peer for
DEFAULT_CALLERS = {"write": 1000, "hot": 200, "saga": 200}
QUICK_CALLERS = {"write": 50, "hot": 50, "saga": 10}
# Each size: (default, --quick). --quick sizes finish in a few seconds: a smoke test, not a measurement.
SIZES: dict[str, tuple[int | float, int | float]] = {
    "aggregates": (10_000, 200),
    "commands": (10, 5),
    "events_per_command": (1, 1),
    "total": (50_000, 2_000),
    "peer_commands": (5_000, 200),
    "latency_seconds": (5.0, 0.5),
    "length": (10_000, 1_000),
    "events": (1_000_000, 5_000),
    "lag_seconds": (10.0, 0.5),
    "rate": (2000.0, 200.0),
    "orders": (2000, 50),
}
EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--store", default=None, help="postgresql://... (default: a durable SQLite file in a temp dir)")
    parser.add_argument("--compare", action="store_true", help="write/hot/replay: also the peer and the raw ceiling")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--plot", type=Path, default=None, help="write: plot throughput against callers (PNG)")
    parser.add_argument("--quick", action="store_true", help="small sizes that finish in seconds (smoke tests, CI)")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (pip install 'actorsrc[fast]')")
    parser.add_argument("--default-gc", action="store_true", help="CPython's GC (Runtime(tune_gc=False))")
    parser.add_argument("--cluster", type=positive_int, default=None, metavar="N", help="write: 1..N node processes")
    parser.add_argument("--nats", default=None, help="--cluster: NATS URL (default: $ACTORSRC_TEST_NATS)")
    parser.add_argument(
        "--cores", type=positive_int, default=None, metavar="N", help="write: 1 process, then N (actorsrc.cores)"
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=3,
        help="--cluster, write/hot --compare: interleaved rounds (default: 3; figures need >= 3)",
    )
    group = parser.add_argument_group("workload sizes (default, then --quick's)")

    def size(name: str, kind: Any, what: str) -> None:
        default, quick = SIZES[name]
        flag = "--" + name.replace("_", "-")
        group.add_argument(flag, type=kind, default=None, help=f"{what} ({default:,}; --quick {quick:,})")

    size("aggregates", positive_int, "write: aggregates")
    size("commands", positive_int, "write: commands per aggregate")
    group.add_argument(
        "--callers", type=positive_int, default=None, help="write 1000, hot 200, saga 200 (--quick 50, 50, 10)"
    )
    size("events_per_command", positive_int, "write: events per command")
    size("total", positive_int, "hot: commands")
    size("peer_commands", positive_int, "write/hot: the peer's commands")
    size("latency_seconds", positive_float, "write, saga: seconds of open loop at half peak")
    size("length", positive_int, "replay: events")
    size("events", positive_int, "project: events to catch up on")
    size("lag_seconds", positive_float, "project: steady-load seconds")
    size("rate", positive_float, "project: commands/s under lag")
    size("orders", positive_int, "saga: orders")


def resolve_sizes(args: argparse.Namespace) -> None:
    """Fill every size left out with its default, or its --quick value."""
    for name, (default, quick) in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else default)
    if args.callers is None:
        args.callers = (QUICK_CALLERS if args.quick else DEFAULT_CALLERS).get(args.workload, 1)


def run(args: argparse.Namespace) -> int:
    resolve_sizes(args)
    try:
        check_store_url(args.store)
        _check_usage(args)
    except (BadStoreUrl, MissingExtra, ValueError) as exc:
        print(f"actorsrc bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.default_gc:  # the command line tuned the GC before calling us (see actorsrc.tuning)
        gc.set_threshold(*CPYTHON_GC_THRESHOLDS)
    with tempfile.TemporaryDirectory(prefix="actorsrc-bench-") as tmp:
        found = anyio.run(_measure, args, Path(tmp), backend="asyncio", backend_options={"use_uvloop": args.uvloop})
    found["peak_rss_mb"] = report.peak_rss_mb()
    found["machine"] = report.machine()
    found["runtime"] = {"uvloop": args.uvloop, "gc_thresholds": list(gc.get_threshold())}
    print(json.dumps(found, indent=2) if args.json else report.table(found))
    return 0


def _check_usage(args: argparse.Namespace) -> None:
    """Everything that can be refused is refused before any run: a missing package should not cost a
    whole benchmark."""
    if args.plot is not None:
        if args.workload != "write":
            raise ValueError("--plot is for the write workload")
        from actorsrc.bench.plot import pyplot

        pyplot()
    if args.compare and args.workload in COMPARED and (missing := missing_peer(args.store)) is not None:
        raise MissingExtra(missing)
    if args.workload == "replay" and args.length < 2:
        raise ValueError("--length must be at least 2 (the account's opening and one credit)")
    if args.workload == "project" and args.events < 1000:
        raise ValueError("--events must be at least 1000 (the log is spread over 1000 accounts)")
    if args.cluster is not None:
        args.nats = args.nats or os.environ.get("ACTORSRC_TEST_NATS")
        if args.workload != "write" or not args.store or not args.nats or args.compare or args.plot:
            raise ValueError(
                "--cluster is for the write workload, with --store postgresql://... and --nats (or"
                " ACTORSRC_TEST_NATS), without --compare or --plot"
            )
    if args.cores is not None and (args.workload != "write" or args.cluster is not None or args.plot):
        raise ValueError("--cores is for the write workload, without --cluster or --plot")
    if args.workload == "saga":
        from actorsrc.bench.saga import check_shop_available

        check_shop_available()


class _Report:
    def __init__(self, args: argparse.Namespace) -> None:
        self.results: list[Result] = []
        self.ratios: dict[str, Any] = {}  # a float, or (interleaved rounds) {"median", "min", "max", "rounds"}
        self.extra: dict[str, Any] = {}
        self.notes: list[str] = []
        self.store: dict[str, Any] = {}
        self.packages: list[str] = ["asyncpg"] if args.store else []
        self.peak_rss_mb_before_peer: float | None = None

    def as_dict(self, args: argparse.Namespace) -> dict[str, Any]:
        return {
            "workload": args.workload,
            "parameters": _parameters(args),
            "results": [report.row(r) for r in self.results],
            "ratios": self.ratios,
            "notes": self.notes,
            "store": self.store,
            "versions": report.versions(*self.packages),
            "peak_rss_mb_before_peer": self.peak_rss_mb_before_peer,
            **self.extra,
        }


def _parameters(args: argparse.Namespace) -> dict[str, Any]:
    names = {
        "write": ("aggregates", "commands", "callers", "events_per_command", "latency_seconds", "peer_commands"),
        "hot": ("total", "callers", "peer_commands"),
        "replay": ("length",),
        "project": ("events", "lag_seconds", "rate"),
        "saga": ("orders", "callers", "latency_seconds"),
    }[args.workload]
    chosen = {name: getattr(args, name) for name in names}
    if args.compare and args.workload in ("write", "hot"):
        chosen["rounds"] = args.rounds
    return {**chosen, "compare": args.compare, "quick": args.quick}


async def _measure(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    out = _Report(args)
    if args.cluster is not None:
        from actorsrc.bench.cluster import Plan, cluster_write

        plan = Plan(args.store, args.nats, args.aggregates, args.commands, args.callers, args.events_per_command)
        out.results, out.ratios, out.notes = await cluster_write(plan, directory, args.cluster, args.rounds)
        out.packages.append("nats-py")
    elif args.cores is not None:
        from actorsrc.bench import cores

        cores_plan = cores.Plan(
            args.store,
            args.cores,
            args.aggregates,
            args.commands,
            args.callers,
            args.events_per_command,
            args.peer_commands,
        )
        out.results, out.ratios, out.notes = await cores.cores_write(
            cores_plan, directory, args.rounds, peer=args.compare
        )
    elif args.workload in ("write", "hot"):
        await _write_or_hot(args, directory, out)
    elif args.workload == "replay":
        from actorsrc.bench.replay import replay

        out.results, out.ratios, out.store = await replay(args.store, directory, args.length, args.compare)
        out.notes.append(
            "replay: throughput = events replayed / best time; p50/p95/p99 = one rehydration's time over the rounds"
            " ('-': the snapshot covers every event)"
        )
        if out.ratios:
            out.packages.append("eventsourcing")
            out.notes.append("replay ratios: the paired eventsourcing row's best time / ours, for the same rebuild")
    elif args.workload == "project":
        from actorsrc.bench.project import project

        out.results, out.store = await project(args.store, directory, args.events, args.lag_seconds, args.rate)
        out.notes.append("catch-up: events/s until the projection's checkpoint reaches the end of the log")
    else:
        from actorsrc.bench.saga import saga

        out.results, out.store = await saga(args.store, directory, args.orders, args.callers, args.latency_seconds)
        out.notes.append(
            "saga: throughput from the first order placed until every one is shipped and projected; latency from"
            " placing an order to its OrderShipped applied by the read model"
        )
        if args.store:
            out.notes.append(
                "saga on PostgreSQL: the shop's projections are SQLite SQL, so one noting OrderShipped stands in"
            )
    if args.store:
        out.store["schema"] = "a fresh schema per measurement, dropped afterwards"
    return out.as_dict(args)


async def _write_or_hot(args: argparse.Namespace, directory: Path, out: _Report) -> None:
    from actorsrc.bench import workloads

    if args.compare:
        await _compare(args, directory, out)
        return
    callers: int = args.callers
    default_gc = True if args.default_gc else None  # None: the process's set-up, as the command line left it
    if args.workload == "write":
        ours, out.store = await workloads.write(
            args.store,
            directory,
            args.aggregates,
            args.commands,
            callers,
            args.events_per_command,
            default_gc=default_gc,
        )
        out.results.append(ours)
        latency = await workloads.open_loop_latency(
            args.store, directory, ours.rate / 2, args.latency_seconds, args.aggregates, default_gc=default_gc
        )
        out.results.append(latency)
        verdict = "met" if latency.extra["p99_target_met"] else "NOT met"
        out.notes.append(f"open loop at half of peak: p99 < {LATENCY_TARGET_MS:.0f} ms {verdict}")
        await _plot(args, directory, out)
    else:
        ours, out.store = await workloads.hot(args.store, directory, args.total, callers, default_gc=default_gc)
        out.results.append(ours)


async def _compare(args: argparse.Namespace, directory: Path, out: _Report) -> None:
    from actorsrc.bench.compare import compare

    found = await compare(args, directory)
    out.results, out.ratios, out.notes, out.store = found.results, found.ratios, found.notes, found.store
    out.extra = found.extra
    out.peak_rss_mb_before_peer = found.peak_rss_mb_before_peer
    out.packages += ["eventsourcing", *(["psycopg"] if args.store else [])]
    await _plot(args, directory, out)


async def _plot(args: argparse.Namespace, directory: Path, out: _Report) -> None:
    if args.plot is None:
        return
    from actorsrc.bench.plot import plot

    points = await plot(args.store, directory, args.aggregates, args.plot, quick=args.quick)
    curve = ", ".join(f"{callers}: {rate:,.0f}/s" for callers, rate in points)
    out.notes.append(f"plot written to {args.plot} (callers: commands/s) {curve}")
