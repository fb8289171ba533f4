"""Waiting with a time limit, the one way the cluster does it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """`awaitable`'s result, or `TimeoutError` after `seconds`.

    `asyncio.timeout` rather than `asyncio.wait_for`: on Python 3.11, a task cancelled while inside
    `wait_for` was seen to stay "cancelling" for good, waiting on wait_for's inner task (a runtime's exit
    then hung), and `asyncio.timeout` makes no inner task at all.
    """
    async with asyncio.timeout(seconds):
        return await awaitable
