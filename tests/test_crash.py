"""SIGKILL a process mid-workload, many times: every acknowledged command survives, exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import anyio
import pytest

from actorsrc import Runtime, SQLiteEventStore, load_state
from actorsrc.records import RecordedEvent
from tests.crash_worker import WALLETS, wallet

ROOT = Path(__file__).resolve().parent.parent
KILLS = 20


async def _read_log(store: SQLiteEventStore) -> list[RecordedEvent]:
    records: list[RecordedEvent] = []
    while chunk := await store.read_all(records[-1].position if records else 0, 5000):
        records.extend(chunk)
    return records


def _acknowledged(ack_file: Path) -> dict[str, tuple[str, int]]:
    acks: dict[str, tuple[str, int]] = {}
    for line in ack_file.read_text().splitlines(keepends=True):
        if line.endswith("\n"):  # the kill may cut the last line short
            command_id, wallet_id, amount = line.split()
            acks[command_id] = (wallet_id, int(amount))
    return acks


async def _verify(db: Path, acks: dict[str, tuple[str, int]]) -> int:
    async with SQLiteEventStore.open(db) as store:
        records = await _read_log(store)
        assert [r.position for r in records] == list(range(1, len(records) + 1)), "global positions have a gap"
        by_command: dict[str | None, list[RecordedEvent]] = defaultdict(list)
        versions: dict[str, list[int]] = defaultdict(list)
        for record in records:
            by_command[record.metadata.command_id].append(record)
            versions[record.stream_id].append(record.version)
        for stream_id, stream_versions in versions.items():
            assert stream_versions == list(range(1, len(stream_versions) + 1)), f"{stream_id} has a version gap"
        for command_id, events in by_command.items():  # no half-written append
            assert [e.type for e in events] == ["Deposited", "FeeCharged"], command_id
            assert events[1].version == events[0].version + 1
        for command_id, (wallet_id, _) in acks.items():  # every acknowledgement is there, exactly once
            assert command_id in by_command, f"acknowledged command {command_id} was lost"
            assert by_command[command_id][0].stream_id == wallet.stream_id(wallet_id)
        deposits = Counter(record.stream_id for record in records if record.type == "Deposited")
        async with Runtime(store, [wallet]) as runtime:
            for n in range(WALLETS):
                wallet_id = f"w{n}"
                full = await load_state(store, wallet, wallet_id, use_snapshot=False)
                recovered = await load_state(store, wallet, wallet_id)
                assert recovered.state == full.state, wallet_id
                assert await runtime.ref(wallet, wallet_id).state() == full.state
                assert full.state.deposits == deposits[wallet.stream_id(wallet_id)]
        return len(records)


@pytest.mark.slow
async def test_sigkill_never_loses_an_acknowledged_command(tmp_path: Path) -> None:
    db, ack_file = tmp_path / "crash.db", tmp_path / "acks.txt"
    ack_file.touch()
    rng = random.Random(2026)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    events_seen = 0
    for round_number in range(KILLS):
        worker = subprocess.Popen(  # noqa: ASYNC220 - nothing else runs on this loop meanwhile
            [sys.executable, "-m", "tests.crash_worker", str(db), str(ack_file), f"r{round_number}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert worker.stdout is not None
            assert worker.stdout.readline() == b"ready\n", worker.stderr.read() if worker.stderr else b""
            await anyio.sleep(rng.uniform(0.05, 0.4))
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            for stream in (worker.stdout, worker.stderr):
                if stream is not None:
                    stream.close()
        assert worker.returncode == -signal.SIGKILL
        events = await _verify(db, _acknowledged(ack_file))
        assert events >= events_seen  # nothing vanished since the last round
        events_seen = events
    assert len(_acknowledged(ack_file)) > KILLS * 10  # the workload really ran between kills
