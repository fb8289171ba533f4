"""PostgreSQL names, types and failures both the event store and the read model use."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

import asyncpg

from actorsrc.errors import ConfigurationError

if TYPE_CHECKING:  # asyncpg's classes are generic only in its type stubs
    import asyncpg.pool

    PgConnection = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]

LINK_FAILURES: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,  # command_timeout: the link may be dead
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.exceptions._base.InternalClientError,  # a connection left mid-operation by a dropped link
)
"""Errors that blame the connection or the server going away, not the statement or the data."""

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_schema_name(schema: str) -> str:
    """Schema names are formatted into SQL, so only plain lower-case identifiers are accepted."""
    if not isinstance(schema, str) or not _IDENTIFIER.match(schema):
        raise ConfigurationError(
            f"PostgreSQL schema name must be a lower-case identifier (letters, digits, '_'), got {schema!r}"
        )
    return schema
