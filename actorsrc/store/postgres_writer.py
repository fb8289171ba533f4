"""The group-commit transaction for PostgreSQL.

One transaction per batch: lock the log head (this orders all writers, see postgres_schema), read the
versions of the batch's streams, check each append's expectation on its own, then write streams,
events (one INSERT over arrays), command ids and snapshots, move the head, and NOTIFY subscribers at commit.

A link can fail while COMMIT is in flight; the transaction then may or may not have committed. Each
attempt records, before it commits, what it planned (`Attempt`): the next attempt settles that doubt
inside its own transaction, after taking the log-head lock, which the doubtful transaction held to its
end: if the row at the first planned position holds the first planned event, the whole batch committed
as planned (a transaction is atomic), otherwise none of it did. One primary-key read, whatever the
appends' expected versions and however far their streams have moved on since.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from actorsrc.errors import ConcurrencyError, FencedAppendError
from actorsrc.hashing import slice_of
from actorsrc.records import AppendResult
from actorsrc.store.base import expectation_holds
from actorsrc.store.group_commit import PendingAppend, PendingSnapshot

if TYPE_CHECKING:
    from actorsrc.sql.postgres import PgConnection
from actorsrc.sql.encoding import micros_to_datetime, now_micros
from actorsrc.store.rows import event_row, note_command

EVENT_COLUMNS = [
    "position",
    "stream_key",
    "version",
    "type",
    "schema_version",
    "data",
    "metadata",
    "recorded_at",
    "slice",
]


def notify_channel(schema: str) -> str:
    return f"actorsrc_{schema}"


@dataclass(slots=True)
class Attempt:
    """One transaction's plan, known before its COMMIT is sent, so that a lost reply can be settled."""

    outcomes: list[AppendResult | BaseException] = field(default_factory=list)
    """Each append's outcome if the transaction commits."""
    probe: tuple[int, int, bytes] | None = None
    """(position, version, encoded metadata) of the first event it writes; None if it writes none."""
    committing: bool = False
    """Everything is written and COMMIT is next: a link failure from here on leaves the outcome in doubt."""
    committed: bool | None = None
    """Whether it committed, once a later attempt has settled it."""


async def write_batch(
    conn: PgConnection,
    schema: str,
    batch: list[PendingAppend],
    snapshots: list[PendingSnapshot],
    attempt: Attempt,
    doubt: Attempt | None = None,
) -> list[AppendResult | BaseException]:
    """Write the batch as `attempt`; first settle `doubt`, an earlier attempt of this batch whose COMMIT
    reply was lost (its outcomes are returned, and nothing written, if it did commit)."""
    s = schema
    async with conn.transaction():
        head = await conn.fetchval(f'SELECT position FROM "{s}".log_head WHERE id = 1 FOR UPDATE')
        if doubt is not None and doubt.probe is not None:
            doubt.committed = await _committed(conn, s, doubt.probe)
            if doubt.committed:
                return doubt.outcomes
        streams, fences = await _load_streams_and_fences(conn, s, batch)
        micros = now_micros()
        recorded_at = micros_to_datetime(micros)
        position = head
        outcomes = attempt.outcomes
        planned: list[tuple[PendingAppend, int, int]] = []  # (append, first version, first position)
        for pending in batch:
            if fences and pending.fence is not None:
                shard, token = pending.fence
                fence = fences.get(shard, token)
                if token < fence:  # part of this attempt's outcomes: refused whether or not it commits
                    outcomes.append(FencedAppendError(pending.stream_id, shard, token, fence))
                    continue
            key, version = streams.get(pending.stream_id, (0, 0))
            if not expectation_holds(pending.expected_version, version):
                outcomes.append(ConcurrencyError(pending.stream_id, pending.expected_version, version))
                continue
            planned.append((pending, version + 1, position + 1))
            version += len(pending.events)
            position += len(pending.events)
            streams[pending.stream_id] = [key, version]
            outcomes.append(
                AppendResult(
                    pending.stream_id,
                    version - len(pending.events) + 1,
                    version,
                    position - len(pending.events) + 1,
                    position,
                    recorded_at,
                )
            )
        if planned:
            await _write_streams(conn, s, streams, {p.stream_id for p, _, _ in planned})
            attempt.probe = await _write_events(conn, s, planned, streams, micros)
        if snapshots:
            await _write_snapshots(conn, s, snapshots, micros)
        if position != head:  # move the head and tell subscribers, in one round trip
            await conn.execute(
                f'WITH moved AS (UPDATE "{s}".log_head SET position = $1 WHERE id = 1) SELECT pg_notify($2, $3)',
                position,
                notify_channel(s),
                str(position),
            )
        attempt.committing = True
    return outcomes


