"""The actor's port: what an aggregate actor needs from whatever hosts it.

Its settings, the store and the store's shared breaker, the watch over its appends, and three hooks:
run me in a task, I stopped, a snapshot is due. `LocalActorHost` is the in-process implementation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from actorsrc.records import Snapshot
    from actorsrc.runtime.append_watch import AppendWatch
    from actorsrc.runtime.registry import AggregateEntry
    from actorsrc.runtime.store_health import StoreHealth
    from actorsrc.runtime.supervision import SupervisorPolicy
    from actorsrc.store.base import AppendSubmitter, EventStore, StreamPresenceHint


class HostedActor(Protocol):
    """What a host needs of an actor: its identity, its task body, and its snapshots."""

    @property
    def entry(self) -> AggregateEntry: ...

    @property
    def aggregate_id(self) -> str: ...

    async def run(self) -> None: ...

    def snapshot_of(self, state: Any, version: int, position: int) -> Snapshot: ...


class ActorHost(Protocol):
    @property
    def store(self) -> EventStore: ...

    @property
    def submitter(self) -> AppendSubmitter | None:
        """The store, when it takes an append without a coroutine (the task-free path); else None."""

    @property
    def presence(self) -> StreamPresenceHint | None:
        """The store, when it can say a stream surely does not exist (a new instance skips its read)."""

    @property
    def store_health(self) -> StoreHealth: ...

    @property
    def supervisor(self) -> SupervisorPolicy: ...

    @property
    def max_batch(self) -> int: ...

    @property
    def max_conflict_retries(self) -> int: ...

    @property
    def persist_timeout(self) -> float: ...

    @property
    def appends(self) -> AppendWatch: ...

    def spawn(self, actor: HostedActor) -> None:
        """Run `actor.run()` in a task: the actor needs one (recovery, a restart, a lookup)."""

    def stopped(self, actor: HostedActor) -> None:
        """`actor` ran out of mail."""

    def snapshot_due(self, actor: HostedActor, state: Any, version: int, position: int) -> None:
        """Save a snapshot of `state` (in the background: the replies have gone out already)."""
