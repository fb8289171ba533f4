"""Commands/s through the whole write path on durable SQLite, beside the raw insert ceiling.

Both run in the same process, one after the other, on fresh files in the same directory, with the
same durability (WAL, synchronous=FULL), so their ratio is what to compare across machines.

    python -m benchmarks.write_path --aggregates 10000 --commands 10 --callers 1000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import anyio

from actorsrc import Runtime, SQLiteEventStore
from actorsrc.bench.ceiling import SQLITE_BATCHES, WriteResult, raw_insert_ceiling
from actorsrc.tuning import tune_gc
from examples.bank import Credit, OpenAccount, account


async def actorsrc_write(path: Path, aggregates: int, commands_each: int, callers: int) -> WriteResult:
    """Open `aggregates` accounts, then credit each `commands_each - 1` times, from `callers` tasks."""
    work: list[tuple[str, OpenAccount | Credit]] = [(f"acc-{i}", OpenAccount("owner")) for i in range(aggregates)]
    work += [(f"acc-{i}", Credit(1)) for _ in range(commands_each - 1) for i in range(aggregates)]
    latencies: list[float] = []
    async with SQLiteEventStore.open(path) as store, Runtime(store, [account]) as runtime:
        refs = {f"acc-{i}": runtime.ref(account, f"acc-{i}") for i in range(aggregates)}
        queue = iter(work)

        async def caller() -> None:
            clock = time.perf_counter
            for aggregate_id, command in queue:
                start = clock()
                await refs[aggregate_id].ask(command)
                latencies.append(clock() - start)

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(callers):
                tg.start_soon(caller)
        elapsed = time.perf_counter() - start
        assert await store.last_position() == len(work)
    latencies.sort()
    return WriteResult(
        "actorsrc (whole path)",
        len(work),
        elapsed,
        len(work) / elapsed,
        latencies[len(latencies) // 2] * 1000,
        latencies[int(len(latencies) * 0.99)] * 1000,
    )


async def compare(aggregates: int, commands_each: int, callers: int, directory: Path) -> list[WriteResult]:
    results = [await actorsrc_write(directory / "actorsrc.db", aggregates, commands_each, callers)]
    best: WriteResult | None = None
    for batch in SQLITE_BATCHES:
        raw = await raw_insert_ceiling(directory / f"raw-{batch}.db", aggregates, commands_each, batch)
        results.append(raw)
        best = raw if best is None or raw.per_second > best.per_second else best
    return results


def _table(results: list[WriteResult]) -> str:
    ceiling = max(r.per_second for r in results[1:])
    lines = [f"{'workload':48} {'commands':>9} {'seconds':>8} {'per s':>9} {'p50 ms':>7} {'p99 ms':>7} {'ratio':>6}"]
    for r in results:
        p50 = f"{r.p50_ms:.1f}" if r.p50_ms is not None else "-"
        p99 = f"{r.p99_ms:.1f}" if r.p99_ms is not None else "-"
        lines.append(
            f"{r.name:48} {r.commands:>9} {r.seconds:>8.2f} {r.per_second:>9.0f} {p50:>7} {p99:>7} "
            f"{r.per_second / ceiling:>6.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aggregates", type=int, default=10_000)
    parser.add_argument("--commands", type=int, default=10, help="commands per aggregate (first opens it)")
    parser.add_argument("--callers", type=int, default=1000, help="concurrent caller tasks")
    parser.add_argument("--dir", type=Path, default=None, help="where the database files go (default: a temp dir)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--default-gc", action="store_true", help="keep CPython's GC thresholds (see actorsrc.tuning)")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (pip install -e '.[fast]')")
    args = parser.parse_args()
    if not args.default_gc:
        tune_gc()  # applies to both sides of the comparison: it is process-wide
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        results = anyio.run(
            compare,
            args.aggregates,
            args.commands,
            args.callers,
            Path(tmp),
            backend="asyncio",
            backend_options={"use_uvloop": args.uvloop},
        )
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(_table(results))
        print(f"ratio to the best raw ceiling: {results[0].per_second / max(r.per_second for r in results[1:]):.2f}")


if __name__ == "__main__":
    main()
