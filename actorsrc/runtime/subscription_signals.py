"""How a subscription's steps tell its loop to stop, or to carry on from another checkpoint."""

from __future__ import annotations


class HandlerStopped(Exception):
    """The handler's failure policy said stop (or it cannot go on: stuck, or its store closed)."""


class Resync(Exception):
    """The stored checkpoint is not where this subscription thought: carry on from `found`."""

    def __init__(self, found: int) -> None:
        self.found = found


class Fenced(HandlerStopped):
    """A newer owner has claimed this partition's checkpoint: this one stops, having written nothing more."""
