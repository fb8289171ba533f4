"""A subscription giving up on an event its handler's `FailurePolicy` has retried enough: the event as it
failed, the reason a stopping handler gives, and parking it (moving the checkpoint past it) in the read model."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from actorsrc.observability import logger
from actorsrc.readmodel.base import CheckpointMovedError, ReadModel
from actorsrc.runtime.subscription_signals import Resync

UntilDone = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]
"""Runs a read-model operation, retrying the read model's failures until it is done."""


@dataclass(frozen=True, slots=True)
class FailedEvent:
    """The event at `position` of the log, and how its handler failed on it."""

    position: int
    stream_id: str
    version: int
    type_name: str
    error: str
    attempts: int

    def stop_reason(self) -> str:
        return (
            f"event at position {self.position} ({self.type_name} on {self.stream_id!r} v{self.version}) "
            f"failed {self.attempts} times: {self.error}"
        )


async def park(
    read_model: ReadModel,
    name: str,
    event: FailedEvent,
    after: int,
    until_done: UntilDone,
    checkpoint: str | None = None,
    fence: int | None = None,
) -> None:
    """Park `event` for handler `name`, moving its checkpoint (`checkpoint`, default `name`; under `fence`
    when given) from `after` past it; a park that fails for the read model's reasons is retried (by
    `until_done`): the event is never skipped unrecorded."""
    if checkpoint is None:  # as before partitions: read models of the user's own need not know them

        def parking() -> Awaitable[None]:
            return read_model.park(
                name, event.position, event.stream_id, event.version, event.type_name, event.error, event.attempts,
                after=after,
            )  # fmt: skip
    else:

        def parking() -> Awaitable[None]:
            return read_model.park(
                name, event.position, event.stream_id, event.version, event.type_name, event.error, event.attempts,
                after=after, checkpoint=checkpoint, fence=fence,
            )  # fmt: skip

    try:
        await until_done("parking an event", parking)
    except CheckpointMovedError as moved:
        raise Resync(moved.found) from None


def log_parked(name: str, event: FailedEvent) -> None:
    logger.error(
        "handler.parked",
        handler=name,
        position=event.position,
        type=event.type_name,
        stream_id=event.stream_id,
        attempts=event.attempts,
        error=event.error,
    )
