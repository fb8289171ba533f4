"""The runtime's read side: the subscriptions of its projections and process managers."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from actorsrc.errors import ConfigurationError
from actorsrc.projection import Handler, ProcessManager, Projection
from actorsrc.readmodel.base import ParkedEvent, ReadModel
from actorsrc.runtime.process import Addressing
from actorsrc.runtime.subscription import Subscription
from actorsrc.store.base import AppendNotifier, EventStore


@dataclass(frozen=True, slots=True)
class HandlerStatus:
    """Where a handler is and how it is doing.

    `status` is "starting", "running", "retrying" (an attempt failed and is being retried: `last_error`
    says what, `retrying_since` since when; the read model's or store's failures are retried until they
    clear), "stopped" (`stop_reason` says why: its policy said stop, or it overran its timeout and could
    not be interrupted), "rebuilding" or "closed".
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


class ReadSide:
    """Implements `HandlerWaits` for `AggregateRef`'s read-your-writes."""

    def __init__(
        self,
        store: EventStore,
        addressing: Addressing,
        handlers: Iterable[Handler],
        read_model: ReadModel | None,
        poll_interval: float,
    ) -> None:
        self.store = store
        self.read_model = read_model
        self.subscriptions: dict[str, Subscription] = {}
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
            self.subscriptions[handler.name] = Subscription(handler, store, addressing, read_model, poll_interval)
        self._unlisten: Callable[[], None] | None = None

    def start(self) -> None:
        if not self.subscriptions:
            return
        store = self.store
        if isinstance(store, AppendNotifier):
            subscriptions = list(self.subscriptions.values())

            def wake_all(position: int) -> None:
                for subscription in subscriptions:
                    subscription.wake(position)

            self._unlisten = store.add_append_listener(wake_all)
        for subscription in self.subscriptions.values():
            subscription.start()

    async def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        for subscription in self.subscriptions.values():
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
        await self.subscription(handler).wait_for(position, timeout)

    def statuses(self) -> list[HandlerStatus]:
        return [
            HandlerStatus(
                s.name,
                "projection" if isinstance(s.handler, Projection) else "process manager",
                s.status,
                s.position,
                s.events_handled,
                s.parked,
                s.stop_reason,
                s.health.last_error,
                s.health.retrying_since,
            )
            for s in self.subscriptions.values()
        ]

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
