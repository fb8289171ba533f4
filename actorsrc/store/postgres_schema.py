"""The PostgreSQL schema: versioned DDL applied on open, idempotently, under an advisory lock.

`log_head` holds the last global position in a single row. Every group commit locks that row to
assign positions, so transactions that take positions commit in position order: a subscriber reading
the log in position order can never see position p+1 before p has committed (the classic gap bug of
PostgreSQL event stores, ruled out by design, at the cost of one writer at a time, which group
commit amortizes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actorsrc.errors import ConfigurationError
from actorsrc.hashing import slice_of

if TYPE_CHECKING:
    from actorsrc.sql.postgres import PgConnection

SCHEMA_VERSION = 2
"""1: streams, events, log head, snapshots, command ids; 2: each event's slice (and its index), shard fences."""
_SLICE_BATCH = 1000  # streams whose events get their slice per statement, when upgrading to version 2


def _ddl(s: str) -> list[str]:
    return [
        f'CREATE SCHEMA IF NOT EXISTS "{s}"',
        f'CREATE TABLE IF NOT EXISTS "{s}".schema_version (version INT NOT NULL)',
        f'CREATE TABLE IF NOT EXISTS "{s}".streams ('
        " key BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, version BIGINT NOT NULL)",
        f'CREATE TABLE IF NOT EXISTS "{s}".events ('
        " position BIGINT PRIMARY KEY, stream_key BIGINT NOT NULL, version BIGINT NOT NULL, type TEXT NOT NULL,"
        " schema_version INT NOT NULL, data BYTEA NOT NULL, metadata BYTEA NOT NULL, recorded_at BIGINT NOT NULL,"
        " slice INT NOT NULL)",
        f'CREATE UNIQUE INDEX IF NOT EXISTS events_by_stream ON "{s}".events (stream_key, version)',
        f'CREATE TABLE IF NOT EXISTS "{s}".log_head (id INT PRIMARY KEY CHECK (id = 1), position BIGINT NOT NULL)',
        f'INSERT INTO "{s}".log_head (id, position) VALUES (1, 0) ON CONFLICT DO NOTHING',
        f'CREATE TABLE IF NOT EXISTS "{s}".snapshots ('
        " stream_id TEXT NOT NULL, version BIGINT NOT NULL, position BIGINT NOT NULL, schema_version INT NOT NULL,"
        " data BYTEA NOT NULL, taken_at BIGINT NOT NULL, PRIMARY KEY (stream_id, version))",
        f'CREATE TABLE IF NOT EXISTS "{s}".command_ids ('
        " stream_key BIGINT NOT NULL, command_id TEXT NOT NULL, first_version BIGINT NOT NULL,"
        " last_version BIGINT NOT NULL, PRIMARY KEY (stream_key, command_id))",
    ]


def _later_ddl(s: str) -> list[str]:
    """Run once events have their slice column (an older schema gets it first, see `_add_slices`)."""
    return [
        # Serves "events of slices [low, high) after position p in position order" (read_all's slices).
        f'CREATE INDEX IF NOT EXISTS events_by_slice ON "{s}".events (slice, position)',
        f'CREATE TABLE IF NOT EXISTS "{s}".fences (shard BIGINT PRIMARY KEY, token BIGINT NOT NULL)',
    ]


async def _add_slices(conn: PgConnection, s: str) -> None:
    """Version 2: give every event of an older schema its slice, computed here per stream (it depends on
    the stream id only) and written a batch of streams at a time through the (stream_key, version) index."""
    await conn.execute(f'ALTER TABLE "{s}".events ADD COLUMN IF NOT EXISTS slice INT')
    after = 0
    while rows := await conn.fetch(
        f'SELECT key, name FROM "{s}".streams WHERE key > $1 ORDER BY key LIMIT $2', after, _SLICE_BATCH
    ):
        await conn.execute(
            f'UPDATE "{s}".events AS e SET slice = u.slice FROM unnest($1::bigint[], $2::int[]) AS u(key, slice)'
            " WHERE e.stream_key = u.key",
            [key for key, _ in rows],
            [slice_of(name) for _, name in rows],
        )
        after = rows[-1][0]
    await conn.execute(f'ALTER TABLE "{s}".events ALTER COLUMN slice SET NOT NULL')


async def migrate(conn: PgConnection, schema: str) -> None:
    """Create or upgrade the schema; safe to run from several processes at once."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"actorsrc:{schema}")
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f'"{schema}".schema_version')
        found = await conn.fetchval(f'SELECT max(version) FROM "{schema}".schema_version') if exists else None
        if found is not None and found > SCHEMA_VERSION:
            raise ConfigurationError(
                f"PostgreSQL schema {schema!r} is at version {found}, newer than this actorsrc ({SCHEMA_VERSION})"
            )
        for statement in _ddl(schema):
            await conn.execute(statement)
        if found is not None and found < 2:
            await _add_slices(conn, schema)
        for statement in _later_ddl(schema):
            await conn.execute(statement)
        if found is None or found < SCHEMA_VERSION:
            await conn.execute(f'DELETE FROM "{schema}".schema_version')
            await conn.execute(f'INSERT INTO "{schema}".schema_version (version) VALUES ($1)', SCHEMA_VERSION)
