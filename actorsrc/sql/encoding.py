"""How values are stored in SQL columns, the same for SQLite and PostgreSQL and for both sides: times
as integer microseconds since 1970 (UTC), integers as signed 64 bits."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

MAX_SQL_INT = 2**63 - 1
"""The largest integer a column holds: SQLite's INTEGER and PostgreSQL's BIGINT are signed 64-bit."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros_to_datetime(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def now_micros() -> int:
    return time.time_ns() // 1000
