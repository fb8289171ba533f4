"""What the dispatcher needs from a read-model database (SQLite and PostgreSQL implement it).

A read model keeps, next to the projections' own tables, each handler's checkpoint, the events it
parked, and process managers' state. The projection's writes and its checkpoint always commit in one
transaction: that is what makes each event's effect land exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from actorsrc.projection import EventEnvelope, Projection


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    """An event a handler gave up on: it waits here, with the error, to be retried or discarded."""

    id: int
    handler: str
    position: int
    stream_id: str
    version: int
    type: str
    error: str
    attempts: int
    parked_at: datetime


@runtime_checkable
class ReadModel(Protocol):
    async def checkpoint(self, name: str) -> int: ...

    async def setup(self, projection: Projection) -> None:
        """Create the projection's tables (its `setup`), idempotently."""
        ...

    async def project(
        self,
        projection: Projection,
        envelopes: Sequence[EventEnvelope[Any]],
        checkpoint: tuple[str, int] | None,
        unpark: int | None = None,
    ) -> None:
        """Run the projection's `handle` over `envelopes`, move the checkpoint (when given) and drop the
        parked event `unpark` (when given), all in one transaction."""
        ...

    async def park(
        self, name: str, position: int, stream_id: str, version: int, type_name: str, error: str, attempts: int
    ) -> None:
        """Record a failed event and move the checkpoint past it, atomically."""
        ...

    async def parked(self, name: str | None = None) -> list[ParkedEvent]: ...

    async def parked_event(self, parked_id: int) -> ParkedEvent | None: ...

    async def discard_parked(self, parked_id: int) -> None: ...

    async def reset(self, name: str, projection: Projection | None) -> None:
        """Forget a handler's checkpoint, parked events and state (a projection's `reset` then `setup`)."""
        ...

    async def load_process_state(self, manager: str, key: str) -> bytes | None: ...

    async def settled_commands(self, manager: str, command_ids: list[str]) -> set[str]:
        """Which of `command_ids` were rejected or wrote nothing before: not to be sent again."""
        ...

    async def save_process(
        self,
        manager: str,
        states: dict[str, bytes],
        settled: dict[str, str],
        checkpoint: tuple[str, int] | None,
        unpark: int | None = None,
    ) -> None:
        """A process manager's states, settled commands and checkpoint, in one transaction."""
        ...
