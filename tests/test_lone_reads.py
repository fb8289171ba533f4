"""Small reads (a snapshot, a stream's next events, a version) run on the loop's thread when the reader's
thread is idle, a few per loop turn; longer reads and crowds still go to the thread. Same rows either way."""

from __future__ import annotations

from pathlib import Path

import anyio

from actorsrc import Runtime, SQLiteEventStore
from actorsrc.store.sqlite import SMALL_READ
from actorsrc.store.sqlite_reads import INLINE_PER_TURN
from examples.bank import Credit, OpenAccount, account


async def write_account(store: SQLiteEventStore, credits: int) -> None:
    async with Runtime(store, [account]) as runtime:
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"))
        async with anyio.create_task_group() as tg:  # concurrent: batched appends, not one commit each
            for _ in range(credits):
                tg.start_soon(ref.ask, Credit(1))


async def test_a_long_stream_is_read_whole_past_the_small_first_part(tmp_path: Path) -> None:
    async with SQLiteEventStore.open(tmp_path / "events.db") as store:
        await write_account(store, 3 * SMALL_READ)
        reads = store._reads
        assert reads is not None
        before = reads.done_inline
        rows = await store.read_stream_payloads("account-a")
        assert [row[0] for row in rows] == list(range(1, 3 * SMALL_READ + 2))
        assert reads.done_inline == before + 1  # the first SMALL_READ rows only
        tail = await store.read_stream_payloads("account-a", 3 * SMALL_READ)
        assert [row[0] for row in tail] == [3 * SMALL_READ, 3 * SMALL_READ + 1]
        assert reads.done_inline == before + 2


async def test_a_crowd_of_reads_goes_to_the_thread_after_a_few(tmp_path: Path) -> None:
    async with SQLiteEventStore.open(tmp_path / "events.db") as store:
        await write_account(store, 5)
        reads = store._reads
        assert reads is not None
        before = reads.done_inline
        versions: list[int] = []

        async def read() -> None:
            versions.append(await store.stream_version("account-a"))

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(read)
        assert versions == [6] * 50
        assert 1 <= reads.done_inline - before < 50


async def test_the_in_memory_store_reads_on_its_thread_only() -> None:
    async with SQLiteEventStore.open(":memory:") as store:
        await write_account(store, 2)
        reads = store._reads
        assert reads is not None
        assert await store.stream_version("account-a") == 3
        assert reads.done_inline == 0  # its one connection is the writer's: never used from two threads


def test_a_few_per_turn() -> None:
    assert 2 <= INLINE_PER_TURN <= 8  # a snapshot and its tail fit in one turn; a crowd does not
