"""The asks' timeouts: one timer per tick of deadlines, shared by every ask due in it.

A timer per ask (`call_later`, then `cancel`) costs ~2 us of a ~30 us command and leaves a cancelled
handle in the loop's heap until its time. Here an ask joins the bucket of its deadline, rounded up to
the next `TICK`, and leaves it when answered (a dict insert and delete); one timer per bucket fails
whatever is still unanswered. A timeout so fires up to one tick late, never early.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from actorsrc.runtime.waiting import expire

TICK = 0.01  # seconds

# What an expired ask's error names: (aggregate, aggregate id, command, timeout).
_Expiry = tuple[str, str, object, float]


class Deadlines:
    """The pending asks of one event loop, bucketed by deadline tick."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.buckets: dict[int, dict[asyncio.Future[Any], _Expiry]] = {}

    def add(
        self, reply: asyncio.Future[Any], limit: float, aggregate: str, aggregate_id: str, command: object
    ) -> dict[asyncio.Future[Any], _Expiry]:
        """Fail `reply` with `AskTimeoutError` after `limit` seconds unless answered; returns the bucket to
        `discard` it from once answered."""
        due = (self.loop.time() + limit) / TICK
        if not math.isfinite(due):  # `timeout=math.inf` (or one past any float) waits forever: no timer, no tick
            return {}
        tick = math.ceil(due)
        bucket = self.buckets.get(tick)
        if bucket is None:
            bucket = self.buckets[tick] = {}
            self.loop.call_at(tick * TICK, self._fire, tick)
        bucket[reply] = (aggregate, aggregate_id, command, limit)
        return bucket

    def _fire(self, tick: int) -> None:
        for reply, (aggregate, aggregate_id, command, limit) in self.buckets.pop(tick, {}).items():
            expire(reply, aggregate, aggregate_id, command, limit)
