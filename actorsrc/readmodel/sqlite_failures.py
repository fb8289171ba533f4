"""Whose failure an sqlite3 error is, for the SQLite read model: the database's, raised as
`ReadModelError` and retried, or a handler's own."""

from __future__ import annotations

import sqlite3

# Result codes (the low byte of an extended code) that mean the database failed, whoever's statement met
# them: they are the read model's failures, retried until they clear, never a handler's to be parked.
DATABASE_FAILURES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOTADB,
    }
)


def is_database_failure(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in DATABASE_FAILURES
