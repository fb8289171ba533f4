"""Runtimes on cores in real OS processes: exclusive parts, routing between processes, an owner killed and
restarted, kill -9 under load, and the launcher."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from actorsrc import SQLiteEventStore
from actorsrc.records import RecordedEvent
from actorsrc.store.base import EventStore
from tests.cluster_processes import assert_acks_exactly_once, examine
from tests.cores_processes import ROOT, read_acks, workers
from tests.helpers import wait_until
from tests.test_cores import accounts_on, on_part


async def whole_log(store: EventStore) -> list[RecordedEvent]:
    records: list[RecordedEvent] = []
    while chunk := await store.read_all(records[-1].position if records else 0, 5000):
        records.extend(chunk)
    return records


async def test_parts_are_exclusive_and_a_restarted_worker_takes_the_freed_part(tmp_path: Path) -> None:
    async with workers(tmp_path, 2) as started:
        first, second = await started.start("a"), await started.start("b")
        assert {first.part, second.part} == {0, 1}
        with pytest.raises(AssertionError, match="NoFreePartError"):  # it exits: every part is held
            await started.start("c")
        await first.kill()
        again = await started.start("d")
        assert again.part == first.part


async def test_any_process_reaches_the_owner_an_absent_owner_is_moving_then_served_again(tmp_path: Path) -> None:
    async with workers(tmp_path, 2) as started:
        a, b = await started.start("a"), await started.start("b")
        theirs = on_part(b.part)
        assert (await a.ask(theirs, open=True))["version"] == 1  # routed
        assert (await b.ask(theirs, amount=5))["version"] == 2  # local
        await b.kill()
        refused = await a.ask(theirs, amount=1, timeout=0.5)
        assert refused["error"] == "ShardMovingError"
        restarted = await started.start("b2")
        assert restarted.part == b.part
        assert (await a.ask(theirs, amount=1))["version"] == 3
        await a.quit()
        await restarted.quit()
    async with SQLiteEventStore.open(tmp_path / "parts" / f"part-{b.part}-of-2.db") as store:
        assert [r.version for r in await store.read_stream(f"account-{theirs}")] == [1, 2, 3]


async def test_kill_9_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    names = accounts_on(0, 20) + accounts_on(1, 20)
    async with workers(tmp_path, 2) as started:
        a, b = await started.start("a"), await started.start("b")
        load_a, load_b = await a.start_load(names), await b.start_load(names)
        await wait_until(lambda: a.acked() >= 300 and b.acked() >= 300, 60, what="acknowledged commands")
        await b.kill()  # mid-load: a's commands for b's part wait for the next owner
        restarted = await started.start("b2")
        load_b2 = await restarted.start_load(names)
        seen = a.acked()
        await wait_until(lambda: a.acked() >= seen + 300 and restarted.acked() >= 300, 60, what="more acks")
        for worker, load in ((a, load_a), (restarted, load_b2)):
            done = await worker.stop_load(load)
            assert not done["errors"], done
        await a.quit()
        await restarted.quit()
        del load_b
    acks = read_acks(a.ack_file) + read_acks(b.ack_file) + read_acks(restarted.ack_file)
    assert len(acks) >= 900
    for part in (0, 1):
        async with SQLiteEventStore.open(tmp_path / "parts" / f"part-{part}-of-2.db") as store:
            check = examine(await whole_log(store))
        mine = [ack for ack in acks if ack["a"] in set(accounts_on(part, 20))]
        assert_acks_exactly_once(check, mine)
        assert not [key for key in check.at if key[0] not in set(accounts_on(part, 20))]  # only its own streams


async def test_the_launcher_restarts_a_killed_worker_on_its_part_and_stops_cleanly(tmp_path: Path) -> None:
    log = (tmp_path / "launcher.log").open("ab")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CORES_TEST_DIR": str(tmp_path)}
    launcher = await anyio.open_process([sys.executable, "-m", "tests.cores_launched"], cwd=ROOT, env=env, stderr=log)
    try:
        pids = [tmp_path / "pid-0", tmp_path / "pid-1"]
        await wait_until(lambda: all(p.exists() for p in pids), 60, what="both parts started")
        killed = int(pids[1].read_text())  # written aside and renamed: never empty
        os.kill(killed, signal.SIGKILL)
        await wait_until(
            lambda: pids[1].read_text() not in ("", str(killed)), 60, what="part 1 started again in a new process"
        )
        launcher.send_signal(signal.SIGTERM)
        with anyio.fail_after(60):
            assert await launcher.wait() == 0, (tmp_path / "launcher.log").read_text()[-3000:]
    finally:
        if launcher.returncode is None:
            launcher.kill()
        with anyio.CancelScope(shield=True), anyio.move_on_after(30):
            await launcher.aclose()
        log.close()


async def test_the_launcher_kills_a_child_that_does_not_stop_within_the_grace(tmp_path: Path) -> None:
    log = (tmp_path / "launcher.log").open("ab")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CORES_TEST_DIR": str(tmp_path)}
    env |= {"CORES_TEST_STUBBORN": "1", "CORES_TEST_GRACE": "0.5"}
    launcher = await anyio.open_process(
        [sys.executable, "-m", "tests.cores_launched"], cwd=ROOT, env=env, stderr=log, stdout=subprocess.PIPE
    )
    try:
        pids = [tmp_path / "pid-0", tmp_path / "pid-1"]
        await wait_until(lambda: all(p.exists() for p in pids), 60, what="both parts started")
        stubborn = int(pids[1].read_text())
        launcher.send_signal(signal.SIGTERM)
        with anyio.fail_after(60):  # without the grace, the launcher would wait for part 1 forever
            assert await launcher.wait() == 1
        assert launcher.stdout is not None
        codes = json.loads(await launcher.stdout.receive())
        assert codes == {"0": 0, "1": -signal.SIGKILL}
        assert "cores.child_killed" in (tmp_path / "launcher.log").read_text()
        with pytest.raises(ProcessLookupError):
            os.kill(stubborn, 0)
    finally:
        if launcher.returncode is None:
            launcher.kill()
        with anyio.CancelScope(shield=True), anyio.move_on_after(30):
            await launcher.aclose()
        log.close()


def test_a_bad_stop_grace_is_refused() -> None:
    from actorsrc.cores import run
    from actorsrc.errors import ConfigurationError

    for bad in (-1, float("nan"), "5", True):
        with pytest.raises(ConfigurationError, match="stop_grace"):
            run(1, print, stop_grace=bad)  # type: ignore[arg-type]
