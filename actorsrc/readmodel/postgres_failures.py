"""Whose failure an asyncpg error is, for the PostgreSQL read model: the database's (or the link's),
which it raises as `ReadModelError` and the subscription retries, or the handler's own."""

from __future__ import annotations

import asyncpg

from actorsrc.sql.postgres import LINK_FAILURES

DATABASE_FAILURES: tuple[type[BaseException], ...] = (
    *LINK_FAILURES,
    asyncpg.InsufficientResourcesError,  # disk full, out of memory, too many connections
    asyncpg.PostgresSystemError,  # I/O errors
    asyncpg.TransactionRollbackError,  # deadlock, serialization failure: clears on a retry
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.DatabaseDroppedError,
)
"""Raised in a handler's statements, these are the database's or the link's failures, not the handler's.
(A statement cancelled by the server's statement_timeout is the handler's: its query is too slow.)"""

OWN_FAILURES: tuple[type[BaseException], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError, *DATABASE_FAILURES)
"""Raised in the read model's own statements, any failure is the read model's."""
