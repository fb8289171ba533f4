"""The peer, run in the same process as actorsrc's figures.

Peer: the `eventsourcing` library (9.5.6, the `bench` extra) in its documented style (see
`actorsrc.bench.peer_bank`): an `Aggregate` with `@event` methods, an `Application` whose command method
does `repository.get`, calls the aggregate, then `save`. Each configuration listed in
/work/shared/BENCHMARKS.md is tried and the best is what ratios use.

eventsourcing (and psycopg, for its PostgreSQL module) are imported inside functions only: without the
`bench` extra this module still imports (and type-checks); `missing_peer` says what is missing.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from actorsrc.bench.extra import INSTALL_BENCH_EXTRA
from actorsrc.bench.replay_rows import PEER_FULL, PEER_SNAPSHOT, SNAPSHOT_EVERY
from actorsrc.progress import Progress

SQLITE_CONFIGS: list[dict[str, str]] = [
    {"AGGREGATE_CACHE_MAXSIZE": ""},
    *(
        {"AGGREGATE_CACHE_MAXSIZE": "10000", "AGGREGATE_CACHE_FASTFORWARD": ff, "DEEPCOPY_FROM_AGGREGATE_CACHE": dc}
        for ff in ("y", "n")
        for dc in ("y", "n")
    ),
]
POSTGRES_THREADS = (1, 8)
_SHORT = {
    "AGGREGATE_CACHE_MAXSIZE": "cache",
    "AGGREGATE_CACHE_FASTFORWARD": "fastforward",
    "DEEPCOPY_FROM_AGGREGATE_CACHE": "deepcopy",
}

# A configuration that is far slower than the others (no cache on one ever-longer stream replays it
# all on every command) stops early: its rate over the commands done, which only flatters it.
TIME_LIMIT = 20.0

# One peer rehydration: (seconds, events replayed).
PeerCase = Callable[[], tuple[float, int]]


@dataclass(frozen=True)
class PeerConfig:
    """One of the peer's configurations: its Application settings and how many threads send commands."""

    settings: dict[str, str]
    threads: int

    @property
    def label(self) -> str:
        return " ".join(f"{_SHORT[k]}={v or 'unset'}" for k, v in self.settings.items()) + f" threads={self.threads}"


@dataclass
class PeerRun:
    config: str
    commands: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list, repr=False)  # one per command (get, method, save)
    threads: int = 1

    @property
    def rate(self) -> float:
        return self.commands / self.seconds


def missing_peer(store_url: str | None) -> str | None:
    """None when the peer can run on this store (eventsourcing, and psycopg on PostgreSQL), else what is
    missing and how to install it."""
    missing = []
    try:
        import eventsourcing  # noqa: F401
    except ImportError:
        missing.append("eventsourcing")
    if store_url is not None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            missing.append("psycopg")
    if not missing:
        return None
    return f"--compare needs {' and '.join(missing)}, from the `bench` extra: {INSTALL_BENCH_EXTRA}"


def peer_version() -> str:
    from importlib.metadata import version

    return version("eventsourcing")


def _env(store_url: str | None, directory: Path, config: dict[str, str], threads: int) -> tuple[dict[str, str], str]:
    """The Application's env (it overrides os.environ, so nothing outside changes the configuration)
    and, on PostgreSQL, the fresh schema it uses ("" on SQLite)."""
    env = {"COMPRESSOR_TOPIC": "", "CIPHER_TOPIC": "", "IS_SNAPSHOTTING_ENABLED": "n", **config}
    if store_url is None:
        env.update(
            PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=str(directory / f"peer-{uuid.uuid4().hex}.db")
        )
        return env, ""
    url = urlparse(store_url)
    schema = f"peer_{uuid.uuid4().hex[:10]}"
    env.update(
        PERSISTENCE_MODULE="eventsourcing.postgres",
        POSTGRES_DBNAME=url.path.lstrip("/"),
        POSTGRES_HOST=url.hostname or "127.0.0.1",
        POSTGRES_PORT=str(url.port or 5432),
        POSTGRES_USER=unquote(url.username or "postgres"),
        POSTGRES_PASSWORD=unquote(url.password or ""),
        POSTGRES_SCHEMA=schema,
        POSTGRES_POOL_SIZE=str(max(5, threads)),
    )
    return env, schema