async def _load_streams_and_fences(
    conn: PgConnection, s: str, batch: list[PendingAppend]
) -> tuple[dict[str, list[int]], dict[int, int]]:
    """The batch's streams ({name: [key, version]}) and the stored fences of the shards its fenced appends
    name, in one round trip. Read under the log-head lock, which `raise_fence` takes too, so no fence
    moves before this batch commits (not in the locking statement itself: its snapshot predates the wait)."""
    names = list(dict.fromkeys(p.stream_id for p in batch))
    shards = list({p.fence[0] for p in batch if p.fence is not None})
    if not shards:
        rows = await conn.fetch(f'SELECT name, key, version FROM "{s}".streams WHERE name = ANY($1::text[])', names)
        return {name: [key, version] for name, key, version in rows}, {}
    rows = await conn.fetch(
        f'SELECT false, name, key, version FROM "{s}".streams WHERE name = ANY($1::text[])'
        f' UNION ALL SELECT true, shard::text, token, 0 FROM "{s}".fences WHERE shard = ANY($2::bigint[])',
        names,
        shards,
    )
    streams: dict[str, list[int]] = {}
    fences: dict[int, int] = {}
    for is_fence, name, key, version in rows:
        if is_fence:
            fences[int(name)] = key
        else:
            streams[name] = [key, version]
    return streams, fences


async def raise_fence(conn: PgConnection, s: str, shard: int, token: int) -> int:
    """Set the shard's fence to max(fence, token); after the log-head lock, so it waits for any batch in
    flight, and every later batch reads the new fence."""
    async with conn.transaction():
        await conn.execute(f'SELECT position FROM "{s}".log_head WHERE id = 1 FOR UPDATE')
        fence = await conn.fetchval(
            f'INSERT INTO "{s}".fences AS f (shard, token) VALUES ($1, $2)'
            " ON CONFLICT (shard) DO UPDATE SET token = greatest(f.token, excluded.token) RETURNING token",
            shard,
            token,
        )
    return int(fence)


async def _committed(conn: PgConnection, s: str, probe: tuple[int, int, bytes]) -> bool:
    """Whether the transaction that planned `probe` committed. Metadata holds the event's unique id, so
    equal bytes at that position and version mean that very event was written there."""
    position, version, metadata = probe
    row = await conn.fetchrow(f'SELECT version, metadata FROM "{s}".events WHERE position = $1', position)
    return row is not None and row[0] == version and bytes(row[1]) == metadata


async def _write_streams(conn: PgConnection, s: str, streams: dict[str, list[int]], touched: set[str]) -> None:
    new = [name for name in touched if streams[name][0] == 0]
    if new:
        created = await conn.fetch(
            f'INSERT INTO "{s}".streams (name, version) SELECT * FROM unnest($1::text[], $2::bigint[])'
            " RETURNING name, key",
            new,
            [streams[name][1] for name in new],
        )
        for name, key in created:
            streams[name][0] = key
    old = [name for name in touched if name not in new]
    if old:
        await conn.execute(
            f'UPDATE "{s}".streams AS s SET version = u.version'
            " FROM unnest($1::bigint[], $2::bigint[]) AS u(key, version) WHERE s.key = u.key",
            [streams[name][0] for name in old],
            [streams[name][1] for name in old],
        )


async def _write_events(
    conn: PgConnection,
    s: str,
    planned: list[tuple[PendingAppend, int, int]],
    streams: dict[str, list[int]],
    micros: int,
) -> tuple[int, int, bytes]:
    """Insert the planned events and their command ids; returns the probe of the first event."""
    records: list[tuple[Any, ...]] = []
    commands: dict[tuple[int, str], list[int]] = {}
    for pending, first_version, first_position in planned:
        key = streams[pending.stream_id][0]
        slice_ = slice_of(pending.stream_id)
        for offset, event in enumerate(pending.events):
            version = first_version + offset
            records.append(event_row(first_position + offset, key, version, event, micros, slice_))
            note_command(commands, key, version, event)
    # One INSERT over arrays rather than COPY: as fast at these batch sizes, and a connection dropped
    # mid-statement fails just this await (asyncpg's COPY leaves an internal future unretrieved).
    columns = list(zip(*records, strict=True))
    await conn.execute(
        f'INSERT INTO "{s}".events ({", ".join(EVENT_COLUMNS)}) SELECT * FROM unnest($1::bigint[], $2::bigint[],'
        " $3::bigint[], $4::text[], $5::int[], $6::bytea[], $7::bytea[], $8::bigint[], $9::int[])",
        *columns,
    )
    if commands:
        spans = [(key, command_id, first, last) for (key, command_id), (first, last) in commands.items()]
        await conn.execute(
            f'INSERT INTO "{s}".command_ids (stream_key, command_id, first_version, last_version)'
            " SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[])",
            *zip(*spans, strict=True),
        )
    first = records[0]
    return first[0], first[2], first[6]


async def _write_snapshots(conn: PgConnection, s: str, snapshots: list[PendingSnapshot], micros: int) -> None:
    await conn.executemany(
        f'INSERT INTO "{s}".snapshots (stream_id, version, position, schema_version, data, taken_at)'
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (stream_id, version) DO UPDATE"
        " SET position = excluded.position, schema_version = excluded.schema_version, data = excluded.data,"
        " taken_at = excluded.taken_at",
        [
            (
                p.snapshot.stream_id,
                p.snapshot.version,
                p.snapshot.position,
                p.snapshot.schema_version,
                p.snapshot.data,
                micros,
            )
            for p in snapshots
        ],
    )
    await conn.executemany(
        f'DELETE FROM "{s}".snapshots WHERE stream_id = $1 AND version NOT IN'
        f' (SELECT version FROM "{s}".snapshots WHERE stream_id = $1 ORDER BY version DESC LIMIT $2)',
        [(p.snapshot.stream_id, p.keep) for p in snapshots],
    )
