"""A row of a read model's parked-events table as a `ParkedEvent`, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actorsrc.readmodel.base import ParkedEvent
from actorsrc.sql.encoding import micros_to_datetime

PARKED_COLUMNS = "id, handler, position, stream_id, version, type, error, attempts, parked_at"
"""The columns `parked_from_row` reads, in its order."""


def parked_from_row(row: Sequence[Any]) -> ParkedEvent:
    id_, handler, position, stream_id, version, type_name, error, attempts, parked_at = row
    return ParkedEvent(
        id_, handler, position, stream_id, version, type_name, error, attempts, micros_to_datetime(parked_at)
    )
