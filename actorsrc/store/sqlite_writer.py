"""The group-commit transaction for SQLite, run on the writer connection's thread in one hop.

Each append's expected version is checked inside the transaction; an append that fails its check
is left out and the others commit. `PRAGMA data_version` tells whether another connection (another
process or runtime) committed since our last transaction, so the in-memory stream versions are
trusted only while nobody else wrote.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable

from actorsrc.errors import ConcurrencyError, FencedAppendError
from actorsrc.hashing import slice_of
from actorsrc.records import AppendResult
from actorsrc.sql.encoding import micros_to_datetime, now_micros
from actorsrc.store.base import expectation_holds
from actorsrc.store.group_commit import PendingAppend, PendingSnapshot
from actorsrc.store.rows import event_row, note_command

_SELECT_CHUNK = 500
_INSERT_EVENT = (
    "INSERT INTO events (position, stream_key, version, type, schema_version, data, metadata, recorded_at, slice)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_STREAM = (
    "INSERT INTO streams (key, name, version) VALUES (?, ?, ?)"
    " ON CONFLICT (key) DO UPDATE SET version = excluded.version"
)


class StreamCache:
    """What the writer knows of streams and the log tail; valid while `data_version` is unchanged."""

    def __init__(self, max_streams: int = 200_000) -> None:
        self.max_streams = max_streams
        self.streams: dict[str, tuple[int, int]] = {}  # name -> (key, version)
        self.next_position = 0  # 0: unknown, read from the database
        self.next_key = 0
        self.data_version = -1

    def reset(self) -> None:
        self.streams.clear()
        self.next_position = 0
        self.next_key = 0

    def remember(self, updates: dict[str, tuple[int, int]]) -> None:
        streams = self.streams
        streams.update(updates)
        overflow = len(streams) - self.max_streams
        if overflow > 0:  # forget the oldest entries; they are re-read when needed
            for name in list(itertools.islice(streams, overflow)):
                del streams[name]


def _load_streams(conn: sqlite3.Connection, names: Iterable[str], into: dict[str, tuple[int, int]]) -> None:
    pending = list(names)
    for start in range(0, len(pending), _SELECT_CHUNK):
        chunk = pending[start : start + _SELECT_CHUNK]
        marks = ",".join("?" * len(chunk))
        for name, key, version in conn.execute(
            f"SELECT name, key, version FROM streams WHERE name IN ({marks})", chunk
        ):
            into[name] = (key, version)


def _load_fences(conn: sqlite3.Connection, batch: list[PendingAppend]) -> dict[int, int]:
    """The stored fences of the shards the batch's fenced appends name (no query without any)."""
    shards = {p.fence[0] for p in batch if p.fence is not None}
    if not shards:
        return {}
    found: dict[int, int] = {}
    pending = list(shards)
    for start in range(0, len(pending), _SELECT_CHUNK):
        chunk = pending[start : start + _SELECT_CHUNK]
        rows = conn.execute(f"SELECT shard, token FROM fences WHERE shard IN ({','.join('?' * len(chunk))})", chunk)
        found.update(rows)
    return found


def raise_fence(conn: sqlite3.Connection, shard: int, token: int) -> int:
    """Set the shard's fence to max(fence, token) in its own write transaction (so ordered with batches)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT INTO fences (shard, token) VALUES (?, ?)"
            " ON CONFLICT (shard) DO UPDATE SET token = max(token, excluded.token)",
            (shard, token),
        )
        (fence,) = conn.execute("SELECT token FROM fences WHERE shard = ?", (shard,)).fetchone()
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return int(fence)


def write_batch(
    conn: sqlite3.Connection, batch: list[PendingAppend], snapshots: list[PendingSnapshot], cache: StreamCache
) -> list[AppendResult | BaseException]:
    """Write `batch` and `snapshots` in one transaction; returns each append's result or its own error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        outcomes, updates = _write_in_transaction(conn, batch, cache)
        if snapshots:
            _write_snapshots(conn, snapshots)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        cache.reset()
        raise
    cache.remember(updates)
    return outcomes


def _write_in_transaction(
    conn: sqlite3.Connection, batch: list[PendingAppend], cache: StreamCache
) -> tuple[list[AppendResult | BaseException], dict[str, tuple[int, int]]]:
    data_version = conn.execute("PRAGMA data_version").fetchone()[0]
    if data_version != cache.data_version:
        cache.reset()
        cache.data_version = data_version
    if not cache.next_position:
        position, key = conn.execute(
            "SELECT (SELECT coalesce(max(position), 0) FROM events), (SELECT coalesce(max(key), 0) FROM streams)"
        ).fetchone()
        cache.next_position, cache.next_key = position + 1, key + 1

    known = cache.streams
    updates: dict[str, tuple[int, int]] = {}
    missing = {p.stream_id for p in batch if p.stream_id not in known}
    if missing:
        _load_streams(conn, missing, updates)

    fences = _load_fences(conn, batch)
    micros = now_micros()
    recorded_at = micros_to_datetime(micros)
    position, next_key = cache.next_position, cache.next_key
    outcomes: list[AppendResult | BaseException] = []
    event_rows: list[tuple[object, ...]] = []
    command_rows: dict[tuple[int, str], list[int]] = {}  # (stream key, command id) -> [first, last] version
    for pending in batch:
        stream_id = pending.stream_id
        if fences and pending.fence is not None:
            shard, token = pending.fence
            fence = fences.get(shard, token)
            if token < fence:
                outcomes.append(FencedAppendError(stream_id, shard, token, fence))
                continue
        key, version = updates.get(stream_id) or known.get(stream_id) or (0, 0)
        if not expectation_holds(pending.expected_version, version):
            outcomes.append(ConcurrencyError(stream_id, pending.expected_version, version))
            continue
        if key == 0:
            key, next_key = next_key, next_key + 1
        first_version, first_position = version + 1, position
        slice_ = slice_of(stream_id)
        for event in pending.events:
            version += 1
            note_command(command_rows, key, version, event)
            event_rows.append(event_row(position, key, version, event, micros, slice_))
            position += 1
        updates[stream_id] = (key, version)
        outcomes.append(AppendResult(stream_id, first_version, version, first_position, position - 1, recorded_at))
    if event_rows:
        conn.executemany(_UPSERT_STREAM, [(key, name, version) for name, (key, version) in updates.items()])
        conn.executemany(_INSERT_EVENT, event_rows)
    if command_rows:  # remembered forever: a repeated command id is recognised, see find_commands
        conn.executemany(
            "INSERT INTO command_ids (stream_key, command_id, first_version, last_version) VALUES (?, ?, ?, ?)",
            [(key, command_id, first, last) for (key, command_id), (first, last) in command_rows.items()],
        )
    cache.next_position, cache.next_key = position, next_key
    return outcomes, updates


def _write_snapshots(conn: sqlite3.Connection, snapshots: list[PendingSnapshot]) -> None:
    taken_at = now_micros()
    conn.executemany(
        "INSERT OR REPLACE INTO snapshots (stream_id, version, position, schema_version, data, taken_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                p.snapshot.stream_id,
                p.snapshot.version,
                p.snapshot.position,
                p.snapshot.schema_version,
                p.snapshot.data,
                taken_at,
            )
            for p in snapshots
        ],
    )
    conn.executemany(  # prune: keep the newest `keep` of each stream
        "DELETE FROM snapshots WHERE stream_id = ? AND version NOT IN"
        " (SELECT version FROM snapshots WHERE stream_id = ? ORDER BY version DESC LIMIT ?)",
        [(p.snapshot.stream_id, p.snapshot.stream_id, p.keep) for p in snapshots],
    )
