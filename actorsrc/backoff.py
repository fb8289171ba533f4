"""Exponential backoff: the one rule every retry in actorsrc waits by (restarts, store probes, handler
retries, PostgreSQL reconnects), so they all double the same way and none overflows."""

from __future__ import annotations

import random


def exponential_backoff(minimum: float, maximum: float, jitter: float, attempt: int) -> float:
    """The delay before retry number `attempt` (1-based): ``min(maximum, minimum * 2**(attempt-1))``,
    stretched by up to `jitter` (0.2 = up to 20 % longer) so that many waiters do not retry in lockstep."""
    base: float = min(maximum, minimum * 2 ** min(attempt - 1, 60))  # capped: a float cannot hold 2**1024
    return base * (1 + jitter * random.random()) if jitter else base
