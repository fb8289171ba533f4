"""SIGKILL a projection during catch-up, many times: the read model ends identical to a rebuild."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from actorsrc import Runtime, SQLiteEventStore, SQLiteReadModel
from examples.bank import Credit, OpenAccount, account
from tests.read_side_fixtures import balances, read_balances

ROOT = Path(__file__).resolve().parent.parent


async def _write_history(db: Path, accounts: int, credits: int) -> int:
    async with SQLiteEventStore.open(db, durable=False) as store, Runtime(store, [account]) as runtime:

        async def drive(n: int) -> None:
            ref = runtime.ref(account, f"a{n}")
            await ref.ask(OpenAccount("x"))
            for amount in range(1, credits + 1):
                await ref.ask(Credit(amount))

        async with anyio.create_task_group() as tg:
            for n in range(accounts):
                tg.start_soon(drive, n)
        return await store.last_position()


async def _projected(events_db: Path, read_db: Path, last: int) -> tuple[dict[str, int], int]:
    async with (
        SQLiteEventStore.open(events_db) as store,
        SQLiteReadModel.open(read_db) as read_model,
        Runtime(store, [account], handlers=[balances], read_model=read_model) as runtime,
    ):
        await runtime.wait_for(balances, last, timeout=60)
        assert await runtime.parked() == []  # a repeated event would have failed on `applied` and been parked
        applied = (await read_model.query("SELECT count(*), count(DISTINCT position) FROM applied"))[0]
        assert applied == (last, last)
        return await read_balances(read_model), await read_model.checkpoint("balances")


@pytest.mark.slow
async def test_projection_killed_during_catch_up_matches_a_rebuild(tmp_path: Path) -> None:
    events_db, read_db = tmp_path / "events.db", tmp_path / "read.db"
    last = await _write_history(events_db, accounts=200, credits=150)
    rng = random.Random(4)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    checkpoints: list[int] = []
    for _ in range(12):
        worker = subprocess.Popen(  # noqa: ASYNC220 - nothing else runs on this loop meanwhile
            [sys.executable, "-m", "tests.projection_worker", str(events_db), str(read_db)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert worker.stdout is not None
            assert worker.stdout.readline() == b"ready\n"
            await anyio.sleep(rng.uniform(0.0, 0.15))
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            for stream in (worker.stdout, worker.stderr):
                if stream is not None:
                    stream.close()
        async with SQLiteReadModel.open(read_db) as read_model:
            checkpoints.append(await read_model.checkpoint("balances"))
    assert sum(0 < c < last for c in checkpoints) >= 3, checkpoints  # several kills landed mid-catch-up
    assert checkpoints == sorted(checkpoints)
    survived, checkpoint = await _projected(events_db, read_db, last)
    rebuilt, _ = await _projected(events_db, tmp_path / "rebuilt.db", last)
    assert checkpoint == last
    assert survived == rebuilt
    assert sum(rebuilt.values()) == 200 * sum(range(1, 151))
