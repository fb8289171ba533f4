"""Memory per actor: the RSS of idle actors, and RSS while very many aggregates pass through.

Each part runs in its own subprocess, so that neither measures the other's heap:

- idle: a Runtime with passivation off (``WriteSettings(passivate_after=None, max_live_actors=None)``) activates
  N distinct accounts (one OpenAccount each, from concurrent callers) and lets them go idle.
  (RSS after - RSS before) / N is what one idle actor costs: the actor, its directory entry, its
  state, and the store's per-stream cache entry (a store cache is part of the price, so it counts).
- driven: a Runtime with passivation on drives M distinct accounts (one OpenAccount each) and
  samples RSS every K of them. With passivation, RSS must level off once the live-actor cap and the
  store's stream cache (200,000 streams) are full.

    python -m benchmarks.memory --idle 100000 --driven 1000000
    python -m benchmarks.memory --idle 10000 --driven 100000 --sample-every 10000   # a quick run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
import structlog

from actorsrc import Runtime, SQLiteEventStore, WriteSettings
from examples.bank import OpenAccount, account

MB = 1024 * 1024


def quiet_logging() -> None:
    """Warnings only (as `actorsrc.cli.configure_logging`): debug lines must not be part of the figures."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )


def rss_bytes() -> int:
    """Resident set size now (Linux /proc); elsewhere the peak, which is all `resource` offers."""
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def trimmed_rss_bytes() -> int:
    """RSS after a full collection and glibc's malloc_trim: what is really held, not freed-but-kept."""
    gc.collect()
    libc_name = ctypes.util.find_library("c")
    if libc_name is not None:
        with contextlib.suppress(OSError, AttributeError):  # AttributeError: not glibc
            ctypes.CDLL(libc_name).malloc_trim(0)
    return rss_bytes()


async def drive(runtime: Runtime, prefix: str, ids: range, callers: int) -> None:
    """One OpenAccount to each of the accounts `prefix + id`, from `callers` concurrent tasks."""
    pending = iter(ids)

    async def caller() -> None:
        for i in pending:  # no list of ids or refs kept: the driver must not hold memory per account
            await runtime.ref(account, f"{prefix}{i}").ask(OpenAccount("owner"))

    async with anyio.create_task_group() as tg:
        for _ in range(min(callers, len(ids))):
            tg.start_soon(caller)


async def wait_until_idle(runtime: Runtime) -> None:
    # Replies go out before an actor's task ends; its task (and its frame) must be gone before measuring.
    # The runtime has no "all idle" event to wait on, so poll its public gauge.
    while runtime.stats().running_actors:  # noqa: ASYNC110
        await asyncio.sleep(0.01)


@dataclass
class IdleResult:
    actors: int
    store: str
    seconds: float
    rss_before: int
    rss_idle: int
    rss_idle_trimmed: int
    rss_before_trimmed: int
    per_actor: float
    per_actor_trimmed: float
    breakdown: dict[str, int] = field(default_factory=dict)


