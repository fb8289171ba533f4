"""Rehydration: one bank account of L events, rebuilt with and without a snapshot, on either store.

The cases and the peer's pairing are those of benchmarks/replay.py (a longer study on SQLite); this
version runs over any event store, so the same rows come out on SQLite and PostgreSQL. Rounds interleave
the rows, so background load hits every row alike; the first round only warms up.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from actorsrc import EventStore, Runtime, SnapshotStore, load_state
from actorsrc.bench.account import AccountState, Credit, OpenAccount, account
from actorsrc.bench.peers import PeerCase, peer_replay_cases
from actorsrc.bench.replay_rows import ACCOUNT_ID, PAIRS, SNAPSHOT_EVERY, SNAPSHOTTING
from actorsrc.bench.stores import bench_store
from actorsrc.bench.workloads import Result
from actorsrc.progress import Progress

REPEAT = 5
WRITERS = 50  # concurrent callers writing the stream: set-up, not measured

# One measurement: (seconds, events replayed). Each times itself, so set-up stays outside.
Case = Callable[[], Awaitable[tuple[float, int]]]


async def _write(store: EventStore, length: int) -> None:
    async with Runtime(store, [SNAPSHOTTING]) as runtime:
        ref = runtime.ref(SNAPSHOTTING, ACCOUNT_ID)
        await ref.ask(OpenAccount("owner"))
        remaining = iter(range(length - 1))
        with Progress(length - 1, "replay: writing the stream") as progress:

            async def caller() -> None:
                for _ in remaining:
                    await ref.ask(Credit(1))
                    progress.advance()

            async with anyio.create_task_group() as tg:
                for _ in range(WRITERS):
                    tg.start_soon(caller)


def _check(state: AccountState, version: int, length: int) -> None:
    if version != length or state.balance != length - 1:
        raise AssertionError(f"rebuilt version {version}, balance {state.balance}; expected {length}, {length - 1}")


def _our_cases(store: EventStore, length: int) -> dict[str, Case]:
    stream_id = account.stream_id(ACCOUNT_ID)

    async def replayed_after_snapshot() -> int:
        assert isinstance(store, SnapshotStore)  # both stores keep snapshots
        snapshot = await store.load_snapshot(SNAPSHOTTING.stream_id(ACCOUNT_ID))
        return length - (snapshot.version if snapshot is not None else 0)

    def with_load_state(aggregate: Any, use_snapshot: bool) -> Case:
        async def load() -> tuple[float, int]:
            started = time.perf_counter()
            loaded = await load_state(store, aggregate, ACCOUNT_ID, use_snapshot=use_snapshot)
            # aiosqlite's worker thread frees a job's rows only when the next job comes: this cheap query
            # keeps that cost in this row instead of the next one.
            await store.stream_version(stream_id)
            elapsed = time.perf_counter() - started
            _check(loaded.state, loaded.version, length)
            return elapsed, loaded.events_replayed

        return load

    def with_fresh_runtime(aggregate: Any) -> Case:
        async def recover() -> tuple[float, int]:
            async with Runtime(store, [aggregate]) as runtime:
                started = time.perf_counter()
                state: AccountState = await runtime.ref(aggregate, ACCOUNT_ID).state()
                await store.stream_version(stream_id)
                elapsed = time.perf_counter() - started
            _check(state, length, length)  # the balance shows the version
            return elapsed, await replayed_after_snapshot() if aggregate.snapshots_enabled else length

        return recover

    return {
        "actorsrc load_state, full replay": with_load_state(account, False),
        f"actorsrc load_state, snapshot every {SNAPSHOT_EVERY}": with_load_state(SNAPSHOTTING, True),
        "actorsrc fresh Runtime, first state(), full replay": with_fresh_runtime(account),
        f"actorsrc fresh Runtime, first state(), snapshot every {SNAPSHOT_EVERY}": with_fresh_runtime(SNAPSHOTTING),
    }


def _async(case: PeerCase) -> Case:
    async def run() -> tuple[float, int]:
        return case()  # the peer is synchronous; nothing else runs meanwhile, so blocking the loop is fine

    return run


async def replay(
    store_url: str | None, directory: Path, length: int, compare: bool
) -> tuple[list[Result], dict[str, float], dict[str, Any]]:
    samples: dict[str, list[float]] = {}
    replayed: dict[str, int] = {}
    close_peer: Callable[[], None] = lambda: None  # noqa: E731
    async with bench_store(store_url, directory, "replay") as (store, settings):
        await _write(store, length)
        cases = _our_cases(store, length)
        try:
            if compare:  # the harness has checked that the peer is installed
                peer, close_peer = await anyio.to_thread.run_sync(peer_replay_cases, store_url, directory, length)
                cases.update({name: _async(case) for name, case in peer.items()})
            with Progress((REPEAT + 1) * len(cases), "replay: rehydrating") as progress:
                for round_ in range(REPEAT + 1):
                    for name, case in cases.items():
                        seconds, count = await case()
                        progress.advance()
                        if round_:
                            samples.setdefault(name, []).append(seconds)
                            replayed[name] = count
        finally:
            close_peer()
    results = [
        Result(
            "replay",
            name,
            replayed[name],
            min(times),
            unit="events/s",
            latencies_ms=[t * 1000 for t in times],
            extra={"best_ms": min(times) * 1000, "events_in_stream": length},
        )
        for name, times in samples.items()
    ]
    best = {r.what: r.seconds for r in results}
    ratios = {f"{ours} / eventsourcing": best[peer] / best[ours] for ours, peer in PAIRS.items() if peer in best}
    return results, ratios, settings
