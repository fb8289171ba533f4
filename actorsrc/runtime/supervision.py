"""Restart policy for crashed actors: exponential backoff with jitter, a restart limit per window,
and a cool-down once the limit is hit (Akka's BackoffSupervisor, in miniature)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from actorsrc.backoff import exponential_backoff
from actorsrc.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class SupervisorPolicy:
    """How the runtime restarts an actor whose state became unknown.

    The n-th restart within `window` seconds waits ``min(max_backoff, min_backoff * 2**(n-1))``
    seconds, stretched by up to `jitter` (0.2 = up to 20 % longer) so that many actors failing
    together do not retry in lockstep. After `max_restarts` restarts within `window`, the instance
    is marked failed: its commands fail at once with `AggregateFailedError` for `cooldown` seconds.

    Only the aggregate's own failures count (a bug in `evolve`, a stored event that does not decode, an
    error about one append's data). A failing store (I/O, a full disk, a lost connection, a hung write)
    costs no restart: the runtime's store breaker (`StoreBreakerPolicy`) handles it for all actors at once.
    """

    min_backoff: float = 0.05
    max_backoff: float = 5.0
    jitter: float = 0.2
    max_restarts: int = 5
    window: float = 30.0
    cooldown: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.min_backoff <= self.max_backoff:
            raise ConfigurationError(
                f"need 0 < min_backoff <= max_backoff, got {self.min_backoff} and {self.max_backoff}"
            )
        if self.jitter < 0:
            raise ConfigurationError(f"jitter must be >= 0, got {self.jitter}")
        if self.max_restarts < 0:
            raise ConfigurationError(f"max_restarts must be >= 0, got {self.max_restarts}")
        if self.window <= 0 or self.cooldown < 0:
            raise ConfigurationError(f"window must be > 0 and cooldown >= 0, got {self.window} and {self.cooldown}")

    def backoff(self, restart_number: int) -> float:
        return exponential_backoff(self.min_backoff, self.max_backoff, self.jitter, restart_number)


class RestartTracker:
    """One crashed actor's restart history; allocated on its first crash only."""

    __slots__ = ("failed_until", "not_before", "restarts")

    def __init__(self) -> None:
        self.restarts: deque[float] = deque()
        self.not_before = 0.0  # no recovery attempt before this loop time
        self.failed_until = 0.0  # commands fail at once until this loop time

    def record_crash(self, policy: SupervisorPolicy, now: float) -> bool:
        """Schedule the restart; returns False when the limit is hit and the instance is now failed."""
        restarts = self.restarts
        while restarts and restarts[0] <= now - policy.window:
            restarts.popleft()
        if len(restarts) >= policy.max_restarts:
            restarts.clear()
            self.failed_until = now + policy.cooldown
            self.not_before = self.failed_until
            return False
        restarts.append(now)
        self.not_before = now + policy.backoff(len(restarts))
        return True

    def is_failed(self, now: float) -> bool:
        return now < self.failed_until
