"""The embedded default event store: one SQLite file in WAL mode, written by group commit.

Appends from every actor queue up and are written together in one transaction on the writer
connection's thread (one thread hop per batch, not per append). Reads use their own connection,
so they never wait behind a write.

``SQLiteEventStore.open(":memory:")`` is a store in memory for tests: no file, no WAL, no fsync. An
in-memory database lives in one connection, so reads share the writer's; each group commit runs from
BEGIN to COMMIT in one hop on that connection's thread, so a read between hops sees committed data only.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from os import PathLike
from typing import Any, Self

import aiosqlite
import anyio

from actorsrc.errors import ConcurrencyError, StoreClosedError, StoreError
from actorsrc.observability import logger
from actorsrc.records import AppendResult, RecordedEvent, Snapshot
from actorsrc.sql.encoding import micros_to_datetime
from actorsrc.sql.private_files import IN_MEMORY, ensure_private_file
from actorsrc.sql.sqlite_thread import connection_of, run_on_connection_thread
from actorsrc.store import sqlite_schema
from actorsrc.store.base import (
    StoredPayload,
    check_int,
    check_slices,
    validate_stream_id,
)
from actorsrc.store.frontend import GroupCommitFrontend, version_range
from actorsrc.store.group_commit import GroupCommitter, PendingAppend, PendingSnapshot
from actorsrc.store.limits import DEFAULT_LIMITS, StoreLimits
from actorsrc.store.presence import StreamPresence
from actorsrc.store.rows import log_records, recorded_event
from actorsrc.store.sqlite_lone_commit import LockBusy, LoneCommits, commit_here
from actorsrc.store.sqlite_presence import fill_presence
from actorsrc.store.sqlite_reads import BatchedReader, UndecodableText, with_text_checked
from actorsrc.store.sqlite_writer import StreamCache, raise_fence, write_batch

# Errors one bad append can cause; on these the batch is split so the others still commit. Errors of
# the database itself (locked, I/O, disk full) fail the whole batch once instead of once per append.
_ONE_APPEND_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    OverflowError,
    UnicodeError,
    TypeError,
    ValueError,
)
SMALL_READ = 64  # rows of a stream read that may run on the loop's thread (see BatchedReader.fetch)
_READ_PAYLOADS = (
    "SELECT e.version, e.position, e.type, e.schema_version, e.data FROM events e"
    " WHERE e.stream_key = (SELECT key FROM streams WHERE name = ?) AND e.version BETWEEN ? AND ?"
    " ORDER BY e.version"
)
_EVENT_COLUMNS = "e.version, e.position, e.type, e.schema_version, e.data, e.metadata, e.recorded_at"
_READ_STREAM = (
    "SELECT {} FROM events e"
    " WHERE e.stream_key = (SELECT key FROM streams WHERE name = ?) AND e.version BETWEEN ? AND ?"
    " ORDER BY e.version"
)
_READ_ALL = (
    "SELECT {} FROM events e JOIN streams s ON s.key = e.stream_key WHERE e.position > ? ORDER BY e.position LIMIT ?"
)
# Each read as (usual SQL, the same with its text columns as bytes): see _fetch_events.
_READ_STREAM_SQL = (
    _READ_STREAM.format(_EVENT_COLUMNS),
    _READ_STREAM.format(_EVENT_COLUMNS.replace("e.type", "CAST(e.type AS BLOB)")),
)
_READ_ALL_SQL = (
    _READ_ALL.format("s.name, " + _EVENT_COLUMNS),
    _READ_ALL.format("CAST(s.name AS BLOB), " + _EVENT_COLUMNS.replace("e.type", "CAST(e.type AS BLOB)")),
)
# Sliced reads, two plans with a bounded cost per page of `limit` rows (SQLite cannot merge the slices'
# ordered index ranges itself, and sorting every later row of the slices would make a catch-up quadratic):
# few slices: each slice's next `limit` rows through events_by_slice (at most width * limit rows), merged;
# many slices: the log in position order, skipping other slices (about limit * SLICES / width rows).
_NARROW_SLICES = 32
_READ_FEW_SLICES = (
    "WITH RECURSIVE k(n) AS (SELECT ? UNION ALL SELECT n + 1 FROM k WHERE n + 1 < ?)"
    " SELECT {} FROM k JOIN events e ON e.position IN"
    " (SELECT position FROM events WHERE slice = k.n AND position > ? ORDER BY position LIMIT ?)"
    " JOIN streams s ON s.key = e.stream_key ORDER BY e.position LIMIT ?"
)
_READ_MANY_SLICES = _READ_ALL.replace(  # unary + keeps SQLite off the slice index: the rowid scan is in order
    "WHERE e.position > ?", "WHERE +e.slice >= ? AND +e.slice < ? AND e.position > ?"
)
_READ_FEW_SLICES_SQL, _READ_MANY_SLICES_SQL = (
    (
        sql.format("s.name, " + _EVENT_COLUMNS),
        sql.format("CAST(s.name AS BLOB), " + _EVENT_COLUMNS.replace("e.type", "CAST(e.type AS BLOB)")),
    )
    for sql in (_READ_FEW_SLICES, _READ_MANY_SLICES)
)


class SQLiteEventStore(GroupCommitFrontend):
    """An `EventStore` on one SQLite file (or ``":memory:"``). Open it with
    ``async with SQLiteEventStore.open(path)``."""

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        durable: bool = True,
        max_batch_events: int = 5000,
        limits: StoreLimits = DEFAULT_LIMITS,
    ) -> None:
        if max_batch_events < 1:
            raise ValueError(f"max_batch_events must be >= 1, got {max_batch_events}")
        if not isinstance(limits, StoreLimits):
            raise TypeError(f"limits must be a StoreLimits, got {limits!r}")
        self.path = str(path)
        self.durable = durable
        self.in_memory = self.path == IN_MEMORY
        self._committer = GroupCommitter(
            self._write_batch,
            max_batch_events=max_batch_events,
            store_name=f"SQLite store {self.path!r}",
            split_on=_ONE_APPEND_ERRORS,
            limits=limits,
            write_now=self._write_now,
        )
        self._cache = StreamCache()
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._reads: BatchedReader | None = None
        self._open = False
        self.presence = StreamPresence()
        self._lone_commits = LoneCommits()

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        path: str | PathLike[str],
        *,
        durable: bool = True,
        max_batch_events: int = 5000,
        limits: StoreLimits = DEFAULT_LIMITS,
    ) -> AsyncIterator[Self]:
        """Open (creating if needed) the store at `path`; closes it, after pending appends, on exit.

        `durable=True` (the default) fsyncs every commit, so an acknowledged append survives a power
        cut. `durable=False` survives a process crash but may lose the last commits on power loss.
        A new file is created readable by its owner only (0600; its -wal and -shm files follow).
        An existing database that is not an actorsrc store is refused with `ForeignDatabaseError`
        and left untouched. ``":memory:"`` opens a new, empty store in memory, gone when closed.
        `limits` bounds event and append sizes and the queues (`StoreLimits`).
        """
        store = cls(path, durable=durable, max_batch_events=max_batch_events, limits=limits)
        await store._connect()
        # A plain task rather than a task group: exceptions from the caller's block must come out
        # as themselves, not wrapped in an ExceptionGroup.
        loop = asyncio.get_running_loop()
        writer = loop.create_task(store._committer.run())
        stop_filling = threading.Event()
        filling = loop.create_task(store._fill_presence(stop_filling))
        try:
            yield store
        finally:
            store._committer.close()
            stop_filling.set()
            with anyio.CancelScope(shield=True):  # pending appends finish; connections always close
                await asyncio.wait([writer, filling])
                await store._disconnect()

    async def _connect(self) -> None:
        max_reads = self._committer.limits.max_queued_reads
        try:
            if not self.in_memory:
                ensure_private_file(self.path)
            # Not bound to its thread: a lone append may commit on the loop's thread while that one is idle.
            self._writer = await aiosqlite.connect(self.path, isolation_level=None, check_same_thread=False)
            # The schema check reads before anything is written, even the switch to WAL: a foreign
            # database is refused untouched.
            await run_on_connection_thread(self._writer, sqlite_schema.migrate, where=f"SQLite file {self.path!r}")
            await run_on_connection_thread(
                self._writer, sqlite_schema.configure, durable=self.durable, in_memory=self.in_memory
            )
            if self.in_memory:  # one database per connection: reads go through the writer's
                self._reads = BatchedReader(self._writer, max_queued=max_reads)
            else:
                # Not bound to its thread: a small lone read may run on the loop's thread (see BatchedReader).
                self._reader = await aiosqlite.connect(self.path, isolation_level=None, check_same_thread=False)
                await run_on_connection_thread(self._reader, sqlite_schema.configure, durable=self.durable)
                self._reads = BatchedReader(self._reader, max_queued=max_reads, inline=True)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):  # even when cancelled: never leak a connection thread
                await self._disconnect()
            if isinstance(exc, sqlite3.Error | OSError):  # ForeignDatabaseError is neither: it comes out as is
                raise StoreError(f"cannot open SQLite store {self.path!r}: {exc}") from exc
            raise
        self._open = True

    async def _fill_presence(self, stop: threading.Event) -> None:
        """Add every stored stream id to `presence` (on a thread of its own with its own connection, so
        neither reads nor writes wait), then mark it ready. A failure leaves it unready: nothing skipped."""
        if self.in_memory:  # a new, empty database
            self.presence.ready = True
            return
        try:
            await anyio.to_thread.run_sync(fill_presence, self.path, self.presence, stop)
        except (sqlite3.Error, OSError) as exc:
            logger.warning("store.presence_failed", path=self.path, error=repr(exc))

    def may_hold_stream(self, stream_id: str) -> bool:
        return self.presence.may_hold(stream_id)

    async def _disconnect(self) -> None:
        self._open = False
        if self._reads is not None:
            await self._reads.wait_idle()
        for conn in (self._writer, self._reader):
            if conn is not None:
                await conn.close()
        self._writer = self._reader = None

    # -- writes ---------------------------------------------------------------------------------

    async def _write_batch(
        self, batch: list[PendingAppend], snapshots: list[PendingSnapshot]
    ) -> list[AppendResult | BaseException]:
        writer = self._writer
        assert writer is not None
        commits = self._lone_commits
        commits.on_thread += 1
        commits.wrote_on_thread(len(batch))
        try:
            outcomes = await run_on_connection_thread(writer, write_batch, batch, snapshots, self._cache)
        finally:
            commits.on_thread -= 1
        self._note_streams(batch, outcomes)
        return outcomes

    def _write_now(self, batch: list[PendingAppend]) -> list[AppendResult | BaseException] | None:
        """The committer's immediate writer: a lone append commits here, on the loop's thread, when
        `LoneCommits` allows it (see actorsrc.store.sqlite_lone_commit); else None, nothing written."""
        writer = self._writer
        events = sum(len(pending.events) for pending in batch)
        if writer is None or self.in_memory or not self._lone_commits.may_commit_here(len(batch), events):
            return None
        conn = connection_of(writer)
        try:
            outcomes = commit_here(conn, lambda: write_batch(conn, batch, [], self._cache), self._lone_commits)
        except LockBusy:  # another process writes: the append waits for the lock on the thread, as usual
            return None
        self._note_streams(batch, outcomes)
        return outcomes

    def _note_streams(self, batch: list[PendingAppend], outcomes: list[AppendResult | BaseException]) -> None:
        presence = self.presence
        for pending, outcome in zip(batch, outcomes, strict=True):
            # A stream created now, or one found to exist: the filter did not hold it (or not for sure).
            if (isinstance(outcome, AppendResult) and outcome.first_version == 1) or isinstance(
                outcome, ConcurrencyError
            ):
                presence.add(pending.stream_id)

    async def _raise_fence(self, shard: int, token: int) -> int:
        writer = self._writer
        assert writer is not None
        self._lone_commits.on_thread += 1
        try:  # on the writer's thread, between batches; BEGIN IMMEDIATE orders it with other processes too
            return await run_on_connection_thread(writer, raise_fence, shard, token)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path!r}: raising the fence of shard {shard} failed: {exc}") from exc
        finally:
            self._lone_commits.on_thread -= 1

    async def fences(self) -> dict[int, int]:
        return {int(shard): int(token) for shard, token in await self._fetch("SELECT shard, token FROM fences", ())}

    # -- snapshots ------------------------------------------------------------------------------

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        validate_stream_id(stream_id)
        rows = await self._fetch(
            "SELECT version, position, schema_version, data, taken_at FROM snapshots"
            " WHERE stream_id = ? ORDER BY version DESC LIMIT 1",
            (stream_id,),
            small=True,
        )
        if not rows:
            return None
        version, position, schema_version, data, taken_at = rows[0]
        try:
            return Snapshot(stream_id, version, position, schema_version, bytes(data), micros_to_datetime(taken_at))
        except Exception as exc:  # a snapshot is an optimisation, but a bare OverflowError names nothing
            raise StoreError(f"snapshot of {stream_id!r} at version {version} does not decode: {exc!r}") from exc

    # -- reads ----------------------------------------------------------------------------------

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        upper = version_range(stream_id, from_version, to_version)
        rows = await self._fetch_events(_READ_STREAM_SQL, (stream_id, from_version, upper), stream_id)
        return [recorded_event(stream_id, row) for row in rows]

    async def read_stream_payloads(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[StoredPayload]:
        """The lean replay read: (version, position, type, schema version, data) only, no metadata."""
        upper = version_range(stream_id, from_version, to_version)
        # Versions have no gaps: the first SMALL_READ of them are a small read (often all there is, after
        # a snapshot), which may skip the thread hop; the rest, if any, is read as usual.
        first_upper = min(upper, from_version + SMALL_READ - 1)
        rows = await self._fetch(_READ_PAYLOADS, (stream_id, from_version, first_upper), small=True)
        if len(rows) == SMALL_READ and first_upper < upper:
            rows += await self._fetch(_READ_PAYLOADS, (stream_id, first_upper + 1, upper))
        return rows

    async def read_all(
        self, after_position: int = 0, limit: int = 1000, *, slices: tuple[int, int] | None = None
    ) -> list[RecordedEvent]:
        check_int("after_position", after_position, 0)
        check_int("limit", limit, 1)
        if check_slices(slices) is None:
            rows = await self._fetch_events(_READ_ALL_SQL, (after_position, limit))
            return [recorded_event(row[0], row[1:]) for row in rows]
        assert slices is not None
        low, high = slices
        params: tuple[int, ...]
        if high - low < _NARROW_SLICES:
            sql, params = _READ_FEW_SLICES_SQL, (low, high, after_position, limit, limit)
        else:
            sql, params = _READ_MANY_SLICES_SQL, (low, high, after_position, limit)
        return log_records(await self._fetch_events(sql, params, sliced=True), sliced=True)

    async def find_commands(self, stream_id: str, command_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        validate_stream_id(stream_id)
        found: dict[str, tuple[int, int]] = {}
        ids = list(dict.fromkeys(command_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = await self._fetch(
                "SELECT c.command_id, c.first_version, c.last_version FROM command_ids c"
                " WHERE c.stream_key = (SELECT key FROM streams WHERE name = ?)"
                f" AND c.command_id IN ({','.join('?' * len(chunk))})",
                (stream_id, *chunk),
            )
            found.update((command_id, (first, last)) for command_id, first, last in rows)
        return found

    async def stream_version(self, stream_id: str) -> int:
        validate_stream_id(stream_id)
        rows = await self._fetch("SELECT version FROM streams WHERE name = ?", (stream_id,), small=True)
        return int(rows[0][0]) if rows else 0

    async def last_position(self) -> int:
        rows = await self._fetch("SELECT coalesce(max(position), 0) FROM events", ())
        return int(rows[0][0])

    async def _fetch_events(
        self, sql: tuple[str, str], params: tuple[Any, ...], stream_id: str | None = None, *, sliced: bool = False
    ) -> list[Any]:
        """Event rows (after the stream name when `stream_id` is None) of the first SQL of `sql`.

        SQLite cannot hand back text that is not UTF-8 (written by another program) and names only the
        column; the rows are then read again with the second SQL, text as bytes, to name the first bad row
        (a `sliced` read ends before it instead, unless it is the first row: see `EventStore.read_all`).
        """
        try:
            return await self._fetch(sql[0], params)
        except UndecodableText:
            return with_text_checked(await self._fetch(sql[1], params), stream_id, sliced=sliced)

    async def _fetch(self, sql: str, params: tuple[Any, ...], *, small: bool = False) -> list[Any]:
        self._check_open()
        assert self._reads is not None
        try:
            return await self._reads.fetch(sql, params, small=small)
        except sqlite3.OperationalError as exc:
            if "decode to UTF-8" in str(exc):
                raise UndecodableText(f"SQLite store {self.path!r}: read failed: {exc}") from exc
            raise StoreError(f"SQLite store {self.path!r}: read failed: {exc}") from exc
        except (sqlite3.Error, OverflowError, UnicodeError, ValueError) as exc:
            raise StoreError(f"SQLite store {self.path!r}: read failed: {exc}") from exc

    def _check_open(self) -> None:
        if not self._open:
            raise StoreClosedError(
                f"SQLite store {self.path!r} is not open; use `async with SQLiteEventStore.open(...)`"
            )

    def add_append_listener(self, listener: Callable[[int], None]) -> Callable[[], None]:
        """Call `listener(last_position)` after each commit of this store object; returns the remover.

        Appends by other processes are not seen here; subscribers poll for those.
        """
        self._committer.listeners.append(listener)
        return lambda: self._committer.listeners.remove(listener)
