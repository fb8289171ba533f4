"""One live aggregate instance: a lean mailbox, and a task only while there is mail.

An idle actor is a small object in the registry (no task, just a deque), which is what lets a
process hold very many of them. When mail arrives the runtime starts `run`, which drains the mailbox
in batches: it decides each command in order against the evolving state, persists the events of the
whole batch in one append, and only then replies to each caller.

When the actor's state becomes unknown (an append failed or hung, `evolve` raised, recovery failed)
it crashes: the affected callers get the error, and the supervisor's policy decides when the actor
rebuilds itself from the store, or that it has failed too often and refuses commands for a while.
A failure of the store itself is not the actor's fault and costs no restart: the actor reloads on its
next command, and the runtime's shared `StoreHealth` breaker decides when the store is used again.

A healthy actor over a store that takes appends without a coroutine needs no task at all: it decides
inline and its append is settled by a callback. Both paths settle a batch in `_settle`. The actor
knows its host only through the `ActorHost` port (settings, the store, the breaker, three hooks).
Recovery and crashes live in `actor_lifecycle`, the task path's bounded append in `timed_append`.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio

from actorsrc.errors import ConcurrencyError, RecoveryError, RuntimeClosedError
from actorsrc.observability import logger
from actorsrc.records import AppendResult, Snapshot
from actorsrc.runtime.actor_lifecycle import (
    LOOKUP_FAILED,
    PERSIST_FAILED,
    RECOVERY_FAILED,
    crashed,
    failed_error,
    log_bug,
    recover,
    refused_before_writing,
)
from actorsrc.runtime.command_envelope import CommandEnvelope
from actorsrc.runtime.command_memory import CommandMemory
from actorsrc.runtime.decision import BatchDecision, Crash, decide_batch, fail
from actorsrc.runtime.host import ActorHost
from actorsrc.runtime.outcome import CommandOutcome
from actorsrc.runtime.supervision import RestartTracker
from actorsrc.runtime.timed_append import append_within_timeout, persist_timeout_error
from actorsrc.runtime.waiting import Waiter

if TYPE_CHECKING:
    from actorsrc.runtime.registry import AggregateEntry


NO_MAIL: tuple[()] = ()


class AggregateActor:
    __slots__ = (
        "aggregate_id",
        "append_expired",
        "assumed_new",
        "commands",
        "conflicts_carried",
        "entry",
        "host",
        "last_used",
        "mailbox",
        "position",
        "recovered",
        "running",
        "space_waiters",
        "state",
        "stream_id",
        "supervision",
        "version",
    )

    def __init__(self, host: ActorHost, entry: AggregateEntry, aggregate_id: str) -> None:
        self.host = host
        self.entry = entry
        self.aggregate_id = aggregate_id
        self.stream_id = entry.aggregate.stream_id(aggregate_id)
        self.state: Any = entry.aggregate.initial
        self.version = 0
        self.position = 0
        self.recovered = False
        self.assumed_new = False  # recovered without a read: the store said the stream surely does not exist
        self.append_expired = False
        self.conflicts_carried = 0
        self.running = False
        self.last_used = 0.0
        # An empty deque costs ~760 bytes (CPython allocates a 64-slot block), half of an idle actor:
        # the mailbox is a shared empty tuple until mail arrives, and again once the actor is idle.
        self.mailbox: deque[CommandEnvelope] | tuple[()] = NO_MAIL
        self.space_waiters: deque[asyncio.Future[None]] | None = None
        self.supervision: RestartTracker | None = None  # allocated on the first crash
        self.commands: CommandMemory | None = None  # allocated on the first command id

    def deliver(self, envelope: CommandEnvelope) -> None:
        mailbox = self.mailbox
        if isinstance(mailbox, deque):
            mailbox.append(envelope)
        else:
            self.mailbox = deque((envelope,))

    def requeue_front(self, envelopes: list[CommandEnvelope]) -> None:
        mailbox = self.mailbox if isinstance(self.mailbox, deque) else deque()
        mailbox.extendleft(reversed(envelopes))
        self.mailbox = mailbox

    def is_idle(self, now: float) -> bool:
        """Safe to passivate: no mail, no task, and no failure cool-down to remember."""
        return (
            not self.running and not self.mailbox and (self.supervision is None or not self.supervision.is_failed(now))
        )

    # -- the task that runs while there is mail ----------------------------------------------

    async def run(self) -> None:
        """Drain the mailbox. Never raises: every failure goes to the callers it concerns."""
        batch: list[CommandEnvelope] = []
        loop = asyncio.get_running_loop()
        try:
            while self.mailbox:
                supervision = self.supervision
                if supervision is not None and not self.recovered:
                    now = loop.time()
                    if supervision.is_failed(now):
                        self.fail_queued(failed_error(self, supervision.failed_until - now))
                        break
                    if supervision.not_before > now:  # restart backoff
                        await anyio.sleep(supervision.not_before - now)
                        continue
                batch = self._take(self.host.max_batch)
                if batch:
                    await self._handle(batch)
                batch = []
        except BaseException as exc:
            # Cancelled (the runtime was torn down) or a bug in the runtime itself: nobody may hang.
            error = RuntimeClosedError(f"actor {self.stream_id!r} stopped before replying: {exc!r}")
            for envelope in batch:
                fail(envelope, error)
            self.fail_queued(error)
            self.recovered = False
            if not isinstance(exc, Exception):
                raise
            log_bug(self, exc)
        finally:
            health = self.host.store_health
            if health.probe is self:  # ended without a verdict on the store (a query, a rejection, a bug)
                health.release(self)
            self._stopped()

    def _take(self, max_batch: int) -> list[CommandEnvelope]:
        mailbox = self.mailbox
        batch: list[CommandEnvelope] = []
        if not isinstance(mailbox, deque):
            return batch
        while mailbox and len(batch) < max_batch:
            envelope = mailbox.popleft()
            if not envelope.reply.done():  # a caller that timed out before we started is skipped
                batch.append(envelope)
        self.wake_space_waiters(len(batch))
        return batch

    def wait_for_space(self) -> Waiter:
        """The mailbox is full: a future that resolves when a command was taken out of it."""
        if self.space_waiters is None:
            self.space_waiters = deque()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.space_waiters.append(waiter)
        return waiter, lambda: self.wake_space_waiters(1)

    def wake_space_waiters(self, count: int) -> None:
        waiters = self.space_waiters
        while waiters and count > 0:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1
        if not waiters:
            self.space_waiters = None

    def fail_queued(self, error: BaseException) -> None:
        mailbox, self.mailbox = self.mailbox, NO_MAIL
        for envelope in mailbox:
            fail(envelope, error)

    async def _handle(self, batch: list[CommandEnvelope]) -> None:
        retries = self.host.max_conflict_retries
        first_attempt, self.conflicts_carried = self.conflicts_carried, 0
        health = self.host.store_health
        if self.assumed_new:  # the task path reads: an unproven guess is not decided on here
            self.recovered = self.assumed_new = False
        for attempt in range(first_attempt, retries + 1):
            if not self.recovered:
                if health.failing and not health.admit(self):
                    refusal = health.refusal()
                    for envelope in batch:
                        fail(envelope, refusal)
                    return
                try:
                    await recover(self)
                except Exception as exc:
                    error = RecoveryError(f"cannot recover {self.stream_id!r} from the store: {exc}")
                    error.__cause__ = exc
                    for envelope in batch:
                        fail(envelope, error)
                    crashed(self, RECOVERY_FAILED, exc)
                    return
            try:
                decision = await self._decide(batch)
            except Crash as crash:
                crashed(self, crash.reason, crash.cause)
                return
            if not await self._persist(decision, attempt):
                return
        # Out of attempts while the batch still asks to be decided again (the retry limit was changed while
        # it ran): it goes back to the mailbox rather than leave its callers waiting.
        self.requeue_front(batch)

    async def _decide(self, batch: list[CommandEnvelope]) -> BatchDecision:
        """Decide `batch` against the current state, after looking up the command ids it carries."""
        recorded: dict[str, CommandOutcome[Any]] = {}
        if any(envelope.command_id is not None and not envelope.fresh_id for envelope in batch):
            try:
                if self.commands is None:
                    self.commands = CommandMemory()
                recorded = await self.commands.recorded(
                    self.host.store, self.entry.codec, self.stream_id, self.version, batch
                )
            except Exception as exc:  # the store could not say which commands ran: nothing is decided
                for envelope in batch:
                    fail(envelope, exc)
                raise Crash(LOOKUP_FAILED, exc) from exc
        return decide_batch(self.entry, self.state, self.version, batch, recorded)

    async def _persist(self, decision: BatchDecision, attempt: int) -> bool:
        """The task path's append of a decided batch, then `_settle`. True: decide the batch again."""
        if not decision.new_events:
            return self._settle(decision, None, None, attempt)
        health = self.host.store_health
        if health.failing and not health.admit(self):
            self._refuse(decision)
            return False
        try:
            result = await append_within_timeout(self, decision.new_events)
        except Exception as exc:
            return self._settle(decision, None, exc, attempt)
        return self._settle(decision, result, None, attempt)

    def _settle(
        self, decision: BatchDecision, result: AppendResult | None, error: BaseException | None, attempt: int
    ) -> bool:
        """Settle a decided batch once its append is over (or when it wrote nothing): the one place
        the task path and the inline path handle success, conflict, refusal, failure and timeout.

        - success: the store's breaker hears it, the actor takes the batch's state and replies;
          an `evolve` failure found on the way crashes the actor after the replies before it.
        - conflict (another writer appended): the state is reloaded; returns True while attempts are
          left (`attempt` counts from 0), else the callers get the `ConcurrencyError`.
        - refused before writing (too large, a bad id): the callers get the error; the state is right.
        - any other failure or a timeout: the outcome is unknown, so the actor crashes and reloads.
        - a conflict or a refusal of a batch decided on a guessed new instance (`_assume_new`): returns True
          at once, whatever the attempt; nobody is answered from the guess.
        Commands left undecided (after an `evolve` failure) go back to the front of the mailbox.
        """
        health = self.host.store_health
        if self.assumed_new:  # the append with expected version 0 answered: proven, unless it failed
            self.assumed_new = False
            if error is not None:
                self.recovered = False
                if isinstance(error, ConcurrencyError) or refused_before_writing(error):
                    # Nothing was written, and the batch was decided on a guess that may be wrong (the
                    # stream exists): no caller hears of it; the task reads and decides again, at no attempt.
                    return True
        try:
            if error is None:
                if result is None:  # nothing to write: no verdict on the store, another may probe
                    if health.probe is self:
                        health.release(self)
                elif health.failing:
                    health.succeeded()
                self._complete(decision, result)
            elif isinstance(error, ConcurrencyError):
                self.recovered = False
                if attempt < self.host.max_conflict_retries:
                    logger.info(
                        "actor.conflict",
                        aggregate=self.entry.aggregate.name,
                        aggregate_id=self.aggregate_id,
                        attempt=attempt + 1,
                    )
                    return True
                health.release(self)
                decision.fail(error)
                self.requeue_front(decision.rest)
            else:
                decision.fail(error)
                self.requeue_front(decision.rest)  # never decided: they wait for their turn or the restart
                if refused_before_writing(error):  # nothing was sent: the actor's state is still right
                    health.release(self)
                else:
                    crashed(self, PERSIST_FAILED, error)
        except Crash as crash:
            self.requeue_front(crash.rest)
            crashed(self, crash.reason, crash.cause)
        return False

    def _refuse(self, decision: BatchDecision) -> None:
        """The store is failing: the batch is not sent. Its state was never taken, so the actor's own
        is still right and it stays recovered; commands after an `evolve` failure wait their turn."""
        decision.fail(self.host.store_health.refusal())
        self.requeue_front(decision.rest)

    def _complete(self, decision: BatchDecision, result: AppendResult | None) -> None:
        """The batch is durable (or wrote nothing): take its state, reply, maybe snapshot."""
        old_version = self.version
        self.state, self.version = decision.state, decision.version
        self.position = decision.reply(self.stream_id, result, self.position)
        for decided in decision.accepted:
            envelope = decided.envelope
            if envelope.command_id is None or envelope.fresh_id:  # a retry of a fresh id is looked up instead
                continue
            if decided.events and decided.outcome is not None:
                if self.commands is None:
                    self.commands = CommandMemory()
                self.commands.remember(envelope.command_id, decided.outcome)
        aggregate = self.entry.aggregate
        if (
            result is not None
            and aggregate.snapshots_enabled
            and aggregate.snapshot_due(self.state, old_version, self.version)
        ):
            self.host.snapshot_due(self, self.state, self.version, self.position)
        if decision.evolve_failure is not None:
            failed_envelope, cause = decision.evolve_failure
            fail(failed_envelope, cause)
            raise Crash("evolve raised", cause, decision.rest)

    # -- the fast path: no task while the actor is healthy -------------------------------------------

    def start(self) -> None:
        """Mail arrived for an idle actor: handle it inline if possible, else in a task."""
        self.running = True
        if not self._continue_inline():
            self.host.spawn(self)

    def _continue_inline(self) -> bool:
        """Decide the next batch right here and hand its append to the store, to be settled by a
        callback: no task is created, switched to or woken. Returns False when a task is needed
        (recovery, a restart, command ids to look up, a conflict to retry, a store without `submit_append`)."""
        host = self.host
        submitter = host.submitter
        health = host.store_health
        while True:
            if submitter is None or self.supervision is not None:
                return False
            if not self.recovered and not self._assume_new():
                return False
            if not self.mailbox:
                self._stopped()
                return True
            batch = self._take(host.max_batch)
            if any(envelope.command_id is not None and not envelope.fresh_id for envelope in batch):
                self.requeue_front(batch)
                return False
            decision = decide_batch(self.entry, self.state, self.version, batch, {})
            if not decision.new_events:
                if self.assumed_new:  # nothing written proves the stream empty: read it before answering
                    self.recovered = self.assumed_new = False
                    self.requeue_front(batch)
                    return False
                self._settle(decision, None, None, 0)
                continue
            if health.failing and not health.admit(self):  # the one check a healthy actor pays for the breaker
                self._refuse(decision)
                continue
            try:
                future = submitter.submit_append(self.stream_id, decision.new_events, self.version)
            except Exception as exc:
                guessed = self.assumed_new
                if self._settle(decision, None, exc, 0):
                    self._retry_in_task(decision, counts=not guessed)
                    return False
                continue
            appends = host.appends
            appends.inline_started()
            appends.watch(self, future)
            future.add_done_callback(functools.partial(self._appended, decision))
            return True

    def _assume_new(self) -> bool:
        """Start a new instance without its recovery read, when the store says the stream surely does not
        exist. The guess is proven before anyone is answered: the append expects version 0 (a stream
        that exists after all is a conflict, and the retry reads it, costing no attempt), a batch that writes
        nothing or whose append is refused unwritten is decided again after a real read."""
        presence = self.host.presence
        if self.mail_needs_lookup() or presence is None or presence.may_hold_stream(self.stream_id):
            return False
        self.state, self.version, self.position = self.entry.aggregate.initial, 0, 0
        self.recovered = self.assumed_new = True
        return True

    def mail_needs_lookup(self) -> bool:
        return any(envelope.command_id is not None and not envelope.fresh_id for envelope in self.mailbox)

    def _appended(self, decision: BatchDecision, future: asyncio.Future[AppendResult]) -> None:
        """Done-callback of an inline append: settle it, then go on with the mail."""
        host = self.host
        appends = host.appends
        appends.unwatch(self)
        guessed = self.assumed_new
        try:
            if future.cancelled():  # only the watchdog cancels it
                error: BaseException | None = persist_timeout_error(self.stream_id, host.persist_timeout)
            else:
                error = future.exception()
            if self._settle(decision, None if error is not None else future.result(), error, 0):
                self._retry_in_task(decision, counts=not guessed)
        except Exception as bug:  # a bug in the runtime itself: nobody may hang
            decision.fail(RuntimeClosedError(f"actor {self.stream_id!r} failed: {bug!r}"))
            self.recovered = False
            log_bug(self, bug)
        finally:
            appends.inline_finished()
        if not self._continue_inline():
            host.spawn(self)

    def _retry_in_task(self, decision: BatchDecision, *, counts: bool = True) -> None:
        """A conflict on the inline path: the task reloads and decides the batch again; this attempt counts,
        unless the batch was decided on a guessed new instance (the conflict says the guess was wrong)."""
        self.conflicts_carried = 1 if counts else 0
        self.requeue_front(decision.batch)

    def _stopped(self) -> None:
        self.running = False
        if not self.mailbox:
            self.mailbox = NO_MAIL
        self.wake_space_waiters(len(self.mailbox) + 1_000_000)
        self.host.stopped(self)

    def snapshot_of(self, state: Any, version: int, position: int) -> Snapshot:
        data = self.entry.codec.encode_state(state)
        return Snapshot(self.stream_id, version, position, self.entry.aggregate.snapshot_schema_version, data)