def idle_actor_breakdown(runtime: Runtime, store: SQLiteEventStore) -> dict[str, int]:
    """sys.getsizeof of what one idle actor alone keeps alive (shared objects counted once, elsewhere).

    Reads private attributes, for diagnosis only: if they change, the breakdown is left out.
    """
    try:
        actors = runtime._directory.actors
        key, actor = next(reversed(actors.items()))
        stream_cache = store._cache.streams
        cached_name = next((name for name in stream_cache if name == actor.stream_id), None)
    except (AttributeError, StopIteration):
        return {}
    parts: dict[str, int] = {}
    seen: set[int] = set()

    def add(label: str, obj: object, size: int | None = None) -> None:
        if id(obj) in seen or (isinstance(obj, int) and -5 <= obj <= 256):  # shared, or a cached small int
            return
        seen.add(id(obj))
        parts[label] = parts.get(label, 0) + (sys.getsizeof(obj) if size is None else size)

    add("AggregateActor object (__slots__)", actor)
    add("mailbox: an empty collections.deque", actor.mailbox)
    add("directory key tuple (name, id)", key)
    add("aggregate_id str", key[1])
    add("aggregate_id str", actor.aggregate_id)
    add("stream_id str", actor.stream_id)
    add("state (AccountState; owner str shared)", actor.state)
    add("last_used float", actor.last_used)
    add("version, position ints", actor.version)
    add("version, position ints", actor.position)
    add("directory dict slots, per actor", actors, sys.getsizeof(actors) // len(actors))
    if cached_name is not None:
        key_and_version = stream_cache[cached_name]
        add("store stream cache: name str", cached_name)
        add("store stream cache: (key, version) tuple and ints", key_and_version)
        for number in key_and_version:
            add("store stream cache: (key, version) tuple and ints", number)
        add(
            "store stream cache: dict slots, per stream", stream_cache, sys.getsizeof(stream_cache) // len(stream_cache)
        )
    return parts


async def measure_idle(count: int, callers: int, directory: Path) -> IdleResult:
    async with (
        SQLiteEventStore.open(directory / "idle.db") as store,
        Runtime(store, [account], write=WriteSettings(passivate_after=None, max_live_actors=None)) as runtime,
    ):
        # Warm-up outside the baseline: first-use allocations (statement caches, codecs, free lists)
        # are not per-actor costs. These accounts stay live, so they are in both figures.
        await drive(runtime, "warm-", range(min(1000, count)), callers)
        await wait_until_idle(runtime)
        before_trimmed = trimmed_rss_bytes()
        before = rss_bytes()
        start = time.perf_counter()
        await drive(runtime, "idle-", range(count), callers)
        await wait_until_idle(runtime)
        elapsed = time.perf_counter() - start
        gc.collect()
        idle = rss_bytes()
        idle_trimmed = trimmed_rss_bytes()
        breakdown = idle_actor_breakdown(runtime, store)
        live = runtime.live_actors
    if live != count + min(1000, count):
        raise AssertionError(f"{live} live actors, expected {count + min(1000, count)}: something was passivated")
    return IdleResult(
        count,
        "durable",
        elapsed,
        before,
        idle,
        idle_trimmed,
        before_trimmed,
        (idle - before) / count,
        (idle_trimmed - before_trimmed) / count,
        breakdown,
    )


@dataclass
class Sample:
    aggregates: int
    seconds: float
    rss: int
    live_actors: int
    passivated: int


@dataclass
class DrivenResult:
    aggregates: int
    store: str
    max_live_actors: int
    passivate_after: float
    rss_before: int
    samples: list[Sample]
    seconds: float
    per_second: float


async def measure_driven(
    count: int, callers: int, sample_every: int, max_live: int, passivate_after: float, durable: bool, directory: Path
) -> DrivenResult:
    samples: list[Sample] = []
    async with (
        SQLiteEventStore.open(directory / "driven.db", durable=durable) as store,
        Runtime(
            store, [account], write=WriteSettings(passivate_after=passivate_after, max_live_actors=max_live)
        ) as runtime,
    ):
        before = rss_bytes()
        start = time.perf_counter()
        done = 0
        while done < count:
            step = min(sample_every, count - done)
            await drive(runtime, "acc-", range(done, done + step), callers)
            done += step
            stats = runtime.stats()  # walks the live actors: at most max_live, once per sample
            samples.append(Sample(done, time.perf_counter() - start, rss_bytes(), stats.live_actors, stats.passivated))
        elapsed = time.perf_counter() - start
        written = await store.last_position()
    if written != count:
        raise AssertionError(f"{written} events in the store, expected {count}")
    return DrivenResult(
        count,
        "durable" if durable else "non-durable (synchronous=NORMAL)",
        max_live,
        passivate_after,
        before,
        samples,
        elapsed,
        count / elapsed,
    )


def bounded_verdict(driven: DrivenResult, reference_at: int, tolerance: float = 0.10) -> str:
    """Compare the last RSS sample with the first one at or after `reference_at` aggregates."""
    reference = next((s for s in driven.samples if s.aggregates >= reference_at), None)
    last = driven.samples[-1]
    if reference is None or reference is last:
        return (
            f"boundedness not judged: it needs samples after {reference_at} aggregates, when the live-actor cap and "
            "the store's stream cache (200,000 streams) are full; drive more aggregates"
        )
    growth = last.rss - reference.rss
    verdict = "bounded" if last.rss <= reference.rss * (1 + tolerance) else f"NOT bounded (more than {tolerance:+.0%})"
    return (
        f"RSS at {last.aggregates}: {last.rss / MB:.1f} MB, at {reference.aggregates}: {reference.rss / MB:.1f} MB "
        f"({growth / MB:+.1f} MB, {growth / reference.rss:+.1%}): {verdict}"
    )


def _idle_report(r: IdleResult) -> str:
    lines = [
        f"idle actors: {r.actors} accounts (one OpenAccount each), {r.store} SQLite, passivation off, "
        f"{r.seconds:.1f} s ({r.actors / r.seconds:.0f} activations/s)",
        f"  {'':34} {'RSS':>10} {'after gc + malloc_trim':>23}",
        f"  {'before activating':34} {r.rss_before / MB:>7.1f} MB {r.rss_before_trimmed / MB:>20.1f} MB",
        f"  {f'with {r.actors} idle actors':34} {r.rss_idle / MB:>7.1f} MB {r.rss_idle_trimmed / MB:>20.1f} MB",
        f"  {'per idle actor':34} {r.per_actor:>7.0f} B  {r.per_actor_trimmed:>20.0f} B",
    ]
    if r.breakdown:
        lines.append("  where it goes (sys.getsizeof of what one idle actor alone keeps alive):")
        for label, size in sorted(r.breakdown.items(), key=lambda item: -item[1]):
            lines.append(f"    {label:54} {size:>6} B")
        lines.append(f"    {'total':54} {sum(r.breakdown.values()):>6} B")
    return "\n".join(lines)


def _driven_report(r: DrivenResult, reference_at: int) -> str:
    lines = [
        f"driven: {r.aggregates} distinct accounts (one OpenAccount each), {r.store} SQLite, "
        f"max_live_actors={r.max_live_actors}, passivate_after={r.passivate_after:g} s; "
        f"{r.seconds:.1f} s ({r.per_second:.0f} aggregates/s)",
        f"  RSS before: {r.rss_before / MB:.1f} MB",
        f"  {'aggregates':>10} {'seconds':>8} {'RSS MB':>8} {'live actors':>11} {'passivated':>10}",
    ]
    for s in r.samples:
        lines.append(
            f"  {s.aggregates:>10} {s.seconds:>8.1f} {s.rss / MB:>8.1f} {s.live_actors:>11} {s.passivated:>10}"
        )
    lines.append(f"  {bounded_verdict(r, reference_at)}")
    return "\n".join(lines)


def _run_part(part: str, args: argparse.Namespace) -> dict[str, Any]:
    """One part in a fresh interpreter, so that its RSS owes nothing to the other part."""
    command = [sys.executable, "-m", "benchmarks.memory", "--part", part, "--json"]
    command += ["--idle", str(args.idle), "--driven", str(args.driven), "--callers", str(args.callers)]
    command += ["--sample-every", str(args.sample_every), "--max-live", str(args.max_live)]
    command += ["--passivate-after", str(args.passivate_after)]
    if args.non_durable:
        command.append("--non-durable")
    if args.dir is not None:
        command += ["--dir", str(args.dir)]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _part(args: argparse.Namespace) -> dict[str, Any]:
    quiet_logging()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        if args.part == "idle":
            idle = anyio.run(measure_idle, args.idle, args.callers, Path(tmp))
            return asdict(idle)
        driven = anyio.run(
            measure_driven,
            args.driven,
            args.callers,
            args.sample_every,
            args.max_live,
            args.passivate_after,
            not args.non_durable,
            Path(tmp),
        )
        return asdict(driven)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=int, default=100_000, help="accounts activated and left idle (0: skip)")
    parser.add_argument("--driven", type=int, default=1_000_000, help="accounts driven with passivation (0: skip)")
    parser.add_argument("--callers", type=int, default=1000, help="concurrent caller tasks")
    parser.add_argument("--sample-every", type=int, default=100_000, help="driven: aggregates between RSS samples")
    parser.add_argument("--max-live", type=int, default=10_000, help="driven: max_live_actors")
    parser.add_argument("--passivate-after", type=float, default=5.0, help="driven: passivate_after, seconds")
    parser.add_argument(
        "--non-durable", action="store_true", help="driven: SQLite with synchronous=NORMAL instead of FULL"
    )
    parser.add_argument(
        "--reference-at",
        type=int,
        default=200_000,
        help="driven: the sample the last one is compared with (the store's stream cache holds 200,000 streams)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="where the database files go (default: a temp dir)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--part", choices=("idle", "driven"), help=argparse.SUPPRESS)  # set for the subprocesses
    args = parser.parse_args()
    if args.idle < 0 or args.driven < 0 or args.callers < 1 or args.sample_every < 1 or args.max_live < 1:
        parser.error("counts must be >= 0, and --callers, --sample-every and --max-live >= 1")
    if args.part is not None:
        print(json.dumps(_part(args)))
        return
    idle = IdleResult(**_run_part("idle", args)) if args.idle else None
    driven: DrivenResult | None = None
    if args.driven:
        fields = _run_part("driven", args)
        driven = DrivenResult(**{**fields, "samples": [Sample(**s) for s in fields["samples"]]})
    if args.json:
        report: dict[str, Any] = {"idle": asdict(idle) if idle else None, "driven": asdict(driven) if driven else None}
        if driven is not None:
            report["driven_verdict"] = bounded_verdict(driven, args.reference_at)
        print(json.dumps(report, indent=2))
        return
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; RSS from /proc/self/statm; figures are indicative")
    if idle is not None:
        print(_idle_report(idle))
    if driven is not None:
        print(_driven_report(driven, args.reference_at))


if __name__ == "__main__":
    main()
