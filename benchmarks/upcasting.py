"""Read throughput of one long stream stored at the current schema version, against the same stream
stored at schema version 1 and read through a two-step upcaster chain (v1 -> v2 -> v3).

Both streams live in one SQLite file and are read in the same process, best of N alternating runs
each, so the chain's cost is their difference. Two read paths: `EventCodec.decode_record` over rows
already in memory (the codec alone), and `load_state` (SQLite read, decode and evolve: what recovery
pays). The old-schema path is then timed step by step, to show what dominates.

    python -m benchmarks.upcasting --events 50000 --runs 5
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
import msgspec

from actorsrc import Aggregate, NewEvent, RecordedEvent, SQLiteEventStore, codec_for, load_state
from actorsrc.records import Metadata, next_event_id

CHAIN_BUDGET_PERCENT = 30.0

# -- a wallet like the one in tests/test_schema_evolution.py --------------------------------------


@dataclass(frozen=True, slots=True)
class Deposit:
    amount: int


@dataclass(frozen=True, slots=True)
class FundsDeposited:  # v3; v1 was {"cents"}, v2 renamed the field to "amount", v3 added "currency"
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class Wallet:
    total: int = 0
    deposits: int = 0


def _evolve(state: Wallet, event: FundsDeposited) -> Wallet:
    return Wallet(state.total + event.amount, state.deposits + 1)


def _decide(state: Wallet, command: Deposit) -> Sequence[FundsDeposited]:
    return [FundsDeposited(command.amount, "EUR")]


def _v1_to_v2(old: dict[str, Any]) -> dict[str, Any]:
    return {"amount": old["cents"]}


def _v2_to_v3(old: dict[str, Any]) -> dict[str, Any]:
    return {**old, "currency": "EUR"}


wallet: Aggregate[Wallet, Deposit, FundsDeposited] = Aggregate(
    name="wallet",
    initial=Wallet(),
    decide=_decide,
    evolve=_evolve,
    events={"FundsDeposited": FundsDeposited},
    commands=(Deposit,),
    schema_versions={"FundsDeposited": 3},
    upcasters={("FundsDeposited", 1): _v1_to_v2, ("FundsDeposited", 2): _v2_to_v3},
)

CURRENT, OLD = "current", "v1"


@dataclass
class ReadResult:
    path: str  # "decode_record" or "load_state"
    schema: str  # CURRENT or OLD
    events: int
    seconds: float  # best run
    per_second: float


# -- setup ------------------------------------------------------------------------------------------


def _payload(schema: str, n: int) -> bytes:
    if schema == OLD:
        return f'{{"cents": {n}}}'.encode()
    return f'{{"amount": {n}, "currency": "EUR"}}'.encode()


async def write_stream(store: SQLiteEventStore, schema: str, events: int, chunk: int = 5000) -> None:
    """`events` FundsDeposited rows in stream wallet-<schema>, as the code of that schema version wrote them."""
    schema_version = 1 if schema == OLD else 3
    written = 0
    while written < events:
        batch = [
            NewEvent("FundsDeposited", _payload(schema, n), Metadata(next_event_id()), schema_version)
            for n in range(written + 1, min(written + chunk, events) + 1)
        ]
        await store.append(wallet.stream_id(schema), batch, written)
        written += len(batch)


# -- measurements -----------------------------------------------------------------------------------


def best_of(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


async def best_of_each(runs: int, works: Mapping[str, Callable[[], Awaitable[None]]]) -> dict[str, float]:
    """The best time of each work; runs alternate between them, so machine noise hits all alike."""
    best = dict.fromkeys(works, float("inf"))
    for _ in range(runs):
        for name, work in works.items():
            start = time.perf_counter()
            await work()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def decode_all(records: Sequence[RecordedEvent]) -> Callable[[], Awaitable[None]]:
    decode = codec_for(wallet).decode_record

    async def work() -> None:
        for record in records:
            decode(record)

    return work


def load(store: SQLiteEventStore, schema: str, events: int) -> Callable[[], Awaitable[None]]:
    async def work() -> None:
        loaded = await load_state(store, wallet, schema, use_snapshot=False)
        assert loaded.state == Wallet(events * (events + 1) // 2, events), "upcast stream folded wrongly"

    return work


def chain_breakdown(
    current: Sequence[RecordedEvent], old: Sequence[RecordedEvent], decode_record_seconds: float, runs: int
) -> dict[str, float]:
    """Where the old-schema path spends its time, in microseconds per event, step by step."""
    typed = msgspec.json.Decoder(FundsDeposited)
    raw = msgspec.json.Decoder()
    current_datas = [record.data for record in current]
    datas = [record.data for record in old]
    dicts = [raw.decode(data) for data in datas]
    upcast = [_v2_to_v3(_v1_to_v2(d)) for d in dicts]
    steps: dict[str, Callable[[], object]] = {
        "old row: untyped JSON decode to dict": lambda: [raw.decode(d) for d in datas],
        "old row: two upcaster calls": lambda: [_v2_to_v3(_v1_to_v2(d)) for d in dicts],
        "old row: msgspec.convert(dict, class)": lambda: [msgspec.convert(d, FundsDeposited) for d in upcast],
    }
    micros = {name: best_of(runs, step) / len(old) * 1e6 for name, step in steps.items()}
    # What decode_record adds around those steps: name/version lookups, the per-step key tuples.
    micros["old row: decode_record's own bookkeeping"] = decode_record_seconds / len(old) * 1e6 - sum(micros.values())
    micros["for scale: typed decode of a current row"] = (
        best_of(runs, lambda: [typed.decode(d) for d in current_datas]) / len(current) * 1e6
    )
    return micros


async def measure(events: int, runs: int, directory: Path) -> tuple[list[ReadResult], dict[str, float]]:
    async with SQLiteEventStore.open(directory / "upcasting.db", durable=False) as store:
        streams = {schema: await _prepared(store, schema, events) for schema in (CURRENT, OLD)}
        decoded = await best_of_each(runs, {schema: decode_all(records) for schema, records in streams.items()})
        loaded = await best_of_each(runs, {schema: load(store, schema, events) for schema in streams})
    results = [
        ReadResult(path, schema, events, seconds, events / seconds)
        for path, times in (("decode_record", decoded), ("load_state", loaded))
        for schema, seconds in times.items()
    ]
    return results, chain_breakdown(streams[CURRENT], streams[OLD], decoded[OLD], runs)


async def _prepared(store: SQLiteEventStore, schema: str, events: int) -> list[RecordedEvent]:
    await write_stream(store, schema, events)
    return await store.read_stream(wallet.stream_id(schema))


# -- report -----------------------------------------------------------------------------------------


def chain_costs(results: Sequence[ReadResult]) -> dict[str, float]:
    """Per read path: the extra time per event the chain costs, in percent of the current-schema time."""
    by_key = {(r.path, r.schema): r.seconds for r in results}
    paths = dict.fromkeys(r.path for r in results)
    return {path: (by_key[path, OLD] / by_key[path, CURRENT] - 1) * 100 for path in paths}


def _report(results: Sequence[ReadResult], costs: dict[str, float], breakdown: dict[str, float]) -> str:
    lines = [f"{'read path':14} {'stored at':22} {'events':>7} {'best s':>8} {'events/s':>10}"]
    for r in results:
        stored = "current schema (v3)" if r.schema == CURRENT else "v1, upcast v1->v2->v3"
        lines.append(f"{r.path:14} {stored:22} {r.events:>7} {r.seconds:>8.4f} {r.per_second:>10.0f}")
    for path, cost in costs.items():
        verdict = "within" if cost < CHAIN_BUDGET_PERCENT else "OVER"
        lines.append(
            f"chain cost, {path}: {cost:+.1f} % time per event ({verdict} the {CHAIN_BUDGET_PERCENT:.0f} % goal)"
        )
    lines.append("old-schema path, step by step (us/event):")
    lines += [f"  {name:42} {micros:6.3f}" for name, micros in breakdown.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000, help="events in each stream")
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement; the best counts")
    parser.add_argument("--dir", type=Path, default=None, help="where the database file goes (default: a temp dir)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        results, breakdown = anyio.run(measure, args.events, args.runs, Path(tmp))
    costs = chain_costs(results)
    if args.json:
        report = {
            "results": [asdict(r) for r in results],
            "chain_cost_percent": costs,
            "goal_percent": CHAIN_BUDGET_PERCENT,
            "old_path_us_per_event": breakdown,
        }
        print(json.dumps(report, indent=2))
    else:
        print(_report(results, costs, breakdown))


if __name__ == "__main__":
    main()
