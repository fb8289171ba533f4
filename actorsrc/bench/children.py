"""Benchmark child processes: start them, read what they report, and always stop them.

A child puts on its queue a marker when ready, its report when done, or the repr of the exception that
ended it (a `str`, other than the "ready" marker); `next_report` turns the last into a `RuntimeError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import anyio

READY = "ready"
JOIN_SECONDS = 60


async def next_report(queue: Queue[Any], what: str, timeout: float) -> Any:
    """The next item a child put on `queue`; a child's failure raises, naming what it was doing."""
    item = await anyio.to_thread.run_sync(lambda: queue.get(timeout=timeout))
    if isinstance(item, str) and item != READY:
        raise RuntimeError(f"a benchmark process failed while {what}: {item}")
    return item


@asynccontextmanager
async def running(processes: Sequence[BaseProcess], done: Event) -> AsyncIterator[None]:
    """Start `processes`; on the way out (even failing) tell them `done`, then join each, killing one
    that has not ended within JOIN_SECONDS."""
    try:
        for process in processes:
            process.start()
        yield
    finally:
        done.set()
        for process in processes:
            await anyio.to_thread.run_sync(process.join, JOIN_SECONDS)
            if process.is_alive():
                process.kill()
