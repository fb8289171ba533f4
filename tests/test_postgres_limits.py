"""PostgreSQL takes `StoreLimits` as the SQLite store does: sizes refused before anything is written,
and a bounded queue of replay reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from actorsrc import NO_STREAM, NewEvent, StoreLimits
from actorsrc.errors import LimitExceededError
from actorsrc.records import Metadata, next_event_id
from actorsrc.store.base import StoredPayload
from actorsrc.store.postgres import PostgresEventStore
from tests.postgres_support import fresh_schema, require_postgres


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async for name in fresh_schema():
        yield name


def _event(size: int) -> NewEvent:
    return NewEvent("Sized", b"x" * size, Metadata(next_event_id()))


async def test_the_limits_passed_are_the_ones_enforced(schema: str) -> None:
    limits = StoreLimits(max_event_bytes=100, max_append_events=3)
    async with PostgresEventStore.open(require_postgres(), schema=schema, limits=limits, listen=False) as store:
        assert store.limits is limits
        with pytest.raises(LimitExceededError, match="max_event_bytes") as caught:
            await store.append("s", [_event(101)], NO_STREAM)
        assert (caught.value.size, caught.value.limit) == (101, 100)
        with pytest.raises(LimitExceededError, match="max_append_events"):
            await store.append("s", [_event(1)] * 4, NO_STREAM)
        assert await store.last_position() == 0
        await store.append("s", [_event(100)] * 3, NO_STREAM)
        assert await store.last_position() == 3


def test_limits_must_be_store_limits() -> None:
    with pytest.raises(TypeError, match="StoreLimits"):
        PostgresEventStore("postgresql://127.0.0.1/x", limits={"max_event_bytes": 10})  # type: ignore[arg-type]


async def test_replay_reads_beyond_the_queue_limit_wait_for_room(schema: str) -> None:
    limits = StoreLimits(max_queued_reads=2)
    async with PostgresEventStore.open(require_postgres(), schema=schema, limits=limits, listen=False) as store:
        for n in range(8):
            await store.append(f"s-{n}", [_event(n + 1)], NO_STREAM)
        results: dict[int, list[StoredPayload]] = {}
        gate = anyio.Event()
        fetch = store._fetch

        async def held_fetch(sql: str, *params: Any) -> list[Any]:  # the first query waits for the gate
            await gate.wait()
            return await fetch(sql, *params)

        store._fetch = held_fetch  # type: ignore[method-assign]

        async def read(n: int) -> None:
            results[n] = await store.read_stream_payloads(f"s-{n}")

        try:
            async with anyio.create_task_group() as tg:
                for n in range(8):
                    tg.start_soon(read, n)
                # The first query took two reads; two more wait in the queue, and four wait for room in it.
                await anyio.wait_all_tasks_blocked()
                assert (len(results), len(store._payload_reads)) == (0, 2)
                gate.set()
        finally:
            gate.set()
        assert {n: [len(p[4]) for p in payloads] for n, payloads in results.items()} == {n: [n + 1] for n in range(8)}
