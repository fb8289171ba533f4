"""`FailurePolicy`: what a projection or process manager does when its own code keeps failing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from actorsrc.backoff import exponential_backoff
from actorsrc.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """What a handler does when its own code keeps failing on an event.

    It retries `retries` times with exponential backoff from `backoff` seconds (capped at
    `max_backoff`), then either parks the event in the dead-letter table and moves on (`"park"`),
    or stops the handler where it is (`"stop"`) until someone fixes it and restarts it.

    A batch whose handling runs longer than `timeout` seconds (None: no limit) counts as a failure
    (`HandlerTimeoutError`): it is rolled back and retried event by event under this policy.

    The policy is for the handler's own failures: its code raising, a batch timing out, an event that
    does not decode. Failures of the read model or the event store under it (a full disk, a lock, a
    lost connection) are retried with backoff until they clear; they never park or skip an event.
    """

    retries: int = 3
    backoff: float = 0.05
    max_backoff: float = 2.0
    then: Literal["park", "stop"] = "park"
    timeout: float | None = 30.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_backoff < self.backoff:
            raise ConfigurationError(f"invalid failure policy {self!r}")
        if self.then not in ("park", "stop"):
            raise ConfigurationError(f"failure policy `then` must be 'park' or 'stop', got {self.then!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigurationError(
                f"failure policy `timeout` must be a number of seconds > 0 or None, got {self.timeout!r}"
            )

    def delay(self, attempt: int) -> float:
        return exponential_backoff(self.backoff, self.max_backoff, 0.0, attempt)
