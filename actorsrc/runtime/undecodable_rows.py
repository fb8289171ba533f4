"""A row of the global log that does not decode, met by a subscription: where it is, and re-reading it
under the handler's `FailurePolicy` (the failure may have been transient) before the policy gives up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from actorsrc.errors import EventDecodeError
from actorsrc.records import RecordedEvent
from actorsrc.runtime.handler_health import describe
from actorsrc.runtime.subscription_signals import HandlerStopped


def undecodable_position(bad: EventDecodeError, after: int) -> int:
    """The position of the row `bad` is about, read after position `after`; a store that does not say
    (or names a row already behind the subscription) leaves nothing to retry or park: stop."""
    position = bad.position
    if position is None or position <= after:
        raise HandlerStopped(
            f"the store could not decode an event after position {after} and did not say which: {bad}"
        ) from bad
    return position


async def reread(
    bad: EventDecodeError,
    position: int,
    retries: int,
    read_row: Callable[[], Awaitable[list[RecordedEvent]]],
    failed_attempt: Callable[[int, int, str], Awaitable[None]],
) -> tuple[list[RecordedEvent] | None, str, int]:
    """Re-read the row at `position` up to `retries` times, each after `failed_attempt(position, attempt,
    error)`. Returns what a re-read that decodes reads, else None (give up), with the last error and the
    attempts made."""
    attempt = 1
    error = describe(bad)
    while attempt <= retries:
        await failed_attempt(position, attempt, error)
        try:
            return await read_row(), error, attempt
        except EventDecodeError as again:
            attempt += 1
            error = describe(again)
    return None, error, attempt
