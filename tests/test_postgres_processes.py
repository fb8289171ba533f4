"""PostgreSQL with several processes: gapless ordering for subscribers, conflicts, kills, dropped links."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import asyncpg
import pytest

from actorsrc import ANY, NewEvent, RecordedEvent, Runtime, load_state
from actorsrc.records import Metadata, next_event_id
from actorsrc.store.postgres import PostgresEventStore
from examples.bank import OpenAccount, account
from tests.postgres_support import fresh_schema, require_postgres

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async for name in fresh_schema():
        yield name


def _spawn(mode: str, dsn: str, schema: str, worker: str, count: int, ack_file: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.postgres_worker", mode, dsn, schema, worker, str(count), str(ack_file)],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _finish(process: subprocess.Popen[bytes], *, kill: bool = False) -> None:
    if kill:
        process.send_signal(signal.SIGKILL)
    _, err = process.communicate(timeout=120)
    if not kill:
        assert process.returncode == 0, err.decode()


async def _whole_log(store: PostgresEventStore) -> list[RecordedEvent]:
    records: list[RecordedEvent] = []
    while chunk := await store.read_all(records[-1].position if records else 0, 5000):
        records.extend(chunk)
    return records


def _acks(path: Path) -> list[str]:
    return [line for line in path.read_text().split("\n")[:-1]] if path.exists() else []


@pytest.mark.slow
async def test_a_subscriber_never_skips_an_event_while_processes_append_concurrently(
    schema: str, tmp_path: Path
) -> None:
    dsn = require_postgres()
    async with PostgresEventStore.open(dsn, schema=schema) as store:
        wake = [anyio.Event()]
        remove = store.add_append_listener(lambda _position: wake[0].set())  # NOTIFY from the workers
        workers = [_spawn("append", dsn, schema, f"w{i}", 400, tmp_path / f"acks-{i}") for i in range(3)]
        seen: list[int] = []
        total = 3 * 400 * 2
        with anyio.fail_after(120):
            while len(seen) < total:  # tail the log in position order, as a subscriber does
                wake[0] = anyio.Event()  # renewed before the read, so no commit after it goes unnoticed
                chunk = await store.read_all(seen[-1] if seen else 0, 50)
                seen.extend(record.position for record in chunk)
                if not chunk:
                    await wake[0].wait()
        remove()
        for worker in workers:
            _finish(worker)
        assert seen == list(range(1, total + 1))  # nothing skipped, nothing out of order
        records = await _whole_log(store)
        assert len(records) == total
        per_stream = defaultdict(list)
        for record in records:
            per_stream[record.stream_id].append(record.version)
        assert all(v == list(range(1, len(v) + 1)) for v in per_stream.values())


@pytest.mark.slow
async def test_two_runtimes_in_two_processes_conflict_and_lose_nothing(schema: str, tmp_path: Path) -> None:
    dsn = require_postgres()
    async with PostgresEventStore.open(dsn, schema=schema) as store:
        async with Runtime(store, [account]) as runtime:
            for n in range(5):
                await runtime.ref(account, f"shared-{n}").ask(OpenAccount("x"))
        acks = [tmp_path / "a", tmp_path / "b"]
        workers = [_spawn("credit", dsn, schema, name, 300, path) for name, path in zip("ab", acks, strict=True)]
        for worker in workers:
            _finish(worker)
        expected: Counter[str] = Counter()
        for path in acks:
            for line in _acks(path):
                account_id, amount = line.split()
                expected[account_id] += int(amount)
        assert sum(len(_acks(path)) for path in acks) == 600
        for n in range(5):
            loaded = await load_state(store, account, f"shared-{n}")
            assert loaded.state.balance == expected[f"shared-{n}"]
            versions = [r.version for r in await store.read_stream(f"account-shared-{n}")]
            assert versions == list(range(1, len(versions) + 1))
        assert await store.last_position() == 5 + 600


@pytest.mark.slow
async def test_sigkill_mid_append_leaves_no_half_written_append(schema: str, tmp_path: Path) -> None:
    dsn = require_postgres()
    rng = random.Random(6)
    ack_file = tmp_path / "acks"
    for round_number in range(5):
        worker = _spawn("append", dsn, schema, f"k{round_number}", 100_000, ack_file)
        assert worker.stdout is not None
        assert worker.stdout.readline() == b"ready\n"
        assert worker.stdout.readline() == b"acked 20\n"  # appending at full speed
        await anyio.sleep(rng.uniform(0.0, 0.3))  # fault timing: kill at a random point of the load
        _finish(worker, kill=True)
    async with PostgresEventStore.open(dsn, schema=schema) as store:
        records = await _whole_log(store)
    assert [r.position for r in records] == list(range(1, len(records) + 1))
    by_command: dict[str | None, list[str]] = defaultdict(list)
    for record in records:
        by_command[record.metadata.command_id].append(record.type)
    assert all(types == ["First", "Second"] for types in by_command.values())
    acked = _acks(ack_file)
    assert len(acked) >= 5 * 20
    assert all(command_id in by_command for command_id in acked)


async def test_dropped_connections_neither_lose_nor_double_an_append(schema: str) -> None:
    dsn = require_postgres()
    async with PostgresEventStore.open(dsn, schema=schema, retries=8) as store:
        acked: list[str] = []
        progress = [anyio.Event()]
        terminated: list[int] = []

        async def writer(n: int) -> None:
            for i in range(60):
                command_id = f"d{n}-{i}"
                events = [NewEvent("Happened", b"{}", Metadata(next_event_id(), command_id))]
                await store.append(f"s-{n % 7}", events, ANY)
                acked.append(command_id)
                progress[0].set()

        async def saboteur() -> None:
            killer = await asyncpg.connect(dsn)
            try:
                for kill in range(8):  # one kill per 60 acknowledged appends: every kill hits a busy store
                    while len(acked) < 60 * (kill + 1):
                        progress[0] = anyio.Event()
                        await progress[0].wait()
                    terminated.append(
                        await killer.fetchval(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                            " AND backend_type = 'client backend'"
                        )
                    )
            finally:
                await killer.close()

        async with anyio.create_task_group() as tg:
            tg.start_soon(saboteur)
            for n in range(10):
                tg.start_soon(writer, n)
        records = await _whole_log(store)
    ids = [r.metadata.command_id for r in records]
    assert len(terminated) == 8
    assert all(count > 0 for count in terminated)  # each kill found the store's connections to end
    assert len(acked) == 600
    assert Counter(ids) == Counter(acked)  # every acknowledged append exactly once
    assert [r.position for r in records] == list(range(1, 601))


async def test_notify_wakes_a_subscriber_when_another_process_appends(schema: str, tmp_path: Path) -> None:
    dsn = require_postgres()
    seen: list[int] = []
    async with PostgresEventStore.open(dsn, schema=schema) as store:
        woken = anyio.Event()

        def listener(position: int) -> None:
            seen.append(position)
            woken.set()

        remove = store.add_append_listener(listener)
        worker = _spawn("append", dsn, schema, "n", 5, tmp_path / "acks")
        with anyio.fail_after(20):  # no polling here: only a NOTIFY from the other process can wake us
            await woken.wait()
        _finish(worker)
        remove()
    assert seen
    assert max(seen) <= 10
