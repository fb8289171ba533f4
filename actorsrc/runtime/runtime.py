"""The runtime: routes commands to aggregate actors, created on first use, and owns their tasks."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio

from actorsrc.domain import Aggregate
from actorsrc.errors import (
    ConfigurationError,
    MailboxFullError,
    RuntimeClosedError,
    UnknownCommandError,
)
from actorsrc.observability import logger
from actorsrc.projection import Handler
from actorsrc.readmodel.base import ParkedEvent, ReadModel
from actorsrc.runtime.actor import AggregateActor
from actorsrc.runtime.delivery import Waiter, abandon, check_ids, expire
from actorsrc.runtime.directory import ActorDirectory
from actorsrc.runtime.outcome import READ_STATE, Envelope
from actorsrc.runtime.readside import HandlerStatus, ReadSide
from actorsrc.runtime.ref import AggregateRef
from actorsrc.runtime.registry import AggregateEntry, build_entries, validate_aggregate_id
from actorsrc.runtime.store_health import StoreBreakerPolicy, StoreHealth, StoreStatus
from actorsrc.runtime.supervision import SupervisorPolicy
from actorsrc.store.base import AppendSubmitter, EventStore, SnapshotStore

S = TypeVar("S")
C = TypeVar("C")
E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class RuntimeStats:
    live_actors: int
    running_actors: int
    queued_commands: int
    longest_mailbox: int
    failed_actors: int
    passivated: int
    snapshots_taken: int
    snapshots_failed: int
    store_available: bool  # False while the store breaker refuses commands (see `Runtime.store_status`)


class Runtime:
    """Runs aggregate instances as actors over an event store.

    Use it as ``async with Runtime(store, aggregates=[...]) as runtime``. On exit it refuses new
    commands, finishes every queued one, and returns once all actors are idle.

    - ``mailbox_capacity``: commands queued per actor before `ask` waits (or fails fast).
    - ``max_batch``: commands one actor decides and persists in one append.
    - ``max_conflict_retries``: reloads and re-decisions after another writer touched the stream.
    - ``default_timeout``: the `ask` timeout when the caller gives none (None: wait forever).
    - ``persist_timeout``: an append taking longer fails with `PersistTimeoutError` (its outcome is
      unknown, so the actor reloads its state) and counts as a store failure.
    - ``passivate_after``: seconds an actor may stay idle in memory (None: until evicted by the cap).
    - ``max_live_actors``: a cap on actors in memory; the least recently used idle ones are evicted,
      and when every live actor is busy a new instance waits for room.
    - ``supervisor``: the restart policy for crashed actors (`SupervisorPolicy`).
    - ``store_breaker``: when a failing store is probed again (`StoreBreakerPolicy`). While the store
      fails, commands that need it are refused at once with `StoreUnavailableError`, and no actor
      counts a restart for it.
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
        persist_timeout: float = 10.0,
        passivate_after: float | None = 300.0,
        max_live_actors: int | None = 100_000,
        supervisor: SupervisorPolicy | None = None,
        store_breaker: StoreBreakerPolicy | None = None,
        handlers: Iterable[Handler] = (),
        read_model: ReadModel | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        for name, value in (("mailbox_capacity", mailbox_capacity), ("max_batch", max_batch)):
            if value < 1:
                raise ConfigurationError(f"{name} must be >= 1, got {value}")
        if max_conflict_retries < 0:
            raise ConfigurationError(f"max_conflict_retries must be >= 0, got {max_conflict_retries}")
        for name, limit in (("default_timeout", default_timeout), ("passivate_after", passivate_after)):
            if limit is not None and limit <= 0:
                raise ConfigurationError(f"{name} must be > 0 or None, got {limit}")
        if persist_timeout <= 0:
            raise ConfigurationError(f"persist_timeout must be > 0, got {persist_timeout}")
        if max_live_actors is not None and max_live_actors < 1:
            raise ConfigurationError(f"max_live_actors must be >= 1 or None, got {max_live_actors}")
        self.store = store
        self.snapshot_store = store if isinstance(store, SnapshotStore) else None
        # Stores that take an append without a coroutine let healthy actors run without a task.
        self.submitter = store if isinstance(store, AppendSubmitter) else None
        self.inline_busy = 0  # actors whose append is in flight on the task-free path
        self.mailbox_capacity = mailbox_capacity
        self.max_batch = max_batch
        self.max_conflict_retries = max_conflict_retries
        self.default_timeout = default_timeout
        self.persist_timeout = persist_timeout
        self.supervisor = supervisor or SupervisorPolicy()
        # A probe that never reports (its append hung past persist_timeout, then its reload hung) is replaced.
        self.store_health = StoreHealth(store_breaker or StoreBreakerPolicy(), probe_timeout=2 * persist_timeout)
        self._entries = build_entries(aggregates)
        self._directory = ActorDirectory(max_live_actors, passivate_after)
        self._read_side = ReadSide(self, handlers, read_model, poll_interval)
        # Actor tasks exist only while an actor has mail. They are plain asyncio tasks: anyio's
        # start_soon costs ~36 us against ~3 us here, paid on every activation of an idle actor.
        self._tasks: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[None]] = set()  # snapshots being saved
        self._sweeper: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self.appending: dict[AggregateActor, tuple[float, asyncio.Future[Any]]] = {}  # deadline, task or append
        self._idle_waiter: asyncio.Future[None] | None = None
        self._entered = False
        self._closing = False
        self.snapshots_taken = 0
        self.snapshots_failed = 0

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeClosedError("a Runtime can be entered once; create a new one")
        self._entered = True
        loop = asyncio.get_running_loop()
        self._sweeper = loop.create_task(self._directory.sweep_forever())
        self._watchdog = loop.create_task(self._watch_appends())
        self._read_side.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Handlers stop first: a process manager still needs the actors to send its commands, and
        # whatever it had not finished is redelivered (with the same command ids) on the next start.
        with anyio.CancelScope(shield=True):
            await self._read_side.stop()
        self._closing = True
        self._wake_all_waiters()
        try:
            await self._drain()  # actors finish what is queued; new commands are refused
        except BaseException:
            # Cancelled while draining: queued commands are refused, but a batch already being
            # persisted finishes (bounded by persist_timeout) so that its callers learn how it ended.
            # Actor tasks are not cancelled: a raw cancel would cut through a shielded append.
            refused = RuntimeClosedError("the runtime was cancelled before this command was handled")
            for actor in self._directory.actors.values():
                actor.fail_queued(refused)
            for task in self._background:
                task.cancel()
            with anyio.CancelScope(shield=True):
                await self._drain()
            raise
        finally:
            housekeeping = [task for task in (self._sweeper, self._watchdog) if task is not None]
            for task in housekeeping:
                task.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait(housekeeping)

    # -- addressing -----------------------------------------------------------------------------

    def ref(self, aggregate: Aggregate[S, C, E], aggregate_id: str) -> AggregateRef[S, C, E]:
        """A handle to one aggregate instance; cheap, and valid across passivation."""
        entry = self._entry(aggregate)
        return AggregateRef(self, entry, validate_aggregate_id(aggregate, aggregate_id))

    def _entry(self, aggregate: Aggregate[Any, Any, Any]) -> AggregateEntry:
        name = getattr(aggregate, "name", None)
        entry = self._entries.get(name) if isinstance(name, str) else None
        if entry is None or entry.aggregate is not aggregate:
            raise ConfigurationError(
                f"aggregate {getattr(aggregate, 'name', aggregate)!r} is not registered with this runtime "
                f"(registered: {', '.join(sorted(self._entries))})"
            )
        return entry

    # -- observability --------------------------------------------------------------------------

    @property
    def live_actors(self) -> int:
        """Actors in memory now (busy or idle)."""
        return len(self._directory)

    def mailbox_length(self, aggregate: Aggregate[Any, Any, Any], aggregate_id: str) -> int:
        actor = self._directory.actors.get((aggregate.name, aggregate_id))
        return len(actor.mailbox) if actor is not None else 0

    def stats(self) -> RuntimeStats:
        """A snapshot of the runtime's gauges and counters (walks the live actors: not for hot paths)."""
        now = asyncio.get_running_loop().time()
        actors = self._directory.actors.values()
        return RuntimeStats(
            live_actors=len(self._directory),
            running_actors=len(self._tasks),
            queued_commands=sum(len(actor.mailbox) for actor in actors),
            longest_mailbox=max((len(actor.mailbox) for actor in actors), default=0),
            failed_actors=sum(1 for a in actors if a.supervision is not None and a.supervision.is_failed(now)),
            passivated=self._directory.passivated,
            snapshots_taken=self.snapshots_taken,
            snapshots_failed=self.snapshots_failed,
            store_available=not self.store_health.failing,
        )

    def store_status(self) -> StoreStatus:
        """Whether commands that need the store are served; while not, since when, the last error, and
        when the next probe may go (for a health endpoint)."""
        return self.store_health.status()

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._tasks or self._background or self.inline_busy:
            waits: list[asyncio.Future[Any]] = [*self._tasks, *self._background]
            if self.inline_busy:
                self._idle_waiter = loop.create_future()
                waits.append(self._idle_waiter)
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)

    def _maybe_idle(self) -> None:
        """An inline append finished: a closing runtime re-checks whether everything is idle."""
        waiter = self._idle_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _spawn(self, actor: AggregateActor) -> None:
        task = asyncio.get_running_loop().create_task(actor.run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch_appends(self) -> None:
        """Cancel appends that outlive `persist_timeout`; their actors then crash and restart."""
        loop = asyncio.get_running_loop()
        tick = min(1.0, self.persist_timeout / 4)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            for actor, (deadline, task) in list(self.appending.items()):
                if deadline <= now:
                    del self.appending[actor]
                    actor.append_expired = True
                    task.cancel()

    # -- read side ----------------------------------------------------------------------------------

    async def wait_for(self, handler: Handler | str, position: int, *, timeout: float | None = None) -> None:
        """Return once `handler` has processed the global log up to `position` (read-your-writes).

        Raises `WaitTimeoutError` after `timeout` seconds (default: the runtime's `default_timeout`),
        saying where the handler is, and at once if the handler is stopped (it would never get there).
        """
        limit = timeout if timeout is not None else self.default_timeout or 30.0
        await self._read_side.subscription(handler).wait_for(position, limit)

    async def rebuild(self, handler: Handler | str, *, on_progress: Callable[[int, int], None] | None = None) -> int:
        """Reset a handler and replay the whole log into it while commands keep flowing.

        For a projection, its `reset` and `setup` run, then every event is applied again; for a process
        manager, its state is cleared and its commands are sent again with the same ids: those that
        wrote events are recognised as duplicates by their targets, and those that were rejected or
        wrote nothing are remembered by the manager and not sent.
        `on_progress(position, target)` is called as it goes. Returns the position it caught up to.
        """
        return await self._read_side.subscription(handler).rebuild(on_progress)

    async def restart_handler(self, handler: Handler | str) -> None:
        """Start a stopped handler again from its checkpoint (after fixing what stopped it)."""
        subscription = self._read_side.subscription(handler)
        await subscription.stop()
        subscription.start()

    def handler_statuses(self) -> list[HandlerStatus]:
        return self._read_side.statuses()

    async def parked(self, handler: Handler | str | None = None) -> list[ParkedEvent]:
        """Events handlers gave up on, oldest first (all handlers when `handler` is None)."""
        return await self._read_side.parked(handler)

    async def retry_parked(self, parked_id: int) -> None:
        """Run the handler on a parked event again; on success it leaves the parked list."""
        await self._read_side.retry_parked(parked_id)

    async def discard_parked(self, parked_id: int) -> ParkedEvent:
        """Drop a parked event without handling it."""
        return await self._read_side.discard_parked(parked_id)

    # -- hooks the actors call --------------------------------------------------------------------

    def _actor_stopped(self, actor: AggregateActor) -> None:
        self._directory.wake_one()

    def _take_snapshot(self, actor: AggregateActor, state: Any, version: int, position: int) -> None:
        """Save a snapshot in the background: the replies have gone out already."""
        if self.snapshot_store is None:
            return
        task = asyncio.get_running_loop().create_task(self._save_snapshot(actor, state, version, position))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _save_snapshot(self, actor: AggregateActor, state: Any, version: int, position: int) -> None:
        assert self.snapshot_store is not None
        aggregate = actor.entry.aggregate
        try:
            await self.snapshot_store.save_snapshot(
                actor.snapshot_of(state, version, position), keep=aggregate.snapshot_keep
            )
        except Exception as exc:  # a missing snapshot only costs replay time later
            self.snapshots_failed += 1
            logger.warning(
                "snapshot.failed",
                aggregate=aggregate.name,
                aggregate_id=actor.aggregate_id,
                version=version,
                error=repr(exc),
            )
            return
        self.snapshots_taken += 1
        logger.debug("snapshot.taken", aggregate=aggregate.name, aggregate_id=actor.aggregate_id, version=version)

    # -- sending --------------------------------------------------------------------------------

    async def _ask(
        self,
        entry: AggregateEntry,
        aggregate_id: str,
        command: Any,
        *,
        timeout: float | None,
        command_id: str | None,
        wait_for_space: bool,
        causation_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Any:
        aggregate = entry.aggregate
        if command is not READ_STATE and not isinstance(command, aggregate.commands):
            if isinstance(command, type) and command in aggregate.commands:
                raise UnknownCommandError(
                    f"ask got the class {command.__qualname__}; pass an instance, e.g. {command.__qualname__}(...)"
                )
            raise UnknownCommandError(
                f"{type(command).__qualname__} is not a command of aggregate {aggregate.name!r} "
                f"(accepted: {', '.join(c.__qualname__ for c in aggregate.commands)})"
            )
        if command_id is not None or causation_id is not None or correlation_id is not None:
            check_ids(command_id=command_id, causation_id=causation_id, correlation_id=correlation_id)
        limit = self.default_timeout if timeout is None else timeout
        if limit is not None and not limit > 0:  # also refuses NaN
            raise ValueError(f"timeout must be > 0, got {limit}")
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        envelope = Envelope(command, command_id, reply, causation_id, correlation_id)
        # A timer that fails the reply is far cheaper than a cancel scope per command (~1.4 vs ~4.8 us).
        timer = (
            None
            if limit is None
            else loop.call_later(limit, expire, reply, aggregate.name, aggregate_id, command, limit)
        )
        try:
            waiter = self._deliver_now(entry, aggregate_id, envelope)
            if waiter is not None:
                if not wait_for_space:
                    abandon(waiter)
                    raise MailboxFullError(
                        f"no room for a command to {aggregate.stream_id(aggregate_id)!r}: its mailbox holds "
                        f"{self.mailbox_capacity} commands, or all {self.live_actors} live actors are busy"
                    )
                await self._deliver_when_possible(
                    envelope, waiter, lambda: self._deliver_now(entry, aggregate_id, envelope)
                )
            return await reply
        except BaseException:
            if reply.done() and not reply.cancelled():
                reply.exception()  # retrieved: a late timeout must not log "never retrieved"
            else:
                reply.cancel()  # the actor skips a command whose caller is gone
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _deliver_now(self, entry: AggregateEntry, aggregate_id: str, envelope: Envelope) -> Waiter | None:
        """Queue `envelope`, or return a waiter that resolves when it is worth trying again."""
        if self._closing or not self._entered:
            raise RuntimeClosedError("the runtime is closed or not started; it accepts no commands")
        found = self._directory.lookup(
            (entry.aggregate.name, aggregate_id), lambda: AggregateActor(self, entry, aggregate_id)
        )
        if not isinstance(found, AggregateActor):
            return found  # at the live-actor cap with every actor busy
        actor = found
        loop = asyncio.get_running_loop()
        if len(actor.mailbox) >= self.mailbox_capacity:
            if actor.space_waiters is None:
                actor.space_waiters = deque()
            waiter: asyncio.Future[None] = loop.create_future()
            actor.space_waiters.append(waiter)
            return waiter, lambda: actor.wake_space_waiters(1)
        actor.last_used = loop.time()
        actor.deliver(envelope)
        if not actor.running:
            actor.start()
        return None

    async def _deliver_when_possible(
        self, envelope: Envelope, waiter: Waiter, deliver: Callable[[], Waiter | None]
    ) -> None:
        pending: Waiter | None = waiter
        try:
            while pending is not None:
                # The reply future carries the timeout: stop waiting when it expires.
                await asyncio.wait([pending[0], envelope.reply], return_when=asyncio.FIRST_COMPLETED)
                if envelope.reply.done():
                    return
                pending = deliver()  # None once delivered; if it raises, `finally` passes the wake-up on
        finally:
            if pending is not None:
                abandon(pending)

    def _wake_all_waiters(self) -> None:
        """Closing: every caller waiting for room or space wakes up, and is told the runtime closed."""
        self._directory.wake_all()
        for actor in self._directory.actors.values():
            actor.wake_space_waiters(len(actor.space_waiters or ()))
