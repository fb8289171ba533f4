"""Small pieces of command delivery: checking what `ask` is given, waiting for room, giving up a wait,
timing out a reply."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from actorsrc.errors import AskTimeoutError, ConfigurationError, LimitExceededError
from actorsrc.store.base import MAX_STREAM_ID_LENGTH

MAX_METADATA_ID_LENGTH = MAX_STREAM_ID_LENGTH
"""Command, causation and correlation ids: the length the stores accept for ids in event metadata."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # what the stores refuse in metadata ids: C0 and C1 controls

Waiter = tuple["asyncio.Future[None]", Callable[[], None]]
"""A future that resolves when a retry may succeed, and how to hand its wake-up to the next waiter."""


def abandon(waiter: Waiter) -> None:
    """Give up a waiter; if it had already been woken, the wake-up goes to the next one in line."""
    future, pass_on = waiter
    if future.done() and not future.cancelled():
        pass_on()
    else:
        future.cancel()


def check_ids(**ids: str | None) -> None:
    """Refuse ids the store would refuse in event metadata, before the command is sent."""
    for name, value in ids.items():
        if value is None or (
            type(value) is str and 0 < len(value) <= MAX_METADATA_ID_LENGTH and value.isascii() and value.isprintable()
        ):
            continue  # the usual id, checked in one pass (printable ASCII has no control characters)
        if not isinstance(value, str) or not value:
            raise ConfigurationError(f"{name} must be a non-empty str or None, got {value!r}")
        if len(value) > MAX_METADATA_ID_LENGTH:
            raise LimitExceededError(
                f"{name} is {len(value)} characters, over the limit of {MAX_METADATA_ID_LENGTH}: {value[:40]!r}...",
                what=name,
                size=len(value),
                limit=MAX_METADATA_ID_LENGTH,
            )
        if not value.isascii() and not _encodable(value):
            raise ConfigurationError(f"{name} must be valid UTF-8 text (no lone surrogates), got {value!r}")
        if _CONTROL.search(value):
            raise ConfigurationError(
                f"{name} must not contain control characters (NUL, tab, newline, ...), got {value!r}"
            )


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_timeout(timeout: object) -> None:
    """A timeout is a positive number of seconds (inf waits forever) or None (the runtime's default)."""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:  # also NaN
        raise ConfigurationError(f"timeout must be a number of seconds > 0 or None, got {timeout!r}")


def check_flag(name: str, value: object) -> None:
    if value is not True and value is not False:
        raise ConfigurationError(f"{name} must be True or False, got {value!r}")


def expire(reply: asyncio.Future[Any], aggregate: str, aggregate_id: str, command: object, limit: float) -> None:
    if not reply.done():
        reply.set_exception(
            AskTimeoutError(
                f"{aggregate} {aggregate_id!r} did not reply to {type(command).__qualname__} within "
                f"{limit} s; the command may still be carried out"
            )
        )
