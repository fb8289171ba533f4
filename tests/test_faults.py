"""FaultyStore itself: the held() signal, and the same faults on `append` and on `submit_append`."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from actorsrc import SQLiteEventStore, StoreError
from actorsrc.records import AppendResult, Metadata, NewEvent, next_event_id
from actorsrc.store.base import AppendSubmitter
from actorsrc.testing.faults import FaultyStore, InlineFaultyStore
from tests.helpers import both_persist_paths, wait_until


def event() -> NewEvent:
    return NewEvent("SomethingHappened", b"{}", Metadata(next_event_id()))


async def append(store: FaultyStore, stream_id: str, inline: bool) -> AppendResult:
    """Through the path the runtime would take with this store."""
    if inline:
        assert isinstance(store, InlineFaultyStore)
        return await store.submit_append(stream_id, [event()], 0)
    return await store.append(stream_id, [event()], 0)


def test_only_an_inline_store_offers_the_task_free_path() -> None:
    assert not isinstance(FaultyStore(None), AppendSubmitter)  # type: ignore[arg-type]
    inline = FaultyStore(None, inline=True)  # type: ignore[arg-type]
    assert isinstance(inline, InlineFaultyStore)
    assert isinstance(inline, AppendSubmitter)


@both_persist_paths
async def test_held_fires_once_appends_wait_at_the_gate(tmp_path: Path, inline: bool) -> None:
    async with SQLiteEventStore.open(tmp_path / "e.db") as inner:
        store = FaultyStore(inner, inline=inline)
        store.hold_appends()
        results: list[AppendResult] = []

        async def append_to(stream_id: str) -> None:
            results.append(await append(store, stream_id, inline))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(append_to, "s1")
                await store.held()
                store.hold_appends()  # holding again keeps the gate: s1 is not stranded behind a forgotten one
                tg.start_soon(append_to, "s2")
                await store.held(2)
                assert (store.held_appends, results, await inner.last_position()) == (2, [], 0)
                store.release_appends()
        assert store.held_appends == 0
        assert sorted(r.last_version for r in results) == [1, 1]
        assert (store.appends, store.appended_events) == (2, 2)
        await append(store, "s3", inline)  # released: later appends pass straight through
        assert await inner.last_position() == 3


async def test_held_says_how_many_arrived_when_it_times_out(tmp_path: Path) -> None:
    async with SQLiteEventStore.open(tmp_path / "e.db") as inner:
        store = FaultyStore(inner)
        with pytest.raises(TimeoutError, match=r"0 of the 1 appends awaited reached the gate in 0\.05 s"):
            await store.held(timeout=0.05)


@both_persist_paths
async def test_injected_failures_write_nothing_on_either_path(tmp_path: Path, inline: bool) -> None:
    async with SQLiteEventStore.open(tmp_path / "e.db") as inner:
        store = FaultyStore(inner, inline=inline)
        store.fail_next_appends(1)
        with pytest.raises(StoreError, match="injected failure appending to 's'"):
            await append(store, "s", inline)
        store.hold_appends()
        store.fail_next_appends(1)
        async with anyio.create_task_group() as tg:

            async def held_then_failed() -> None:
                with pytest.raises(StoreError, match="injected"):
                    await append(store, "s", inline)

            tg.start_soon(held_then_failed)
            await store.held()
            store.release_appends()  # a held append can still fail as injected
        assert (store.failures_injected, store.appends, await inner.last_position()) == (2, 0, 0)
        assert (await append(store, "s", inline)).last_version == 1


async def test_a_cancelled_held_submission_writes_nothing(tmp_path: Path) -> None:
    # What the runtime's persist-timeout watchdog does on the inline path: cancel the append's future.
    async with SQLiteEventStore.open(tmp_path / "e.db") as inner:
        store = FaultyStore(inner, inline=True)
        assert isinstance(store, InlineFaultyStore)
        store.hold_appends()
        future = store.submit_append("s", [event()], 0)
        await store.held()
        future.cancel()
        await wait_until(lambda: store.held_appends == 0, what="the cancelled append left the gate")
        store.release_appends()
        assert (await store.submit_append("s", [event()], 0)).last_version == 1
        assert (store.submitted, store.appends, await inner.last_position()) == (2, 1, 1)
