"""Appends in flight and their deadlines: the watchdog that bounds every append by `persist_timeout`.

Registering costs a dict entry, where a timer or a cancel scope per batch costs several microseconds.
The watchdog cancels an append that outlives its deadline (the task awaiting it on the task path, the
store's future on the inline path), after marking its actor `append_expired` so that the actor can
tell the watchdog's cancellation from any other. It also counts the inline appends in flight, which
own no task, so that closing can wait for them.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class Expirable(Protocol):
    append_expired: bool


class AppendWatch:
    __slots__ = ("_deadlines", "_idle_waiter", "inline_busy", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._deadlines: dict[Expirable, tuple[float, asyncio.Future[Any]]] = {}
        self.inline_busy = 0  # actors whose append is in flight on the task-free path
        self._idle_waiter: asyncio.Future[None] | None = None

    def watch(self, actor: Expirable, append: asyncio.Future[Any]) -> None:
        """`append` (a task or the store's future) is cancelled if it is still running after `timeout`."""
        actor.append_expired = False
        self._deadlines[actor] = (asyncio.get_running_loop().time() + self.timeout, append)

    def unwatch(self, actor: Expirable) -> None:
        self._deadlines.pop(actor, None)

    def inline_started(self) -> None:
        self.inline_busy += 1

    def inline_finished(self) -> None:
        """An inline append was settled: a closing runtime re-checks whether everything is idle."""
        self.inline_busy -= 1
        waiter = self._idle_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def idle_signal(self) -> asyncio.Future[None] | None:
        """A future that resolves when an inline append settles, or None when none is in flight."""
        if not self.inline_busy:
            return None
        self._idle_waiter = asyncio.get_running_loop().create_future()
        return self._idle_waiter

    async def run(self) -> None:
        """Cancel the appends that outlive their deadline; their actors then crash and restart."""
        loop = asyncio.get_running_loop()
        tick = min(1.0, self.timeout / 4)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            for actor, (deadline, append) in list(self._deadlines.items()):
                if deadline <= now:
                    del self._deadlines[actor]
                    actor.append_expired = True
                    append.cancel()
