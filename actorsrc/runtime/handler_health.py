"""A read-side handler's health: who is to blame for a failure, and the status that shows it.

A failure of the handler's own code (a projection's `handle` or `setup`, a process manager's `key`,
`react` or a command its target refuses, its events not decoding, a batch overrunning
`FailurePolicy.timeout`) is the handler's: its `FailurePolicy` applies (retry, then park or stop).
A failure of what the handler runs on (the read model: `ReadModelError`; the event store, reading the
log or taking a process manager's commands: `StoreError`) is nobody's fault: it is retried with capped
backoff until it clears, and never parks or skips an event, since the event itself is fine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Literal, TypeVar

import anyio

from actorsrc.backoff import exponential_backoff
from actorsrc.errors import EventDecodeError, RecoveryError, StoreClosedError, StoreError
from actorsrc.observability import logger

T = TypeVar("T")

Status = Literal["starting", "running", "retrying", "stopped", "rebuilding", "closed"]

FIRST_DELAY = 0.05
MAX_DELAY = 5.0
"""Infrastructure failures are retried after 0.05 s, doubling up to 5 s between attempts, forever."""


def is_infrastructure(exc: BaseException) -> bool:
    """A read-model or event-store failure under a handler's work (not the handler's own doing).

    A process manager's target that cannot rebuild its state because the store fails to read reaches
    it as a `RecoveryError` caused by a `StoreError`: that is the store too. A target whose stored
    events do not decode is not: its `RecoveryError` follows the manager's policy.
    """
    while isinstance(exc, RecoveryError) and exc.__cause__ is not None:
        exc = exc.__cause__
    return isinstance(exc, StoreError)


def is_log_read_failure(exc: BaseException) -> bool:
    """Reading the global log is never the handler's doing; only an undecodable row is dealt with as an
    event (its handler's policy applies), and a closed store does not come back."""
    return not isinstance(exc, EventDecodeError | StoreClosedError)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Health:
    """Status, last error and retry bookkeeping of one subscription."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.status: Status = "starting"
        self.stop_reason: str | None = None
        self.last_error: str | None = None
        self.retrying_since: datetime | None = None
        self.changed = asyncio.Event()  # any change of status or position
        self._resume: Status = "running"  # the status to return to once retrying succeeds

    def set(self, status: Status, stop_reason: str | None = None) -> None:
        self.status, self.stop_reason = status, stop_reason
        if status != "retrying":
            self.retrying_since = None
        self.changed.set()

    def failing(self, error: str) -> None:
        """An attempt failed and will be retried: the status says so until one succeeds."""
        self.last_error = error
        if self.status not in ("retrying", "stopped", "closed"):
            self._resume = self.status
            self.status = "retrying"
        if self.retrying_since is None:
            self.retrying_since = datetime.now(UTC)
        self.changed.set()

    def recovered(self) -> None:
        if self.status == "retrying":
            self.set(self._resume)

    async def until_done(
        self, what: str, op: Callable[[], Awaitable[T]], position: int, retry: Callable[[BaseException], bool]
    ) -> T:
        """`op()`, retried with capped backoff for as long as it fails in a way `retry` accepts."""
        attempt = 0
        while True:
            try:
                result = await op()
            except Exception as exc:
                if not retry(exc):
                    raise
                attempt += 1
                delay = exponential_backoff(FIRST_DELAY, MAX_DELAY, 0.0, attempt)
                error = f"{what}: {describe(exc)}"
                self.failing(error)
                logger.warning(
                    "handler.infrastructure_retry",
                    handler=self.name,
                    position=position,
                    attempt=attempt,
                    retry_in=delay,
                    error=error,
                )
                await anyio.sleep(delay)
                continue
            if attempt:
                logger.warning(
                    "handler.infrastructure_recovered", handler=self.name, position=position, attempts=attempt
                )
                self.recovered()
            return result
