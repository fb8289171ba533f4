"""An actor's life cycle: rebuilding its state from the store, and what happens when that state
becomes unknown (a crash), decided by the supervisor's policy and the store's shared breaker.

These are functions of the actor (through the small `LivingActor` port, so this module never
imports `actorsrc.runtime.actor`): the actor calls them off its hot path, on recovery and on failure.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Protocol

from actorsrc.errors import AggregateFailedError, FencedAppendError, LimitExceededError, StoreError
from actorsrc.observability import logger
from actorsrc.recovery import load_state
from actorsrc.runtime.store_health import is_store_failure
from actorsrc.runtime.supervision import RestartTracker

if TYPE_CHECKING:
    from actorsrc.runtime.host import ActorHost
    from actorsrc.runtime.registry import AggregateEntry

# Crash reasons. The first three are store operations: if the store itself failed, the actor is not to blame.
RECOVERY_FAILED = "recovery failed"
LOOKUP_FAILED = "looking up command ids failed"
PERSIST_FAILED = "persist failed"
_STORE_OPERATIONS = frozenset((RECOVERY_FAILED, LOOKUP_FAILED, PERSIST_FAILED))


class LivingActor(Protocol):
    """What the life cycle reads and sets on an actor."""

    host: ActorHost
    entry: AggregateEntry
    aggregate_id: str
    state: Any
    version: int
    position: int
    recovered: bool
    supervision: RestartTracker | None

    def fail_queued(self, error: BaseException) -> None: ...


def refused_before_writing(error: BaseException) -> bool:
    """Whether the store refused an append while validating it (too large, a bad id): nothing was
    written and the actor's state was never advanced, so there is nothing to rebuild. A fenced append
    (another node owns the shard now) wrote nothing either."""
    if isinstance(error, FencedAppendError):
        return True
    return isinstance(error, LimitExceededError | ValueError | TypeError) and not isinstance(error, StoreError)


async def recover(actor: LivingActor) -> None:
    """Load the actor's state from the store (its latest snapshot, then the events after it)."""
    started = time.perf_counter()
    aggregate = actor.entry.aggregate
    if actor.supervision is None:
        logger.debug("actor.started", aggregate=aggregate.name, aggregate_id=actor.aggregate_id)
    loaded = await load_state(actor.host.store, aggregate, actor.aggregate_id)
    actor.state, actor.version, actor.position = loaded.state, loaded.version, loaded.position
    actor.recovered = True
    fields = {
        "aggregate": aggregate.name,
        "aggregate_id": actor.aggregate_id,
        "version": loaded.version,
        "snapshot_version": loaded.snapshot_version,
        "events_replayed": loaded.events_replayed,
        "seconds": round(time.perf_counter() - started, 6),
    }
    if actor.supervision is not None and actor.supervision.restarts:
        logger.info("actor.restarted", restarts_in_window=len(actor.supervision.restarts), **fields)
    else:
        logger.debug("actor.recovered", **fields)


def crashed(actor: LivingActor, reason: str, cause: BaseException) -> None:
    """The state is unknown: forget it, and let the policy decide when to rebuild it."""
    actor.recovered = False
    host = actor.host
    if reason in _STORE_OPERATIONS and is_store_failure(cause):
        # Not this aggregate's fault: no restart is counted (a short outage would use up every actor's
        # budget). The state is rebuilt on the next command the shared breaker lets through.
        host.store_health.failed(actor, cause, write=reason == PERSIST_FAILED)
        logger.debug(
            "actor.store_failed",
            aggregate=actor.entry.aggregate.name,
            aggregate_id=actor.aggregate_id,
            reason=reason,
            error=repr(cause),
        )
        return
    # Its own failure says nothing about the store: if it was the breaker's probe, another may probe now
    # (rather than wait out this actor's restart backoff).
    host.store_health.release(actor)
    tracker = actor.supervision
    if tracker is None:
        tracker = actor.supervision = RestartTracker()
    now = asyncio.get_running_loop().time()
    policy = host.supervisor
    log = logger.bind(aggregate=actor.entry.aggregate.name, aggregate_id=actor.aggregate_id)
    if tracker.record_crash(policy, now):
        log.warning("actor.crashed", reason=reason, error=repr(cause), restart_in=round(tracker.not_before - now, 3))
        return
    log.error(
        "actor.gave_up",
        reason=reason,
        error=repr(cause),
        max_restarts=policy.max_restarts,
        window=policy.window,
        cooldown=policy.cooldown,
    )
    actor.fail_queued(failed_error(actor, policy.cooldown))


def failed_error(actor: LivingActor, remaining: float) -> AggregateFailedError:
    """The error a given-up actor answers with for the `remaining` seconds of its cool-down."""
    policy = actor.host.supervisor
    return AggregateFailedError(
        f"{actor.entry.aggregate.name} {actor.aggregate_id!r} crashed {policy.max_restarts + 1} times within "
        f"{policy.window} s and refuses commands for another {remaining:.1f} s; see the actor.gave_up log"
    )


def log_bug(actor: LivingActor, bug: BaseException) -> None:
    """A bug in the runtime itself stopped the actor (its callers were answered already)."""
    logger.error(
        "actor.crashed",
        aggregate=actor.entry.aggregate.name,
        aggregate_id=actor.aggregate_id,
        reason="runtime bug",
        error=repr(bug),
    )
