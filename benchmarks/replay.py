"""Rehydration speed: one bank account with 10,000 events, rebuilt from a durable SQLite file.

In one process run, side by side, with the repetitions interleaved so that background load on the
machine hits every row alike:

- actorsrc `load_state`, full replay (`use_snapshot=False`) and from a snapshot (`snapshot_every=1000`);
- actorsrc recovery through a fresh `Runtime`: the first `await ref.state()`, without and with snapshots;
- the `eventsourcing` library (9.5.6; ``pip install -e '.[bench]'``) in its documented style: an
  `Aggregate` with `@event` methods in an `Application` on `eventsourcing.sqlite`, rebuilt with
  `repository.get(id)` with the aggregate cache off (so it really replays), without and with a snapshot.

    python -m benchmarks.replay --events 10000 --repeat 5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
import structlog

from actorsrc import Runtime, SQLiteEventStore
from actorsrc.bench.replay_rows import ACCOUNT_ID, PAIRS, PEER_FULL, PEER_SNAPSHOT, SNAPSHOT_EVERY
from actorsrc.recovery import load_state
from examples.bank import AccountState, Credit, OpenAccount, account

try:
    from actorsrc.bench.peer_bank import PeerBank
except ImportError as exc:  # an optional extra: actorsrc's own figures are still worth printing
    PEER_MISSING: str | None = str(exc)
else:
    PEER_MISSING = None

SNAPSHOTTING = dataclasses.replace(account, snapshot_every=SNAPSHOT_EVERY)


@dataclass
class ReplayResult:
    name: str
    replayed: int  # events folded per load (0 when the snapshot is at the last version)
    best_s: float
    median_s: float
    events_per_second: float | None  # replayed / best; None when nothing was replayed
    compared_with: str | None = None  # the peer row doing the same job
    ratio: float | None = None  # the peer's best time / ours: > 1 means actorsrc is faster


# One measurement: returns (seconds, events replayed). Each times itself, so set-up stays outside.
Case = Callable[[], Awaitable[tuple[float, int]]]


def quiet_logging() -> None:
    """Warnings only (as `actorsrc.cli.configure_logging`): debug lines must not be part of the timing."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )


async def write_actorsrc(store: SQLiteEventStore, events: int, callers: int) -> None:
    """OpenAccount then `events - 1` Credit(1) through the runtime, snapshotting every 1000 events."""
    async with Runtime(store, [SNAPSHOTTING]) as runtime:
        ref = runtime.ref(SNAPSHOTTING, ACCOUNT_ID)
        await ref.ask(OpenAccount("owner"))
        remaining = iter(range(events - 1))

        async def caller() -> None:  # concurrent callers let the actor batch: set-up, not measured
            for _ in remaining:
                await ref.ask(Credit(1))

        async with anyio.create_task_group() as tg:
            for _ in range(callers):
                tg.start_soon(caller)


def _check(state: AccountState, version: int, events: int) -> None:
    if version != events or state.balance != events - 1:
        raise AssertionError(f"rebuilt version {version}, balance {state.balance}; expected {events}, {events - 1}")


