"""Which actors are in memory: an LRU directory with an idle timeout and a cap on live actors.

Passivation only ever removes idle actors (no mail, no task, no failure cool-down to remember), so
nothing queued is dropped; the next command for a passivated instance recovers it from the store.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from actorsrc.observability import logger
from actorsrc.runtime.actor import AggregateActor

ActorKey = tuple[str, str]


class ActorDirectory:
    def __init__(self, max_live: int | None, passivate_after: float | None) -> None:
        self.max_live = max_live
        self.passivate_after = passivate_after
        # Insertion order is recency order: a used actor is moved to the end, so the oldest idle
        # actors are found at the front.
        self.actors: dict[ActorKey, AggregateActor] = {}
        self.passivated = 0
        self._room_waiters: deque[asyncio.Future[None]] = deque()

    def __len__(self) -> int:
        return len(self.actors)

    def lookup(
        self, key: ActorKey, create: Callable[[], AggregateActor]
    ) -> AggregateActor | tuple[asyncio.Future[None], Callable[[], None]]:
        """The live actor for `key`, made most recent; or a waiter that resolves when there may be room."""
        actors = self.actors
        actor = actors.pop(key, None)
        if actor is None:
            if self.max_live is not None and len(actors) >= self.max_live and not self._evict_one():
                waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._room_waiters.append(waiter)
                return waiter, self.wake_one
            actor = create()
        actors[key] = actor
        return actor

    def wake_one(self) -> None:
        """An actor ran out of mail or left: a caller waiting for room may now get it."""
        waiters = self._room_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def wake_all(self) -> None:
        while self._room_waiters:
            waiter = self._room_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _evict_one(self) -> bool:
        now = asyncio.get_running_loop().time()
        for key, actor in self.actors.items():
            if actor.is_idle(now):
                self._passivate(key, actor, "live actor cap")
                return True
        return False

    def evict_idle(self, now: float) -> int:
        """Passivate actors idle since before ``now - passivate_after``; returns how many."""
        if self.passivate_after is None:
            return 0
        cutoff = now - self.passivate_after
        stale: list[tuple[ActorKey, AggregateActor]] = []
        for key, actor in self.actors.items():
            if actor.last_used > cutoff:
                break  # everything after this was used more recently
            if actor.is_idle(now):
                stale.append((key, actor))
        for key, actor in stale:
            self._passivate(key, actor, "idle")
        return len(stale)

    def remove(self, key: ActorKey, reason: str) -> None:
        """Drop an actor that has no mail and no task (its shard moved to another node)."""
        actor = self.actors.get(key)
        if actor is not None:
            self._passivate(key, actor, reason)

    def _passivate(self, key: ActorKey, actor: AggregateActor, reason: str) -> None:
        del self.actors[key]
        self.passivated += 1
        self.wake_one()
        logger.debug("actor.passivated", aggregate=key[0], aggregate_id=key[1], reason=reason, version=actor.version)

    async def sweep_forever(self) -> None:
        if self.passivate_after is None:
            return
        interval = min(max(self.passivate_after / 4, 0.01), 1.0)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            self.evict_idle(loop.time())
