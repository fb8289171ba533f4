"""What the dispatcher needs from a read-model database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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
