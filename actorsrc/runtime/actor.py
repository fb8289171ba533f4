"""One live aggregate instance: a lean mailbox, and a task only while there is mail.

An idle actor is a small object in the registry (no task, no queue object beyond a deque), which is
what lets a process hold very many of them. When mail arrives the runtime starts `run`, which drains
the mailbox in batches: it decides each command in order against the evolving state, persists the
events of the whole batch in one append, and only then replies to each caller.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from actorsrc.errors import ConcurrencyError, RecoveryError, RuntimeClosedError
from actorsrc.loading import load_state
from actorsrc.messages import Metadata, NewEvent, next_event_id
from actorsrc.observability import logger
from actorsrc.runtime.outcome import READ_STATE, CommandOutcome, Envelope

if TYPE_CHECKING:
    from actorsrc.runtime.registry import AggregateEntry
    from actorsrc.store.base import EventStore


class _Decided:
    """A command that was accepted in this batch: its events and where they sit in the append."""

    __slots__ = ("envelope", "events", "offset", "version")

    def __init__(self, envelope: Envelope, events: tuple[Any, ...], offset: int, version: int) -> None:
        self.envelope = envelope
        self.events = events
        self.offset = offset
        self.version = version


class AggregateActor:
    __slots__ = (
        "aggregate_id",
        "entry",
        "mailbox",
        "position",
        "recovered",
        "running",
        "space_waiters",
        "state",
        "store",
        "stream_id",
        "version",
    )

    def __init__(self, entry: AggregateEntry, aggregate_id: str, store: EventStore) -> None:
        self.entry = entry
        self.aggregate_id = aggregate_id
        self.stream_id = entry.aggregate.stream_id(aggregate_id)
        self.store = store
        self.state: Any = entry.aggregate.initial
        self.version = 0
        self.position = 0
        self.recovered = False
        self.running = False
        self.mailbox: deque[Envelope] = deque()
        self.space_waiters: deque[asyncio.Future[None]] | None = None

    # -- the task that runs while there is mail ----------------------------------------------

    async def run(self, max_batch: int, max_conflict_retries: int) -> None:
        """Drain the mailbox. Never raises: every failure goes to the callers it concerns."""
        batch: list[Envelope] = []
        try:
            while self.mailbox:
                batch = self._take(max_batch)
                if batch:
                    await self._handle(batch, max_conflict_retries)
                batch = []
        except BaseException as exc:
            # Cancelled (the runtime was torn down) or a bug in the runtime itself: nobody may hang.
            error = RuntimeClosedError(f"actor {self.stream_id!r} stopped before replying: {exc!r}")
            for envelope in [*batch, *self.mailbox]:
                _fail(envelope, error)
            self.mailbox.clear()
            self.recovered = False
            if not isinstance(exc, Exception):
                raise
            logger.error("actor.crashed", stream_id=self.stream_id, error=repr(exc))
        finally:
            self.running = False
            self._wake_space_waiters(len(self.mailbox) + 1_000_000)

    def _take(self, max_batch: int) -> list[Envelope]:
        mailbox = self.mailbox
        batch: list[Envelope] = []
        while mailbox and len(batch) < max_batch:
            envelope = mailbox.popleft()
            if not envelope.reply.done():  # a caller that timed out before we started is skipped
                batch.append(envelope)
        self._wake_space_waiters(len(batch))
        return batch

    def _wake_space_waiters(self, count: int) -> None:
        waiters = self.space_waiters
        while waiters and count > 0:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1

    async def _handle(self, batch: list[Envelope], max_conflict_retries: int) -> None:
        for attempt in range(max_conflict_retries + 1):
            if not self.recovered:
                try:
                    await self._recover()
                except Exception as exc:
                    error = RecoveryError(f"cannot recover {self.stream_id!r} from the store: {exc}")
                    error.__cause__ = exc
                    for envelope in batch:
                        _fail(envelope, error)
                    return
            try:
                await self._decide_and_persist(batch)
                return
            except ConcurrencyError as exc:
                # Another writer appended to this stream: reload and decide the batch again.
                self.recovered = False
                if attempt == max_conflict_retries:
                    for envelope in batch:
                        _fail(envelope, exc)
                    return
                logger.warning("actor.conflict", stream_id=self.stream_id, attempt=attempt + 1)

    async def _recover(self) -> None:
        loaded = await load_state(self.store, self.entry.aggregate, self.aggregate_id)
        self.state, self.version, self.position = loaded.state, loaded.version, loaded.position
        self.recovered = True

    async def _decide_and_persist(self, batch: list[Envelope]) -> None:
        aggregate = self.entry.aggregate
        encode = self.entry.codec.encode
        decide, evolve = aggregate.decide, aggregate.evolve
        state, version = self.state, self.version
        accepted: list[_Decided] = []
        rejected: list[tuple[Envelope, Exception]] = []
        reads: list[tuple[Envelope, Any]] = []
        new_events: list[NewEvent] = []
        for envelope in batch:
            if envelope.command is READ_STATE:  # answered with the state after the commands before it
                reads.append((envelope, state))
                continue
            try:
                events = tuple(decide(state, envelope.command))
                next_state = state
                encoded = []
                for event in events:
                    type_name, schema_version, data = encode(event)
                    next_state = evolve(next_state, event)
                    encoded.append(NewEvent(type_name, data, self._metadata(envelope), schema_version))
            except Exception as exc:  # a DomainError, or a bug in decide/evolve: that caller's error
                rejected.append((envelope, exc))
                continue
            accepted.append(_Decided(envelope, events, len(new_events), version + len(events)))
            new_events.extend(encoded)
            state, version = next_state, version + len(events)

        first_position = 0
        if new_events:
            try:
                result = await self.store.append(self.stream_id, new_events, self.version)
            except ConcurrencyError:
                raise
            except Exception as exc:
                # Nothing is known to be written; the next command reloads from the store.
                self.recovered = False
                for envelope in batch:
                    _fail(envelope, exc)
                return
            first_position = result.first_position
            self.position = result.last_position
        self.state, self.version = state, version

        for decided in accepted:
            count = len(decided.events)
            position = first_position + decided.offset + count - 1 if count else self.position
            reply = decided.envelope.reply
            if not reply.done():
                reply.set_result(CommandOutcome(self.stream_id, decided.version, position, decided.events))
        for envelope, error in rejected:
            _fail(envelope, error)
        for envelope, read in reads:
            if not envelope.reply.done():
                envelope.reply.set_result(read)

    @staticmethod
    def _metadata(envelope: Envelope) -> Metadata:
        return Metadata(next_event_id(), envelope.command_id)


def _fail(envelope: Envelope, error: BaseException) -> None:
    if not envelope.reply.done():
        envelope.reply.set_exception(error)
