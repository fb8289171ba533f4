"""What a caller gets back from a command."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class CommandOutcome(Generic[E]):
    """A command's durable result.

    `version` is the stream's version after the command; `position` is the global position of its
    last event (or of the stream's last event when the command produced none), the position to wait
    for when reading your own writes. `duplicate` is True when the command id had been handled
    before: the outcome is the original one and nothing new was written. `command_digest` is the
    digest of the command that produced it when it was sent with a command id (see `command_digest`
    in the events' metadata), None otherwise or for events written before digests existed.
    """

    stream_id: str
    version: int
    position: int
    events: tuple[E, ...]
    duplicate: bool = False
    command_digest: str | None = field(default=None, repr=False, compare=False)
