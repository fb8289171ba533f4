"""Ask round trips through the runtime on the in-memory store: 200 actors x 250 credits each.

A small, steady figure of the runtime's own cost per command (no fsync), for before/after checks:
    PYTHONPATH=<tree> python -m benchmarks.round_trips
"""

from __future__ import annotations

import time
from typing import Any

import anyio

from actorsrc import AggregateRef, Runtime, SQLiteEventStore
from examples.bank import Credit, OpenAccount, account

ACTORS = 200
ASKS = 250


async def main() -> None:
    async with SQLiteEventStore.open(":memory:") as store, Runtime(store, [account]) as runtime:
        refs = [runtime.ref(account, f"a{i}") for i in range(ACTORS)]
        for ref in refs:
            await ref.ask(OpenAccount("x"))

        async def caller(ref: AggregateRef[Any, Any, Any]) -> None:
            for _ in range(ASKS):
                await ref.ask(Credit(1))

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for ref in refs:
                tg.start_soon(caller, ref)
        print(f"{ACTORS * ASKS / (time.perf_counter() - started):.0f} commands/s")


if __name__ == "__main__":
    anyio.run(main)
