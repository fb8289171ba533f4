"""How values are stored in SQL columns, the same for SQLite and PostgreSQL and for both sides: times
as integer microseconds since 1970 (UTC), integers as signed 64 bits."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

MAX_SQL_INT = 2**63 - 1
"""The largest integer a column holds: SQLite's INTEGER and PostgreSQL's BIGINT are signed 64-bit."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_last: tuple[int, datetime] = (0, _EPOCH)


def micros_to_datetime(micros: int) -> datetime:
    # Every event of a group commit has the same time, so consecutive rows of the log mostly repeat it:
    # the last conversion is kept (~0.1 us instead of ~1.8 us). One tuple, swapped whole: thread-safe.
    global _last
    last = _last
    if last[0] == micros:
        return last[1]
    converted = _EPOCH + timedelta(microseconds=micros)
    _last = (micros, converted)
    return converted


def now_micros() -> int:
    return time.time_ns() // 1000
