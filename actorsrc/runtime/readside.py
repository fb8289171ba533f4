"""The runtime's read side: the subscriptions of its projections and process managers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from actorsrc.errors import ConfigurationError
from actorsrc.projection import Handler, ProcessManager, Projection
from actorsrc.readmodel.base import FencedCheckpoints, ParkedEvent, ReadModel
from actorsrc.runtime.process import Addressing
from actorsrc.runtime.subscription import STOP_TIMEOUT, Subscription
from actorsrc.runtime.subscription_partition import PartitionSpec, wait_partitions
from actorsrc.store.base import AppendNotifier, EventStore


@dataclass(frozen=True, slots=True)
class HandlerStatus:
    """Where a handler is and how it is doing.

    `status` is "starting", "running", "retrying" (an attempt failed and is being retried: `last_error`
    says what, `retrying_since` since when; the read model's or store's failures are retried until they
    clear), "stopped" (`stop_reason` says why: its policy said stop, or it overran its timeout and could
    not be interrupted), "rebuilding" or "closed". In a cluster there is one status per partition
    (`partition` is "index/count"); a partition another node runs (or nobody yet) is "elsewhere", with
    the position this node last read from its checkpoint.
    """

    name: str
    kind: str
    status: str
    position: int
    events_handled: int
    parked: int
    stop_reason: str | None
    last_error: str | None = None
    retrying_since: datetime | None = None
    partition: str | None = None


class ReadSide:
    """Implements `HandlerWaits` for `AggregateRef`'s read-your-writes.

    With `partitions` (a cluster), each projection runs as that many partition subscriptions (a process
    manager as one: an instance's events may come from streams in any partition), none started here:
    the cluster's `PartitionWork` starts and stops the ones this node holds the lease of.
    """

    def __init__(
        self,
        store: EventStore,
        addressing: Addressing,
        handlers: Iterable[Handler],
        read_model: ReadModel | None,
        poll_interval: float,
        partitions: int | None = None,
    ) -> None:
        self.store = store
        self.read_model = read_model
        self.subscriptions: dict[str, Subscription] = {}
        self.partitions: dict[str, list[Subscription]] = {}  # a cluster's: handler -> its partitions
        self.partitioned = partitions is not None
        handlers = list(handlers)
        if handlers and read_model is None:
            raise ConfigurationError(
                "projections and process managers need a read_model: pass read_model= an open SQLiteReadModel "
                "or PostgresReadModel"
            )
        for handler in handlers:
            if not isinstance(handler, Projection | ProcessManager):
                raise ConfigurationError(f"{handler!r} is neither a Projection nor a ProcessManager")
            if handler.name in self.subscriptions:
                raise ConfigurationError(f"two handlers are named {handler.name!r}; names must be unique")
            assert read_model is not None
            if partitions is None:
                self.subscriptions[handler.name] = Subscription(handler, store, addressing, read_model, poll_interval)
                continue
            if not isinstance(read_model, FencedCheckpoints):
                raise ConfigurationError(
                    f"a clustered read side needs a read model whose checkpoints can be fenced (PostgresReadModel "
                    f"or SQLiteReadModel); {type(read_model).__name__} has no claim_checkpoint"
                )
            count = partitions if isinstance(handler, Projection) else 1
            parts = [
                Subscription(handler, store, addressing, read_model, poll_interval, PartitionSpec(index, count))
                for index in range(count)
            ]
            self.partitions[handler.name] = parts
            self.subscriptions[handler.name] = parts[0]  # lookups: parked events, envelopes
        self._unlisten: Callable[[], None] | None = None

    def start(self) -> None:
        if not self.subscriptions:
            return
        store = self.store
        if isinstance(store, AppendNotifier):
            subscriptions = self._all()

            def wake_all(position: int) -> None:
                for subscription in subscriptions:
                    subscription.wake(position)

            self._unlisten = store.add_append_listener(wake_all)
        if self.partitioned:
            return  # the cluster's PartitionWork starts the partitions this node holds
        for subscription in self.subscriptions.values():
            subscription.start()

    def _all(self) -> list[Subscription]:
        if self.partitioned:
            return [part for parts in self.partitions.values() for part in parts]
        return list(self.subscriptions.values())

    async def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self.partitioned:  # partitions finish the batch in hand; the cluster then releases their leases
            await asyncio.gather(*(part.finish(STOP_TIMEOUT) for part in self._all()))
        for subscription in self._all():
            await subscription.stop()
            if subscription.status != "stopped":
                subscription.health.set("closed")

    def subscription(self, handler: Handler | str) -> Subscription:
        name = handler if isinstance(handler, str) else handler.name
        found = self.subscriptions.get(name)
        if found is None or (not isinstance(handler, str) and found.handler is not handler):
            raise ConfigurationError(
                f"handler {name!r} is not registered with this runtime "
                f"(registered: {', '.join(sorted(self.subscriptions)) or 'none'})"
            )
        return found

    def check(self, handler: Handler | str) -> None:
        self.subscription(handler)

    async def wait_for(self, handler: Handler | str, position: int, timeout: float) -> None:
        subscription = self.subscription(handler)
        if not self.partitioned:
            await subscription.wait_for(position, timeout)
            return
        assert self.read_model is not None
        await wait_partitions(subscription.name, self.partitions[subscription.name], self.read_model, position, timeout)

    async def wait_for_partition(self, handler: Handler | str, index: int, position: int, timeout: float) -> None:
        """Return once partition `index` of `handler` has its checkpoint at `position` or beyond (runtimes on
        cores with a log per part: a position is one part's). A process manager has one partition."""
        subscription = self.subscription(handler)
        if not self.partitioned:
            await subscription.wait_for(position, timeout)
            return
        assert self.read_model is not None
        parts = self.partitions[subscription.name]
        part = parts[index if index < len(parts) else 0]
        await wait_partitions(subscription.name, [part], self.read_model, position, timeout)

    def statuses(self) -> list[HandlerStatus]:
        return [
            HandlerStatus(
                s.name,
                "projection" if isinstance(s.handler, Projection) else "process manager",
                s.status if not self.partitioned or s.active or s.status == "stopped" else "elsewhere",
                s.position,
                s.events_handled,
                s.parked,
                s.stop_reason,
                s.health.last_error,
                s.health.retrying_since,
                None if s.partition is None else s.partition.label(),
            )
            for s in self._all()
        ]

    # -- a cluster's partitions (driven by actorsrc.cluster.partitions.PartitionWork) ----------------

    def partition_keys(self) -> list[tuple[str, int]]:
        return [(name, index) for name, parts in self.partitions.items() for index in range(len(parts))]

    def start_partition(self, name: str, index: int, fence: int) -> None:
        """Run partition `index` of `name` here, its checkpoint claimed with the lease's token `fence`."""
        part = self.partitions[name][index]
        part.fence = fence
        part.start()

    async def finish_partition(self, name: str, index: int) -> None:
        """Stop partition `index` of `name` after the batch in hand (handed off)."""
        await self.partitions[name][index].finish(STOP_TIMEOUT)

    async def drop_partition(self, name: str, index: int) -> None:
        """Stop partition `index` of `name` at once (its lease is lost; the fence refuses a late commit)."""
        part = self.partitions[name][index]
        await part.stop()
        if part.status != "stopped":
            part.health.set("closed", "lease lost")

    def partition_fenced(self, name: str, index: int) -> bool:
        return self.partitions[name][index].fenced

    async def restart(self, handler: Handler | str) -> None:
        """Start a stopped handler again (in a cluster: its stopped partitions on this node)."""
        subscription = self.subscription(handler)
        if not self.partitioned:
            await subscription.stop()
            subscription.start()
            return
        for part in self.partitions[subscription.name]:
            if part.status == "stopped":
                await part.stop()
                part.start()

    async def rebuild(self, handler: Handler | str, on_progress: Callable[[int, int], None] | None) -> int:
        subscription = self.subscription(handler)
        if self.partitioned:
            raise ConfigurationError(
                f"rebuilding {subscription.name!r} in a cluster is not supported: its partitions run on several "
                "nodes. Stop the nodes, rebuild it once from a runtime without cluster= (that also resets its "
                "partitions' checkpoints), then start the nodes again"
            )
        return await subscription.rebuild(on_progress)

    # -- parked events --------------------------------------------------------------------------

    def _model(self) -> ReadModel:
        if self.read_model is None:
            raise ConfigurationError("this runtime has no read model, so nothing is parked")
        return self.read_model

    async def parked(self, handler: Handler | str | None = None) -> list[ParkedEvent]:
        name = None if handler is None else self.subscription(handler).name
        return await self._model().parked(name)

    async def _parked_or_fail(self, parked_id: int) -> ParkedEvent:
        parked = await self._model().parked_event(parked_id)
        if parked is None:
            raise LookupError(f"no parked event with id {parked_id}")
        return parked

    async def retry_parked(self, parked_id: int) -> None:
        """Run the handler on a parked event again; on success it is no longer parked."""
        parked = await self._parked_or_fail(parked_id)
        subscription = self.subscription(parked.handler)
        records = await self.store.read_all(parked.position - 1, 1)
        if not records or records[0].position != parked.position:
            raise LookupError(f"the event at position {parked.position} is no longer in the store")
        envelope = subscription.envelope(records[0])
        await subscription.apply([envelope] if envelope is not None else [], None, unpark=parked_id)
        subscription.parked = max(0, subscription.parked - 1)

    async def discard_parked(self, parked_id: int) -> ParkedEvent:
        parked = await self._parked_or_fail(parked_id)
        await self._model().discard_parked(parked_id)
        with contextlib.suppress(ConfigurationError):  # a handler no longer registered keeps no count
            subscription = self.subscription(parked.handler)
            subscription.parked = max(0, subscription.parked - 1)
        return parked
