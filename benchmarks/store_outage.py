"""Seconds from the end of a store outage until every actor serves again (issue 10, defect 6).

Each round opens a fresh durable SQLite store and a runtime with the default settings, opens `--actors`
accounts and gives each a caller that sends `Credit(1)` every `--retry` seconds, and again that long
after any error, as a client told "try again" does. Then every append fails the way a full disk makes it fail
(reads still work) for `--outage` seconds, plus a part of a second that grows round by round so that
recovery falls at different points of the breaker's backoff. The figure is the time from the store
recovering until every actor has served a command again, next to the backoff in force at that moment
(how long until the breaker's next probe was due, and the length of the backoff step it was in).

    python -m benchmarks.store_outage --actors 100 --outage 2 --rounds 7
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import MutableMapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
import structlog

from actorsrc import Runtime, SQLiteEventStore
from actorsrc.errors import ActorsrcError
from actorsrc.testing.faults import FaultyStore
from examples.bank import Credit, OpenAccount, account


@dataclass
class Round:
    outage: float  # seconds the disk was full
    all_served: float | None  # seconds from recovery until every actor served again (None: not within the limit)
    first_served: float | None  # seconds from recovery until the first actor served again
    probe_due: float | None  # seconds from recovery until the breaker's next probe was due (None: no breaker)
    backoff_step: float | None  # the nominal backoff step the breaker was in at recovery
    not_served: int  # actors that had not served again when the round ended
    errors: dict[str, int] = field(default_factory=dict)  # by type, during the outage and after it
    logs: dict[str, int] = field(default_factory=dict)  # breaker and supervision log events


async def one_round(directory: Path, actors: int, outage: float, retry: float, limit: float) -> Round:
    logged: Counter[str] = Counter()

    def count(_: Any, __: str, event: MutableMapping[str, Any]) -> Any:
        logged[str(event.get("event"))] += 1
        raise structlog.DropEvent

    structlog.configure(processors=[count])
    errors: Counter[str] = Counter()
    served_at: dict[int, float] = {}
    recovered_at = float("inf")
    loop = asyncio.get_running_loop()
    async with SQLiteEventStore.open(directory / "outage.db") as inner:
        store = FaultyStore(inner, inline=True)  # the runtime's task-free path, as with the bare store
        async with Runtime(store, [account]) as runtime:  # every setting at its default
            refs = [runtime.ref(account, f"a{n}") for n in range(actors)]
            async with anyio.create_task_group() as tg:
                for ref in refs:
                    tg.start_soon(ref.ask, OpenAccount("owner"))
            stop = anyio.Event()
            everyone = anyio.Event()

            async def caller(n: int) -> None:
                ref = refs[n]
                while not stop.is_set():
                    try:
                        await ref.ask(Credit(1))
                    except ActorsrcError as exc:
                        errors[type(exc).__name__] += 1
                        await anyio.sleep(retry)
                        continue
                    now = loop.time()
                    if now > recovered_at and n not in served_at:
                        served_at[n] = now
                        if len(served_at) == actors:
                            everyone.set()
                    await anyio.sleep(retry)

            async with anyio.create_task_group() as tg:
                for n in range(actors):
                    tg.start_soon(caller, n)
                await anyio.sleep(0.2)
                store.fail_at_random(1.0)  # every append fails, reads work: a full disk
                await anyio.sleep(outage)
                store.fail_at_random(0.0)
                recovered_at = loop.time()
                status = runtime.store_status() if hasattr(runtime, "store_status") else None  # None: before the fix
                policy = getattr(getattr(runtime, "store_health", None), "policy", None)
                with anyio.move_on_after(limit):
                    await everyone.wait()
                stop.set()
    structlog.reset_defaults()
    probe_due = backoff_step = None
    if status is not None and policy is not None and not status.available:
        probe_due = status.next_probe_in
        steps = status.failed_probes
        backoff_step = min(policy.max_backoff, policy.min_backoff * 2 ** (steps - 1)) if steps else 0.0
    times = [t - recovered_at for t in served_at.values()]
    return Round(
        outage=outage,
        all_served=max(times) if len(times) == actors else None,
        first_served=min(times) if times else None,
        probe_due=probe_due,
        backoff_step=backoff_step,
        not_served=actors - len(times),
        errors=dict(errors),
        logs={k: v for k, v in logged.items() if k.startswith(("store.", "actor.gave_up", "actor.crashed"))},
    )


async def run_rounds(args: argparse.Namespace, directory: Path) -> list[Round]:
    rounds = []
    for index in range(args.rounds):
        round_dir = directory / f"round-{index}"
        round_dir.mkdir()
        # The outage grows by a fraction of a second each round, so recovery meets the backoff at varied points.
        outage = args.outage + (index / max(1, args.rounds - 1)) * 1.0
        rounds.append(await one_round(round_dir, args.actors, outage, args.retry, args.limit))
    return rounds


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"median {statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f})"


def report(rounds: list[Round], actors: int) -> str:
    lines = [
        f"{'outage s':>8} {'all served s':>12} {'first s':>8} {'probe due s':>11} {'step s':>7} "
        f"{'excess s':>8} {'not served':>10}  errors / logs"
    ]
    for r in rounds:
        excess = r.all_served - r.probe_due if r.all_served is not None and r.probe_due is not None else None
        lines.append(
            f"{r.outage:>8.2f} {_fmt(r.all_served):>12} {_fmt(r.first_served):>8} {_fmt(r.probe_due):>11} "
            f"{_fmt(r.backoff_step):>7} {_fmt(excess):>8} {r.not_served:>10}  {r.errors} {r.logs}"
        )
    served = [r.all_served for r in rounds if r.all_served is not None]
    excesses = [r.all_served - r.probe_due for r in rounds if r.all_served is not None and r.probe_due is not None]
    lines.append(f"recovery -> all {actors} actors serve: {_spread(served)}")
    lines.append(
        f"recovery -> next probe due:         {_spread([r.probe_due for r in rounds if r.probe_due is not None])}"
    )
    lines.append(f"all serve, past the probe due:      {_spread(excesses)}")
    if len(served) < len(rounds):
        lines.append(f"{len(rounds) - len(served)} round(s) ended with actors still refusing commands")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--actors", type=int, default=100)
    parser.add_argument("--outage", type=float, default=2.0, help="seconds the disk is full in the first round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--retry", type=float, default=0.01, help="seconds a caller waits after a reply or an error")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds to wait for every actor after recovery")
    parser.add_argument("--dir", type=Path, default=None, help="where the database files go (default: a temp dir)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        rounds = anyio.run(run_rounds, args, Path(tmp), backend="asyncio")
    if args.json:
        print(json.dumps([asdict(r) for r in rounds], indent=2))
    else:
        print(report(rounds, args.actors))
        print(f"({len(rounds)} rounds in {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