def actorsrc_cases(store: SQLiteEventStore, events: int) -> dict[str, Case]:
    stream_id = account.stream_id(ACCOUNT_ID)

    async def full_replay() -> tuple[float, int]:
        start = time.perf_counter()
        loaded = await load_state(store, account, ACCOUNT_ID, use_snapshot=False)
        # aiosqlite's worker thread drops a job's result only when its next job arrives: without this
        # cheap query, freeing the 10,000 rows (~1 ms) would be charged to whichever row runs next.
        await store.stream_version(stream_id)
        elapsed = time.perf_counter() - start
        _check(loaded.state, loaded.version, events)
        return elapsed, loaded.events_replayed

    async def from_snapshot() -> tuple[float, int]:
        start = time.perf_counter()
        loaded = await load_state(store, SNAPSHOTTING, ACCOUNT_ID)
        elapsed = time.perf_counter() - start
        _check(loaded.state, loaded.version, events)
        return elapsed, loaded.events_replayed  # all of them with fewer events than SNAPSHOT_EVERY

    def runtime_recovery(aggregate: Any) -> Case:
        async def recover() -> tuple[float, int]:
            async with Runtime(store, [aggregate]) as runtime:
                ref = runtime.ref(aggregate, ACCOUNT_ID)
                start = time.perf_counter()
                state: AccountState = await ref.state()
                await store.stream_version(stream_id)  # frees the rows read, as in full_replay
                elapsed = time.perf_counter() - start
            _check(state, events, events)  # the runtime does not expose the version; the balance shows it
            replayed = events if not aggregate.snapshots_enabled else await _replayed_after_snapshot(store, events)
            return elapsed, replayed

        return recover

    return {
        "actorsrc load_state, full replay": full_replay,
        f"actorsrc load_state, snapshot every {SNAPSHOT_EVERY}": from_snapshot,
        "actorsrc fresh Runtime, first state(), full replay": runtime_recovery(account),
        f"actorsrc fresh Runtime, first state(), snapshot every {SNAPSHOT_EVERY}": runtime_recovery(SNAPSHOTTING),
    }


async def _replayed_after_snapshot(store: SQLiteEventStore, events: int) -> int:
    snapshot = await store.load_snapshot(SNAPSHOTTING.stream_id(ACCOUNT_ID))
    return events - (snapshot.version if snapshot is not None else 0)


def peer_env(db: Path, *, snapshots: bool) -> dict[str, str]:
    # Passed to the Application (which lets it override os.environ), so nothing outside can turn on
    # the aggregate cache (a get would then not replay), compression or encryption.
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(db),
        "IS_SNAPSHOTTING_ENABLED": "y" if snapshots else "n",
        "AGGREGATE_CACHE_MAXSIZE": "",
        "COMPRESSOR_TOPIC": "",
        "CIPHER_TOPIC": "",
    }


def peer_cases(db: Path, events: int, chunk: int) -> tuple[dict[str, Case], Callable[[], None]]:
    """Write the peer's 10,000 events, then return its two rehydrations and a closer."""
    writer = PeerBank(env=peer_env(db, snapshots=True))
    account_id = writer.open_account("owner")
    # Credits in chunks of `chunk` per save: writing is set-up here, and one save per credit would
    # only cost time (an fsync each). Every 1000th version still gets its snapshot.
    remaining = events - 1
    while remaining:
        step = min(chunk, remaining)
        writer.credit(account_id, 1, step)
        remaining -= step
    writer.close()
    plain = PeerBank(env=peer_env(db, snapshots=False))
    snapshotting = PeerBank(env=peer_env(db, snapshots=True))
    if plain.repository.cache is not None or snapshotting.repository.cache is not None:
        raise AssertionError("the eventsourcing aggregate cache is on; its get would not replay")

    def case(app: PeerBank, replayed: Callable[[], int]) -> Case:
        async def rehydrate() -> tuple[float, int]:
            start = time.perf_counter()
            balance, version = app.balance(account_id)
            elapsed = time.perf_counter() - start
            if version != events or balance != events - 1:
                raise AssertionError(f"eventsourcing rebuilt version {version}, balance {balance}")
            return elapsed, replayed()

        return rehydrate

    def after_snapshot() -> int:
        assert snapshotting.snapshots is not None
        newest = list(snapshotting.snapshots.get(account_id, desc=True, limit=1))
        return events - (newest[0].originator_version if newest else 0)

    def close() -> None:
        plain.close()
        snapshotting.close()

    return {PEER_FULL: case(plain, lambda: events), PEER_SNAPSHOT: case(snapshotting, after_snapshot)}, close


