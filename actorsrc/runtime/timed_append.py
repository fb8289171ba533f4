"""An actor's append bounded by `persist_timeout`, and the error it ends with when the time is up.

The task path awaits `append_within_timeout`; the inline path's append is cancelled by the same
watchdog (`AppendWatch`) and settles with `persist_timeout_error`. This module never imports
`actorsrc.runtime.actor`: it sees the actor through the small `AppendingActor` port.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from actorsrc.errors import PersistTimeoutError

if TYPE_CHECKING:
    from actorsrc.records import AppendResult, NewEvent
    from actorsrc.runtime.host import ActorHost


class AppendingActor(Protocol):
    """What an append needs of its actor (`append_expired` is set by the watchdog)."""

    host: ActorHost
    stream_id: str
    version: int
    append_expired: bool


def persist_timeout_error(stream_id: str, timeout: float) -> PersistTimeoutError:
    return PersistTimeoutError(
        f"append to {stream_id!r} did not complete within {timeout} s; "
        "its outcome is unknown until the actor reloads the stream"
    )


async def append_within_timeout(actor: AppendingActor, new_events: list[NewEvent]) -> AppendResult:
    """The batch's append, bounded by `persist_timeout` (see `AppendWatch`).

    Nothing but the watchdog ever cancels an actor task (the runtime refuses queued commands
    instead), so a cancellation that finds `append_expired` set is the watchdog's.
    """
    host = actor.host
    task = asyncio.current_task()
    assert task is not None
    appends = host.appends
    appends.watch(actor, task)
    try:
        return await host.store.append(actor.stream_id, new_events, actor.version)
    except asyncio.CancelledError:
        if not actor.append_expired:
            raise
        task.uncancel()
        raise persist_timeout_error(actor.stream_id, host.persist_timeout) from None
    finally:
        appends.unwatch(actor)
