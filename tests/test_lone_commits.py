"""A lone append commits on the loop's thread when that is safe, and on the writer's thread otherwise:
while another connection holds the write lock, after slow commits, and whenever batches hold more."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio

from actorsrc import Runtime, SQLiteEventStore
from actorsrc.store.sqlite_lone_commit import MAX_EVENTS, RETRY_AFTER, SLOW_SECONDS, LoneCommits
from examples.bank import Credit, OpenAccount, account
from tests.helpers import replayed_account, wait_until


async def test_the_policy_takes_lone_small_appends_in_quiet_moments_only() -> None:
    commits = LoneCommits()
    assert commits.may_commit_here(1, 1)
    assert not commits.may_commit_here(2, 2)
    assert not commits.may_commit_here(1, MAX_EVENTS + 1)  # a hot actor's big batch syncs on the thread
    commits.on_thread = 1
    assert not commits.may_commit_here(1, 1)
    commits.on_thread = 0
    commits.note(0.0001)
    assert not commits.may_commit_here(1, 1)  # one commit here per loop turn: a burst queues for the thread
    await wait_until(lambda: not commits.used_this_turn, what="the next loop turn")
    assert commits.may_commit_here(1, 1)
    commits.wrote_on_thread(300)
    assert not commits.may_commit_here(1, 1)  # under load: the thread's batches carry it
    commits.wrote_on_thread(1)
    assert commits.may_commit_here(1, 1)


async def test_after_a_slow_commit_the_thread_is_used_and_tried_again_now_and_then() -> None:
    commits = LoneCommits()
    commits.note(10 * SLOW_SECONDS)
    await wait_until(lambda: not commits.used_this_turn, what="the next loop turn")
    tries = [commits.may_commit_here(1, 1) for _ in range(RETRY_AFTER)]
    assert tries.count(True) == 1  # slow: once in RETRY_AFTER, to see whether the disk got faster
    assert tries[-1]


async def test_one_caller_commits_on_the_loop_thread(tmp_path: Path) -> None:
    async with SQLiteEventStore.open(tmp_path / "events.db") as store, Runtime(store, [account]) as runtime:
        store._lone_commits.slow_seconds = float("inf")  # however loaded the machine's disk is
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"))
        for _ in range(20):
            await ref.ask(Credit(1))
        assert store._lone_commits.done_here >= 20
    async with SQLiteEventStore.open(tmp_path / "events.db") as store:
        state, versions = await replayed_account(store, "a")
        assert state.balance == 20
        assert versions == list(range(1, 22))


async def test_a_held_write_lock_sends_the_append_to_the_thread_which_waits_for_it(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with SQLiteEventStore.open(path) as store, Runtime(store, [account]) as runtime:
        store._lone_commits.slow_seconds = float("inf")
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"))
        here_before = store._lone_commits.done_here
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another process writing
        try:
            async with anyio.create_task_group() as tg:
                outcomes = []

                async def credit() -> None:
                    outcomes.append(await ref.ask(Credit(5)))

                tg.start_soon(credit)
                await wait_until(lambda: store._lone_commits.on_thread == 1, what="the append to wait on the thread")
                assert outcomes == []  # the loop was not blocked: we are here while it waits
                other.execute("COMMIT")
        finally:
            other.close()
        assert outcomes[0].version == 2
        assert store._lone_commits.done_here == here_before
        state, _ = await replayed_account(store, "a")
        assert state.balance == 5


async def test_after_slow_commits_lone_appends_go_to_the_thread(tmp_path: Path) -> None:
    async with SQLiteEventStore.open(tmp_path / "events.db") as store, Runtime(store, [account]) as runtime:
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"))
        store._lone_commits.note(1000 * SLOW_SECONDS)  # as if the disk had stalled
        here_before = store._lone_commits.done_here
        for _ in range(5):
            await ref.ask(Credit(1))
        assert store._lone_commits.done_here == here_before
