"""The runtime: routes commands to aggregate actors, created on first use, and owns their tasks."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import anyio
from anyio.abc import TaskGroup

from actorsrc.domain import Aggregate
from actorsrc.errors import (
    AskTimeoutError,
    ConfigurationError,
    MailboxFullError,
    RuntimeClosedError,
    UnknownCommandError,
)
from actorsrc.runtime.actor import AggregateActor
from actorsrc.runtime.outcome import CommandOutcome, Envelope
from actorsrc.runtime.registry import AggregateEntry, build_entries, validate_aggregate_id
from actorsrc.store.base import EventStore

S = TypeVar("S")
C = TypeVar("C")
E = TypeVar("E")


class Runtime:
    """Runs aggregate instances as actors over an event store.

    Use it as ``async with Runtime(store, aggregates=[...]) as runtime``. On exit it refuses new
    commands, finishes every queued one, and returns once all actors are idle.
    """

    def __init__(
        self,
        store: EventStore,
        aggregates: Iterable[Aggregate[Any, Any, Any]],
        *,
        mailbox_capacity: int = 1024,
        max_batch: int = 256,
        max_conflict_retries: int = 3,
        default_timeout: float | None = 30.0,
    ) -> None:
        for name, value in (("mailbox_capacity", mailbox_capacity), ("max_batch", max_batch)):
            if value < 1:
                raise ConfigurationError(f"{name} must be >= 1, got {value}")
        if max_conflict_retries < 0:
            raise ConfigurationError(f"max_conflict_retries must be >= 0, got {max_conflict_retries}")
        if default_timeout is not None and default_timeout <= 0:
            raise ConfigurationError(f"default_timeout must be > 0 or None, got {default_timeout}")
        self.store = store
        self.mailbox_capacity = mailbox_capacity
        self.max_batch = max_batch
        self.max_conflict_retries = max_conflict_retries
        self.default_timeout = default_timeout
        self._entries = build_entries(aggregates)
        self._actors: dict[tuple[str, str], AggregateActor] = {}
        self._task_group: TaskGroup | None = None
        self._closing = False

    async def __aenter__(self) -> Self:
        if self._task_group is not None or self._closing:
            raise RuntimeClosedError("a Runtime can be entered once; create a new one")
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        self._closing = True
        task_group, self._task_group = self._task_group, None
        assert task_group is not None
        # The task group waits for every actor to drain its mailbox (or cancels them on error).
        return await task_group.__aexit__(exc_type, exc, tb)

    # -- addressing -----------------------------------------------------------------------------

    def ref(self, aggregate: Aggregate[S, C, E], aggregate_id: str) -> AggregateRef[S, C, E]:
        """A handle to one aggregate instance; cheap, and valid across passivation."""
        entry = self._entry(aggregate)
        return AggregateRef(self, entry, validate_aggregate_id(aggregate, aggregate_id))

    def _entry(self, aggregate: Aggregate[Any, Any, Any]) -> AggregateEntry:
        entry = self._entries.get(getattr(aggregate, "name", None))  # type: ignore[arg-type]
        if entry is None or entry.aggregate is not aggregate:
            raise ConfigurationError(
                f"aggregate {getattr(aggregate, 'name', aggregate)!r} is not registered with this runtime "
                f"(registered: {', '.join(sorted(self._entries))})"
            )
        return entry

    @property
    def live_actors(self) -> int:
        return len(self._actors)

    def mailbox_length(self, aggregate: Aggregate[Any, Any, Any], aggregate_id: str) -> int:
        actor = self._actors.get((aggregate.name, aggregate_id))
        return len(actor.mailbox) if actor is not None else 0

    # -- sending --------------------------------------------------------------------------------

    async def _ask(
        self, entry: AggregateEntry, aggregate_id: str, command: Any, *,
        timeout: float | None, command_id: str | None, wait_for_space: bool,
    ) -> CommandOutcome[Any]:
        aggregate = entry.aggregate
        if not isinstance(command, aggregate.commands):
            raise UnknownCommandError(
                f"{type(command).__qualname__} is not a command of aggregate {aggregate.name!r} "
                f"(accepted: {', '.join(c.__qualname__ for c in aggregate.commands)})"
            )
        if command_id is not None and (not isinstance(command_id, str) or not command_id):
            raise ValueError(f"command_id must be a non-empty str or None, got {command_id!r}")
        limit = self.default_timeout if timeout is None else timeout
        if limit is not None and limit <= 0:
            raise ValueError(f"timeout must be > 0, got {limit}")
        reply: asyncio.Future[CommandOutcome[Any]] = asyncio.get_running_loop().create_future()
        with anyio.move_on_after(limit) as scope:
            await self._deliver(entry, aggregate_id, Envelope(command, command_id, reply), wait_for_space)
            return await reply
        assert scope.cancelled_caught
        raise AskTimeoutError(
            f"{aggregate.name} {aggregate_id!r} did not reply to {type(command).__qualname__} within "
            f"{limit} s; the command may still be carried out"
        )

    async def _deliver(self, entry: AggregateEntry, aggregate_id: str, envelope: Envelope, wait: bool) -> None:
        key = (entry.aggregate.name, aggregate_id)
        while True:
            if self._closing or self._task_group is None:
                raise RuntimeClosedError("the runtime is closed or closing; it accepts no new commands")
            actor = self._actors.get(key)
            if actor is None:
                actor = self._actors[key] = AggregateActor(entry, aggregate_id, self.store)
            if len(actor.mailbox) < self.mailbox_capacity:
                break
            if not wait:
                raise MailboxFullError(
                    f"mailbox of {actor.stream_id!r} is full ({self.mailbox_capacity} commands queued)"
                )
            await self._wait_for_space(actor)
        actor.mailbox.append(envelope)
        if not actor.running:
            actor.running = True
            self._task_group.start_soon(actor.run, self.max_batch, self.max_conflict_retries)

    @staticmethod
    async def _wait_for_space(actor: AggregateActor) -> None:
        if actor.space_waiters is None:
            actor.space_waiters = deque()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        actor.space_waiters.append(waiter)
        await waiter


class AggregateRef(Generic[S, C, E]):
    """Sends commands to one aggregate instance."""

    __slots__ = ("_entry", "_runtime", "aggregate_id")

    def __init__(self, runtime: Runtime, entry: AggregateEntry, aggregate_id: str) -> None:
        self._runtime = runtime
        self._entry = entry
        self.aggregate_id = aggregate_id

    async def ask(
        self, command: C, *, timeout: float | None = None, command_id: str | None = None,
        wait_for_space: bool = True,
    ) -> CommandOutcome[E]:
        """Send `command` and wait until its events are durable.

        Returns the outcome (new version, global position, events). Raises the aggregate's
        `DomainError` if the command is rejected, `AskTimeoutError` after `timeout` seconds (default:
        the runtime's `default_timeout`), and `MailboxFullError` when the mailbox is full and
        `wait_for_space` is false.
        """
        return await self._runtime._ask(
            self._entry, self.aggregate_id, command,
            timeout=timeout, command_id=command_id, wait_for_space=wait_for_space,
        )

    def __repr__(self) -> str:
        return f"AggregateRef({self._entry.aggregate.name!r}, {self.aggregate_id!r})"
