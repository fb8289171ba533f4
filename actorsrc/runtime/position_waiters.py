"""Read-your-writes for a subscription: who waits for it to reach a log position, woken in position order
as it advances, or told at once when it stops."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

import anyio

_tiebreak = itertools.count()


class PositionWaiters:
    def __init__(self) -> None:
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []

    def release(self, position: int) -> None:
        """Wake everyone waiting for `position` or an earlier one."""
        heap = self._heap
        while heap and heap[0][0] <= position:
            _, _, waiter = heapq.heappop(heap)
            if not waiter.done():
                waiter.set_result(None)

    def fail_all(self, error: Callable[[int], BaseException]) -> None:
        """Raise `error(target)` in everyone waiting: the position will not move."""
        heap = self._heap
        while heap:
            target, _, waiter = heapq.heappop(heap)
            if not waiter.done():
                waiter.set_exception(error(target))

    async def wait(self, position: int, timeout: float) -> bool:
        """Wait until released for `position` (True) or `timeout` seconds pass (False); raises what
        `fail_all` sets."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (position, next(_tiebreak), waiter))
        with anyio.move_on_after(timeout):
            await waiter
            return True
        waiter.cancel()
        return False