def _schema(store_url: str, schema: str, *, create: bool) -> None:
    import psycopg

    with psycopg.connect(store_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"' if create else f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _run(
    env: dict[str, str], aggregates: int, commands_each: int, events: int, threads: int, label: str, time_limit: float
) -> tuple[int, float, list[float]]:
    """Open `aggregates` accounts (not timed), then `commands_each` credits of `events` events each, for at
    most `time_limit` seconds. Returns (commands done, seconds, each command's latency in ms)."""
    from actorsrc.bench.peer_bank import PeerBank

    app = PeerBank(env=env)
    try:
        ids = [app.open_account("owner") for _ in range(aggregates)]
        done = [0] * threads
        latencies: list[list[float]] = [[] for _ in range(threads)]
        clock = time.perf_counter
        with Progress(aggregates * commands_each, f"eventsourcing {label}") as progress:

            def worker(index: int, deadline: float) -> None:
                mine = ids[index::threads]  # each thread owns its aggregates: no conflicts to retry
                timed = latencies[index]
                for _ in range(commands_each):
                    for account_id in mine:
                        started = clock()
                        app.credit(account_id, 1, events)  # repository.get, the aggregate's method, save
                        timed.append((clock() - started) * 1000)
                        done[index] += 1
                        progress.advance()
                    if clock() > deadline:
                        return

            started = clock()
            pool = [threading.Thread(target=worker, args=(i, started + time_limit)) for i in range(threads)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join()
            return sum(done), clock() - started, [ms for each in latencies for ms in each]
    finally:
        app.close()


def peer_configs(store_url: str | None, aggregates: int) -> list[PeerConfig]:
    """Every configuration to try: threads on PostgreSQL only, and never more threads than aggregates
    (threads would fight over one aggregate)."""
    thread_counts = (1,) if store_url is None else POSTGRES_THREADS
    return [
        PeerConfig(settings, threads)
        for settings in SQLITE_CONFIGS
        for threads in thread_counts
        if threads <= aggregates
    ]


def peer_run(
    store_url: str | None,
    directory: Path,
    config: PeerConfig,
    aggregates: int,
    commands_each: int,
    events: int = 1,
    time_limit: float = TIME_LIMIT,
) -> PeerRun:
    """The peer's commands/s in one configuration, on a fresh database (a new file, or a new schema)."""
    env, schema = _env(store_url, directory, config.settings, config.threads)
    if store_url is not None:
        _schema(store_url, schema, create=True)
    label = config.label
    try:
        commands, seconds, latencies = _run(env, aggregates, commands_each, events, config.threads, label, time_limit)
    finally:
        if store_url is not None:
            _schema(store_url, schema, create=False)
        else:
            Path(env["SQLITE_DBNAME"]).unlink(missing_ok=True)
    if commands < aggregates * commands_each:
        label += f", stopped after {time_limit:.0f} s"
    return PeerRun(label, commands, seconds, latencies, config.threads)


def peer_write(
    store_url: str | None,
    directory: Path,
    aggregates: int,
    commands_each: int,
    events: int = 1,
    time_limit: float = TIME_LIMIT,
) -> list[tuple[PeerConfig, PeerRun]]:
    """Every configuration (`peer_configs`) in turn, each on a fresh database."""
    return [
        (config, peer_run(store_url, directory, config, aggregates, commands_each, events, time_limit))
        for config in peer_configs(store_url, aggregates)
    ]


def peer_replay_cases(
    store_url: str | None, directory: Path, length: int
) -> tuple[dict[str, PeerCase], Callable[[], None]]:
    """Write the peer's account of `length` events, then its two rehydrations (cache off, so a get
    really replays: without and with snapshots) and a closer."""
    from actorsrc.bench.peer_bank import PeerBank

    env, schema = _env(store_url, directory, {"AGGREGATE_CACHE_MAXSIZE": ""}, 1)
    if store_url is not None:
        _schema(store_url, schema, create=True)
    writer = PeerBank(env={**env, "IS_SNAPSHOTTING_ENABLED": "y"})
    account_id = writer.open_account("owner")
    remaining = length - 1
    while remaining:  # chunks of SNAPSHOT_EVERY - 1 credits a save: set-up, and each 1000th version snapshots
        step = min(SNAPSHOT_EVERY - 1, remaining)
        writer.credit(account_id, 1, step)
        remaining -= step
    writer.close()
    plain = PeerBank(env=env)
    snapshotting = PeerBank(env={**env, "IS_SNAPSHOTTING_ENABLED": "y"})

    def case(app: Any, replayed: Callable[[], int]) -> PeerCase:
        def rehydrate() -> tuple[float, int]:
            started = time.perf_counter()
            balance, version = app.balance(account_id)
            elapsed = time.perf_counter() - started
            if version != length or balance != length - 1:
                raise AssertionError(f"eventsourcing rebuilt version {version}, balance {balance}")
            return elapsed, replayed()

        return rehydrate

    def after_snapshot() -> int:
        assert snapshotting.snapshots is not None  # snapshotting is on for this application
        newest = list(snapshotting.snapshots.get(account_id, desc=True, limit=1))
        return length - (newest[0].originator_version if newest else 0)

    def close() -> None:
        plain.close()
        snapshotting.close()
        if store_url is not None:
            _schema(store_url, schema, create=False)

    return {PEER_FULL: case(plain, lambda: length), PEER_SNAPSHOT: case(snapshotting, after_snapshot)}, close
