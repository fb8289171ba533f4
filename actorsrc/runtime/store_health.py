"""One breaker per runtime for the event store's health: a failing store is not an actor's fault.

When an append fails because the store itself is failing (I/O, a full disk, a lost connection, a hung
write), the breaker opens. Commands that need the store are then refused at once with
`StoreUnavailableError` (nothing written) instead of each failing slowly against the store, and no
actor spends its restart budget, which is meant for broken aggregates, on it. One command at a time
goes through as the probe: at once after the breaker opens, then after an exponential backoff with
jitter. A real append is the probe because only a write proves that writes work again (a full disk
still serves reads). When the probe's append succeeds the breaker closes, and every actor serves again
at once: actors whose append failed rebuild their state from the store on their next command.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from actorsrc.backoff import exponential_backoff
from actorsrc.errors import (
    CodecError,
    ConfigurationError,
    ForeignDatabaseError,
    ReadModelError,
    StoreError,
    StoreUnavailableError,
)
from actorsrc.observability import logger

# A store error caused by one of these is about the data of one append or one row, not the store's health.
_DATA_ERRORS = (ValueError, TypeError, ArithmeticError, LookupError, CodecError)


def is_store_failure(error: BaseException) -> bool:
    """Whether `error` says the store itself is failing (I/O, disk, connection, timeout), rather than
    something about one stream's data, which stays the actor's own failure."""
    if isinstance(error, StoreError):
        if isinstance(error, ForeignDatabaseError | ReadModelError):
            return False
        return not isinstance(error.__cause__, _DATA_ERRORS)
    return isinstance(error, OSError)  # ConnectionError, TimeoutError, ... from a store adapter


@dataclass(frozen=True, slots=True)
class StoreBreakerPolicy:
    """When the runtime probes a failing store again.

    The first probe goes at once; after the n-th failed probe the next waits
    ``min(max_backoff, min_backoff * 2**(n-1))`` seconds, stretched by up to `jitter` (0.2 = 20 %).
    So once the store recovers, commands are refused for at most ``max_backoff * (1 + jitter)`` more.
    """

    min_backoff: float = 0.05
    max_backoff: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.min_backoff <= self.max_backoff:
            raise ConfigurationError(
                f"need 0 < min_backoff <= max_backoff, got {self.min_backoff} and {self.max_backoff}"
            )
        if self.jitter < 0:
            raise ConfigurationError(f"jitter must be >= 0, got {self.jitter}")


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """The breaker's state, for health endpoints and logs.

    `available` is False while commands that need the store are refused; then `since` says when the
    outage began, `last_error` how the store last failed, `failed_probes` how many probes failed, and
    `next_probe_in` how long until a command may go through as the next probe (0: now).
    """

    available: bool
    since: datetime | None = None
    last_error: str | None = None
    failed_probes: int = 0
    next_probe_in: float = 0.0


class StoreHealth:
    """The breaker all actors of a runtime share.

    `failing` is the only thing a healthy actor reads (one attribute, on the write path). While it is
    set, an actor about to touch the store asks `admit`: True makes it the probe (one at a time), False
    means it refuses its commands with `refusal()`.
    """

    __slots__ = (
        "_down_since",
        "_down_since_wall",
        "_failures",
        "_last_error",
        "_next_probe",
        "_probe_deadline",
        "_probes_failed",
        "_refused",
        "failing",
        "policy",
        "probe",
        "probe_timeout",
    )

    def __init__(self, policy: StoreBreakerPolicy, probe_timeout: float) -> None:
        self.policy = policy
        self.probe_timeout = probe_timeout  # a probe that never reports back is replaced after this
        self.failing = False
        self.probe: object | None = None  # the actor whose command is the probe now
        self._probe_deadline = 0.0
        self._next_probe = 0.0
        self._probes_failed = 0
        self._down_since = 0.0
        self._down_since_wall = 0.0
        self._last_error: BaseException | None = None
        self._failures = 0
        self._refused = 0

    # -- what actors report ------------------------------------------------------------------------

    def failed(self, actor: object, error: BaseException, *, write: bool) -> None:
        """A store operation of `actor` failed with a store failure (see `is_store_failure`).

        Only a failed append opens the breaker: a read that fails for one stream must not lock every
        actor out (and a full disk, the commonest outage, still serves reads). While open, a failure of
        the probe pushes the next probe back; other failures (appends under way when it opened) are noted.
        """
        now = asyncio.get_running_loop().time()
        if not self.failing:
            if not write:
                return
            self.failing = True
            self.probe = None
            self._down_since, self._down_since_wall = now, time.time()
            self._next_probe = now  # the first probe goes at once: one failed batch may be a blip
            self._probes_failed = 0
            self._failures, self._refused = 1, 0
            self._last_error = error
            logger.error("store.unavailable", error=repr(error), probe_in=0.0)
            return
        self._failures += 1
        self._last_error = error
        if self.probe is actor:
            self.probe = None
            self._probes_failed += 1
            policy = self.policy
            delay = exponential_backoff(policy.min_backoff, policy.max_backoff, policy.jitter, self._probes_failed)
            self._next_probe = now + delay
            logger.info(
                "store.probe_failed",
                error=repr(error),
                down_for=round(now - self._down_since, 3),
                next_probe_in=round(delay, 3),
            )

    def succeeded(self) -> None:
        """An append succeeded while the breaker was open: the store writes again."""
        if not self.failing:
            return
        self.failing = False
        self.probe = None
        seconds = asyncio.get_running_loop().time() - self._down_since
        logger.warning(
            "store.recovered",
            seconds_down=round(seconds, 3),
            failed_operations=self._failures,
            failed_probes=self._probes_failed,
            refused_batches=self._refused,
        )
        self._last_error = None

    def settle(self, actor: object, future: asyncio.Future[Any]) -> None:
        """Done-callback of a probe's append on the task-free path (a healthy append pays nothing).

        A store failure is reported by the actor itself through `failed`; anything else (a conflict, a
        bad event) says nothing about the store, so the next command may probe at once.
        """
        if self.probe is not actor or future.cancelled():  # cancelled: the watchdog's timeout, reported
            return
        error = future.exception()
        if error is None:
            self.succeeded()
        elif not is_store_failure(error):
            self.probe = None

    def release(self, actor: object) -> None:
        """`actor` was the probe but ended without touching the store's writes (a query, a rejection)."""
        if self.probe is actor:
            self.probe = None

    # -- what actors ask ---------------------------------------------------------------------------

    def admit(self, actor: object) -> bool:
        """While failing: may `actor` use the store now? True makes it the probe."""
        if not self.failing or self.probe is actor:
            return True
        now = asyncio.get_running_loop().time()
        if now < self._next_probe or (self.probe is not None and now < self._probe_deadline):
            return False
        self.probe = actor
        self._probe_deadline = now + self.probe_timeout
        return True

    def refusal(self) -> StoreUnavailableError:
        """The error for commands refused while the breaker is open."""
        self._refused += 1
        now = asyncio.get_running_loop().time()
        since = datetime.fromtimestamp(self._down_since_wall, UTC).isoformat(timespec="milliseconds")
        if self.probe is not None:
            next_probe = "a probe is under way"
        elif now < self._next_probe:
            next_probe = f"the first command after {self._next_probe - now:.2f} s goes through as a probe"
        else:
            next_probe = "the next command goes through as a probe"
        error = StoreUnavailableError(
            f"the event store is failing since {since} ({now - self._down_since:.1f} s; last error: "
            f"{self._last_error!r}): commands that need it are refused and nothing was written; "
            f"{next_probe}, retry then"
        )
        error.__cause__ = self._last_error
        return error

    def status(self) -> StoreStatus:
        if not self.failing:
            return StoreStatus(True)
        return StoreStatus(
            False,
            datetime.fromtimestamp(self._down_since_wall, UTC),
            repr(self._last_error),
            self._probes_failed,
            max(0.0, self._next_probe - asyncio.get_running_loop().time()),
        )
