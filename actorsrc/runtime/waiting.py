"""Waiting for a caller: for room in a mailbox (and giving that wait up), and for a reply (timing it out)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from actorsrc.errors import AskTimeoutError

Waiter = tuple["asyncio.Future[None]", Callable[[], None]]
"""A future that resolves when a retry may succeed, and how to hand its wake-up to the next waiter."""


def abandon(waiter: Waiter) -> None:
    """Give up a waiter; if it had already been woken, the wake-up goes to the next one in line."""
    future, pass_on = waiter
    if future.done() and not future.cancelled():
        pass_on()
    else:
        future.cancel()


def expire(reply: asyncio.Future[Any], aggregate: str, aggregate_id: str, command: object, limit: float) -> None:
    """Fail `reply` with `AskTimeoutError` unless the actor has answered it already."""
    if not reply.done():
        reply.set_exception(
            AskTimeoutError(
                f"{aggregate} {aggregate_id!r} did not reply to {type(command).__qualname__} within "
                f"{limit} s; the command may still be carried out"
            )
        )
