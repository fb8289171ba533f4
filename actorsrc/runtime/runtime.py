"""The runtime: routes commands to aggregate actors, created on first use, and owns their tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import anyio

from actorsrc.domain import Aggregate
from actorsrc.errors import ConfigurationError, RuntimeClosedError
from actorsrc.projection import Handler
from actorsrc.readmodel.base import ParkedEvent, ReadModel
from actorsrc.runtime.directory import ActorDirectory
from actorsrc.runtime.gc_tuning import PROCESS_GC
from actorsrc.runtime.local_host import LocalActorHost
from actorsrc.runtime.local_sender import LocalSender
from actorsrc.runtime.readside import HandlerStatus, ReadSide
from actorsrc.runtime.ref import AggregateRef
from actorsrc.runtime.registry import AggregateEntry, build_entries, validate_aggregate_id
from actorsrc.runtime.settings import ReadSettings, WriteSettings
from actorsrc.runtime.store_health import StoreBreakerPolicy, StoreStatus
from actorsrc.runtime.supervision import SupervisorPolicy
from actorsrc.store.base import EventStore

if TYPE_CHECKING:
    from actorsrc.cluster.node import ClusterNode
    from actorsrc.cluster.settings import Cluster
    from actorsrc.cores.claim import PartClaim
    from actorsrc.cores.node import CoresNode
    from actorsrc.cores.settings import Cores
    from actorsrc.runtime.sender import CommandSender, HandlerWaits

S = TypeVar("S")
C = TypeVar("C")
E = TypeVar("E")

_DEFAULT_WRITE = WriteSettings()
_DEFAULT_READ = ReadSettings()
_DEFAULT_SUPERVISOR = SupervisorPolicy()
_DEFAULT_STORE_BREAKER = StoreBreakerPolicy()


def _require(parameter: str, value: object, kind: type) -> None:
    if not isinstance(value, kind):
        raise ConfigurationError(
            f"Runtime's {parameter}= must be a {kind.__name__}, got {type(value).__name__} {value!r}"
        )


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

    - ``handlers``: projections and process managers fed from the event log (they need ``read_model``).
    - ``read_model``: where handlers keep their tables and checkpoints.
    - ``write`` (`WriteSettings`): the aggregate actors' settings:
      ``mailbox_capacity`` (commands queued per actor before `ask` waits or fails fast, default 1024),
      ``max_batch`` (commands decided and persisted in one append, 256),
      ``max_conflict_retries`` (reloads and re-decisions after another writer touched the stream, 3),
      ``default_timeout`` (the `ask` timeout when the caller gives none, 30 s; None: wait forever),
      ``persist_timeout`` (an append taking longer fails with `PersistTimeoutError`, its outcome unknown,
      and counts as a store failure, 10 s),
      ``passivate_after`` (seconds an actor may stay idle in memory, 300; None: until evicted by the cap),
      ``max_live_actors`` (actors in memory, 100,000; the least recently used idle ones are evicted, and
      when every live actor is busy a new instance waits for room; None: no cap).
    - ``read`` (`ReadSettings`): the handlers' settings: ``poll_interval`` (seconds between looks for
      events other processes appended, 1.0).
    - ``supervisor`` (`SupervisorPolicy`): the restart policy for crashed actors.
    - ``store_breaker`` (`StoreBreakerPolicy`): when a failing store is probed again. While the store
      fails, commands that need it are refused at once with `StoreUnavailableError`, and no actor
      counts a restart for it.
    - ``cluster`` (`actorsrc.cluster.Cluster`): join a cluster over NATS JetStream; each aggregate
      instance then lives on one node, and `ref(...).ask` reaches it from any node (the `cluster` extra).
    - ``cores``: set by `Runtime.for_cores` (the part this process claimed); see `actorsrc.cores`.
    - ``tune_gc``: while open, raise CPython's young-generation GC threshold to 50,000 (when the process
      still has CPython's defaults; see `actorsrc.runtime.gc_tuning`); `gc_tuned` says if it applied.
    """

    def __init__(
        self,
        store: EventStore,
        aggregates: Iterable[Aggregate[Any, Any, Any]],
        *,
        handlers: Iterable[Handler] = (),
        read_model: ReadModel | None = None,
        write: WriteSettings = _DEFAULT_WRITE,
        read: ReadSettings = _DEFAULT_READ,
        supervisor: SupervisorPolicy = _DEFAULT_SUPERVISOR,
        store_breaker: StoreBreakerPolicy = _DEFAULT_STORE_BREAKER,
        cluster: Cluster | None = None,
        tune_gc: bool = True,
        cores: PartClaim | None = None,
    ) -> None:
        if not isinstance(tune_gc, bool):
            raise ConfigurationError(f"tune_gc must be True or False, got {tune_gc!r}")
        _require("write", write, WriteSettings)
        _require("read", read, ReadSettings)
        _require("supervisor", supervisor, SupervisorPolicy)
        _require("store_breaker", store_breaker, StoreBreakerPolicy)
        self.store = store
        self._entries = build_entries(aggregates)
        self._directory = ActorDirectory(write.max_live_actors, write.passivate_after)
        self._cluster: ClusterNode | None = None
        actor_store: EventStore = store
        if cluster is not None:
            from actorsrc.cluster.node import ClusterNode  # here: nats-py only with the cluster extra

            self._cluster = ClusterNode(cluster, store, self._entries)
            actor_store = self._cluster.actor_store  # appends carry the shard's fencing token
        # The actors' port (settings, hooks, tasks) and the refs' (sending); both replaceable pieces.
        self._host = LocalActorHost(
            actor_store,
            max_batch=write.max_batch,
            max_conflict_retries=write.max_conflict_retries,
            persist_timeout=write.persist_timeout,
            supervisor=supervisor,
            store_breaker=store_breaker,
            on_stopped=self._directory.wake_one,
        )
        self.store_health = self._host.store_health
        self._sender = LocalSender(self._host, self._directory, write.mailbox_capacity, write.default_timeout)
        self._refs_sender: CommandSender = self._sender
        if self._cluster is not None:
            self._cluster.attach(self._sender, self._directory)
        handlers = list(handlers)
        self._cores: CoresNode | None = None
        if cores is not None:
            if cluster is not None:
                raise ConfigurationError("a runtime runs either on cores or in a cluster, not both")
            from actorsrc.cores.node import CoresNode

            self._cores = CoresNode(cores, self._entries, self._sender, handlers)
            self._refs_sender = self._cores.sender  # refuses commands until the runtime is entered
        partitions = cluster.partitions if cluster is not None and handlers else None
        if cores is not None and handlers:
            partitions = cores.count  # each part runs its own partition of every handler
        self._read_side = ReadSide(store, self, handlers, read_model, read.poll_interval, partitions)
        self._waits: HandlerWaits = self._read_side
        if self._cores is not None:
            self._cores.read_side = self._read_side
            self._waits = self._cores.waits_for(None, self._read_side)
        if self._cluster is not None and handlers:
            from actorsrc.cluster.partitions import PartitionWork

            node, read_side = self._cluster, self._read_side
            node.add_work(lambda link, book: PartitionWork(link, book, node.cluster, read_side))
        self._sweeper: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._entered = False
        self._tune_gc = tune_gc
        self.gc_tuned = False  # True while this runtime holds the process's GC tuning

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeClosedError("a Runtime can be entered once; create a new one")
        self._entered = True
        if self._tune_gc:
            self.gc_tuned = PROCESS_GC.acquire()
        loop = asyncio.get_running_loop()
        self._sweeper = loop.create_task(self._directory.sweep_forever())
        self._watchdog = loop.create_task(self._host.appends.run())
        self._sender.accepting = True
        if self._cluster is not None:
            await self._start_or_undo(self._cluster.start())
            assert self._cluster.router is not None
            self._refs_sender = self._cluster.router
            self._cluster.router.accepting = True
        if self._cores is not None:
            await self._start_or_undo(self._cores.start())
        self._read_side.start()
        if self._cores is not None:
            self._cores.start_read_side()
        return self

    @classmethod
    def for_cores(
        cls,
        cores: Cores,
        aggregates: Iterable[Aggregate[Any, Any, Any]],
        *,
        store: EventStore | None = None,
        **options: Any,
    ) -> AbstractAsyncContextManager[Runtime]:
        """A runtime on one part of `cores`: ``async with Runtime.for_cores(Cores("data", 4), [account]) as rt``.

        The process claims a free part; with `store` left out, the part's events go to its own SQLite file
        in the directory, else to `store` (a PostgreSQL store all the processes share). `options` are the
        `Runtime`'s. See `actorsrc.cores`.
        """
        from actorsrc.cores.opening import open_runtime

        return open_runtime(cls, cores, aggregates, store=store, **options)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Handlers stop first: a process manager still needs the actors to send its commands, and
        # whatever it had not finished is redelivered (with the same command ids) on the next start.
        with anyio.CancelScope(shield=True):
            await self._read_side.stop()
            if self._cluster is not None and self._cluster.router is not None:
                self._cluster.router.accepting = False
                await self._cluster.stop()  # hands every shard off: their mailboxes are finished first
            if self._cores is not None:
                await self._cores.stop()  # answers the routed commands that arrived; later ones are retried
        self._sender.accepting = False
        self._sender.wake_all_waiters()
        try:
            await self._drain()  # actors finish what is queued; new commands are refused
        except BaseException:
            # Cancelled while draining: queued commands are refused, but a batch already being
            # persisted finishes (bounded by persist_timeout) so that its callers learn how it ended.
            # Actor tasks are not cancelled: a raw cancel would cut through a shielded append.
            refused = RuntimeClosedError("the runtime was cancelled before this command was handled")
            for actor in self._directory.actors.values():
                actor.fail_queued(refused)
            for task in self._host.background:
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
            self._release_gc()

    async def _start_or_undo(self, starting: Coroutine[Any, Any, None]) -> None:
        """Await a part's start (the cluster node, the cores node); if it fails, nothing stays started."""
        try:
            await starting
        except BaseException:
            self._sender.accepting = False
            for task in (self._sweeper, self._watchdog):
                if task is not None:
                    task.cancel()
            self._release_gc()
            raise

    def _release_gc(self) -> None:
        if self.gc_tuned:
            self.gc_tuned = False
            PROCESS_GC.release()

    # -- settings (the actors' and the sender's, changeable while running) ----------------------

    @property
    def supervisor(self) -> SupervisorPolicy:
        return self._host.supervisor

    @supervisor.setter
    def supervisor(self, policy: SupervisorPolicy) -> None:
        self._host.supervisor = policy

    @property
    def max_batch(self) -> int:
        return self._host.max_batch

    @max_batch.setter
    def max_batch(self, value: int) -> None:
        WriteSettings(max_batch=value)  # refused as WriteSettings refuses it
        self._host.max_batch = value

    @property
    def max_conflict_retries(self) -> int:
        return self._host.max_conflict_retries

    @max_conflict_retries.setter
    def max_conflict_retries(self, value: int) -> None:
        WriteSettings(max_conflict_retries=value)  # refused as WriteSettings refuses it
        self._host.max_conflict_retries = value

    @property
    def persist_timeout(self) -> float:
        return self._host.persist_timeout

    @persist_timeout.setter
    def persist_timeout(self, seconds: float) -> None:
        WriteSettings(persist_timeout=seconds)  # refused as WriteSettings refuses it
        self._host.persist_timeout = seconds

    @property
    def mailbox_capacity(self) -> int:
        return self._sender.mailbox_capacity

    @mailbox_capacity.setter
    def mailbox_capacity(self, value: int) -> None:
        WriteSettings(mailbox_capacity=value)  # refused as WriteSettings refuses it
        self._sender.mailbox_capacity = value

    @property
    def default_timeout(self) -> float | None:
        return self._sender.default_timeout

    @default_timeout.setter
    def default_timeout(self, seconds: float | None) -> None:
        WriteSettings(default_timeout=seconds)  # refused as WriteSettings refuses it
        self._sender.default_timeout = seconds

    # -- addressing -----------------------------------------------------------------------------

    def ref(self, aggregate: Aggregate[S, C, E], aggregate_id: str) -> AggregateRef[S, C, E]:
        """A handle to one aggregate instance; cheap, and valid across passivation."""
        entry = self._entry(aggregate)
        aggregate_id = validate_aggregate_id(aggregate, aggregate_id)
        waits = (
            self._read_side
            if self._cores is None
            else self._cores.waits_for(aggregate.stream_id(aggregate_id), self._read_side)
        )
        return AggregateRef(self._refs_sender, entry, aggregate_id, waits)

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
    def cores_part(self) -> int | None:
        """The part of `Runtime.for_cores`'s directory this process owns (None: not on cores)."""
        return None if self._cores is None else self._cores.index

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
            running_actors=len(self._host.tasks),
            queued_commands=sum(len(actor.mailbox) for actor in actors),
            longest_mailbox=max((len(actor.mailbox) for actor in actors), default=0),
            failed_actors=sum(1 for a in actors if a.supervision is not None and a.supervision.is_failed(now)),
            passivated=self._directory.passivated,
            snapshots_taken=self._host.snapshots_taken,
            snapshots_failed=self._host.snapshots_failed,
            store_available=not self.store_health.failing,
        )

    def store_status(self) -> StoreStatus:
        """Whether commands that need the store are served; while not, since when, the last error, and
        when the next probe may go (for a health endpoint)."""
        return self.store_health.status()

    async def _drain(self) -> None:
        while waits := self._host.busy():
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)

    # -- read side ----------------------------------------------------------------------------------

    async def wait_for(self, handler: Handler | str, position: int, *, timeout: float | None = None) -> None:
        """Return once `handler` has processed the global log up to `position` (read-your-writes).

        Raises `WaitTimeoutError` after `timeout` seconds (default: the runtime's `default_timeout`),
        saying where the handler is, and at once if the handler is stopped (it would never get there).
        """
        limit = timeout if timeout is not None else self.default_timeout or 30.0
        await self._waits.wait_for(handler, position, limit)  # on cores with a file per part: this part's log

    async def rebuild(self, handler: Handler | str, *, on_progress: Callable[[int, int], None] | None = None) -> int:
        """Reset a handler and replay the whole log into it while commands keep flowing.

        For a projection, its `reset` and `setup` run, then every event is applied again; for a process
        manager, its state is cleared and its commands are sent again with the same ids: those that
        wrote events are recognised as duplicates by their targets, and those that were rejected or
        wrote nothing are remembered by the manager and not sent.
        `on_progress(position, target)` is called as it goes. Returns the position it caught up to.
        """
        return await self._read_side.rebuild(handler, on_progress)

    async def restart_handler(self, handler: Handler | str) -> None:
        """Start a stopped handler again from its checkpoint (after fixing what stopped it)."""
        await self._read_side.restart(handler)

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