async def compare(events: int, repeat: int, callers: int, directory: Path) -> tuple[list[ReplayResult], int]:
    samples: dict[str, list[float]] = {}
    replayed: dict[str, int] = {}
    async with SQLiteEventStore.open(directory / "actorsrc.db") as store:
        await write_actorsrc(store, events, callers)
        snapshot = await store.load_snapshot(SNAPSHOTTING.stream_id(ACCOUNT_ID))
        snapshot_version = snapshot.version if snapshot is not None else 0
        cases = actorsrc_cases(store, events)
        close_peer: Callable[[], None] | None = None
        if PEER_MISSING is None:
            peer, close_peer = peer_cases(directory / "eventsourcing.db", events, SNAPSHOT_EVERY - 1)
            cases.update(peer)
        try:
            # One untimed round warms both sides (imports, codecs, statement caches, page cache), then
            # the timed rounds interleave the rows.
            for round_ in range(repeat + 1):
                for name, case in cases.items():
                    seconds, count = await case()
                    if round_:
                        samples.setdefault(name, []).append(seconds)
                        replayed[name] = count
        finally:
            if close_peer is not None:
                close_peer()
    results = []
    for name, times in samples.items():
        best = min(times)
        count = replayed[name]
        results.append(ReplayResult(name, count, best, statistics.median(times), count / best if count else None))
    peers = {r.name: r for r in results}
    for r in results:
        peer_row = peers.get(PAIRS.get(r.name, ""))
        if peer_row is not None:
            r.compared_with, r.ratio = peer_row.name, peer_row.best_s / r.best_s
    return results, snapshot_version


def _table(results: list[ReplayResult]) -> str:
    lines = [f"{'rehydration':68} {'replayed':>8} {'best ms':>8} {'median ms':>9} {'events/s':>10} {'x peer':>7}"]
    for r in results:
        per_second = f"{r.events_per_second:.0f}" if r.events_per_second is not None else "-"
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        lines.append(
            f"{r.name:68} {r.replayed:>8} {r.best_s * 1000:>8.2f} {r.median_s * 1000:>9.2f} {per_second:>10} {ratio:>7}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000, help="events in the account's stream (>= 2)")
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions of each row (best and median)")
    parser.add_argument("--callers", type=int, default=100, help="concurrent callers writing the actorsrc stream")
    parser.add_argument("--dir", type=Path, default=None, help="where the database files go (default: a temp dir)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.events < 2 or args.repeat < 1:
        parser.error("--events must be >= 2 and --repeat >= 1")
    if PEER_MISSING is not None:
        print(
            f"eventsourcing cannot be imported ({PEER_MISSING}): install it with `pip install -e '.[bench]'`"
            " (eventsourcing==9.5.6). Reporting actorsrc's figures only.",
            file=sys.stderr,
        )
    quiet_logging()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        results, snapshot_version = anyio.run(compare, args.events, args.repeat, args.callers, Path(tmp))
    full = next(r for r in results if r.name == "actorsrc load_state, full replay")
    if args.json:
        report = {
            "events": args.events,
            "repeat": args.repeat,
            "snapshot_version": snapshot_version,
            "peer_missing": PEER_MISSING,
            "results": [asdict(r) for r in results],
        }
        print(json.dumps(report, indent=2))
        return
    print(
        f"one account, {args.events} events, durable SQLite (WAL, synchronous=FULL); best and median of {args.repeat}"
    )
    print(f"newest actorsrc snapshot at version {snapshot_version}; x peer = peer's best time / ours (> 1: faster)")
    print(_table(results))
    if full.ratio is not None:
        verdict = "met" if full.ratio >= 5 else "NOT met"
        print(f"goal: actorsrc full replay >= 5x eventsourcing: {verdict} ({full.ratio:.2f}x)")
    else:
        print("goal: actorsrc full replay >= 5x eventsourcing: not measured (eventsourcing missing)")


if __name__ == "__main__":
    main()
