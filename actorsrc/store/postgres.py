"""The scale-out event store: PostgreSQL through asyncpg, for several processes on one database.

    async with PostgresEventStore.open("postgresql://user@127.0.0.1/app", schema="actorsrc") as store: ...

It passes the same contract suite as the SQLite store. Appends from all actors of a process are
group-committed; positions are gapless and in commit order across processes (see postgres_schema);
subscribers are woken through LISTEN/NOTIFY, with polling as the fallback (behind a transaction-pooling
proxy, pass ``listen=False``). A batch whose connection drops mid-commit is settled before it is
retried: a batch that did commit is recognised by its first event and never written twice, and an
append whose outcome cannot be settled fails with `OutcomeUnknownError`, never as "not written".

Every statement has a deadline (`command_timeout`, 30 s by default), so a dead link cannot block the
committer forever; by default the server is asked for the same deadline (`statement_timeout`, and
`idle_in_transaction_session_timeout`, so a session whose client vanished mid-commit releases the
log-head lock that every writer waits for).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Self

import anyio
import asyncpg

from actorsrc.errors import ConfigurationError, StoreClosedError, StoreError
from actorsrc.observability import logger
from actorsrc.records import AppendResult, RecordedEvent, Snapshot
from actorsrc.sql.encoding import micros_to_datetime
from actorsrc.sql.postgres import check_schema_name
from actorsrc.store.base import StoredPayload, check_int, check_slices, validate_stream_id
from actorsrc.store.frontend import GroupCommitFrontend, version_range
from actorsrc.store.group_commit import GroupCommitter, PendingAppend, PendingSnapshot
from actorsrc.store.limits import DEFAULT_LIMITS, StoreLimits
from actorsrc.store.postgres_retry import TRANSIENT_ERRORS, backoff, write_with_retries
from actorsrc.store.postgres_schema import migrate
from actorsrc.store.postgres_writer import notify_channel, raise_fence
from actorsrc.store.rows import log_records, recorded_event

if TYPE_CHECKING:
    from actorsrc.sql.postgres import PgConnection

# Errors one bad append can cause: the batch is split so the others still commit.
_ONE_APPEND_ERRORS = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    OverflowError,
    ValueError,
    TypeError,
    UnicodeError,
)
_COLUMNS = "e.version, e.position, e.type, e.schema_version, e.data, e.metadata, e.recorded_at"


_NARROW_SLICES = 32  # sliced reads of fewer slices merge per-slice index scans
_IDLE_IN_TRANSACTION_MS = 60_000  # with command_timeout=None: our transactions never sit idle this long


class PostgresEventStore(GroupCommitFrontend):
    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "actorsrc",
        min_connections: int = 2,
        max_connections: int = 10,
        max_batch_events: int = 5000,
        listen: bool = True,
        retries: int = 5,
        retry_delay: float = 0.05,
        command_timeout: float | None = 30.0,
        server_timeouts: bool = True,
        limits: StoreLimits = DEFAULT_LIMITS,
    ) -> None:
        """`limits` bounds event and append sizes and the queues (`StoreLimits`).

        `retries` attempts follow a failed write or read, after `retry_delay` seconds, doubling up to 2 s.
        `command_timeout` bounds every statement, in seconds (None: wait forever); with `server_timeouts`
        the server applies it too, as `statement_timeout` and `idle_in_transaction_session_timeout` (the
        latter 60 s when `command_timeout` is None; turn `server_timeouts` off behind a proxy that refuses
        these startup parameters, such as PgBouncer by default)."""
        if not isinstance(limits, StoreLimits):
            raise TypeError(f"limits must be a StoreLimits, got {limits!r}")
        self.dsn = dsn
        self.schema = check_schema_name(schema)
        self.listen = listen
        self.retries = retries
        self.retry_delay = retry_delay
        self.command_timeout = _check_timeout(command_timeout)
        self.server_timeouts = server_timeouts
        self._pool_size = (min_connections, max_connections)
        self._committer = GroupCommitter(
            self._write_with_retries,
            max_batch_events=max_batch_events,
            store_name=f"PostgreSQL store (schema {schema!r})",
            split_on=_ONE_APPEND_ERRORS,
            limits=limits,
        )
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._relisten: asyncio.Task[None] | None = None
        self._local_listeners: list[Callable[[int], None]] = []
        self._payload_reads: list[tuple[str, int, int, asyncio.Future[list[StoredPayload]]]] = []
        self._payload_reader: asyncio.Task[None] | None = None
        self._read_room = asyncio.Event()  # set when reads were taken off the queue

    @classmethod
    @asynccontextmanager
    async def open(cls, dsn: str, **options: Any) -> AsyncIterator[Self]:
        """Connect, apply the schema (idempotently), and close cleanly after pending appends."""
        store = cls(dsn, **options)
        await store._connect()
        writer = asyncio.get_running_loop().create_task(store._committer.run())
        try:
            yield store
        finally:
            store._committer.close()
            with anyio.CancelScope(shield=True):
                await asyncio.wait([writer])
                await store._disconnect()

    async def _connect(self) -> None:
        try:
            low, high = self._pool_size
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=low,
                max_size=high,
                command_timeout=self.command_timeout,
                server_settings=self._server_settings(),
            )
            async with self._pool.acquire() as conn:
                await migrate(conn, self.schema)
            if self.listen:
                await self._listen()
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._disconnect()
            if isinstance(exc, OSError | asyncpg.PostgresError | asyncpg.InterfaceError):
                raise StoreError(f"cannot open the PostgreSQL store (schema {self.schema!r}): {exc}") from exc
            raise

    def _server_settings(self) -> dict[str, str] | None:
        if not self.server_timeouts:
            return None
        if self.command_timeout is None:
            # Statements may run as long as they like, but a session whose client vanished mid-commit must
            # still end, or it holds the log-head lock every writer needs until TCP keepalive notices.
            return {"idle_in_transaction_session_timeout": str(_IDLE_IN_TRANSACTION_MS)}
        millis = str(max(1, round(self.command_timeout * 1000)))
        return {"statement_timeout": millis, "idle_in_transaction_session_timeout": millis}

    async def _listen(self) -> None:
        listener = await asyncpg.connect(self.dsn, command_timeout=self.command_timeout)
        try:
            await listener.add_listener(notify_channel(self.schema), self._on_notify)
        except BaseException:
            await listener.close()
            raise
        listener.add_termination_listener(self._on_listener_lost)
        self._listener = listener

    def _on_listener_lost(self, conn: object) -> None:
        # Subscribers fall back to polling meanwhile; wake-ups resume once the link is back.
        if conn is self._listener and self._pool is not None and self._relisten is None:
            self._listener = None
            logger.warning("store.listen_lost", store="postgres", schema=self.schema)
            self._relisten = asyncio.get_running_loop().create_task(self._listen_again())

    async def _listen_again(self) -> None:
        try:
            for attempt in range(1_000_000):
                await anyio.sleep(min(5.0, 0.1 * 2**attempt))
                if self._pool is None:
                    return
                try:
                    await self._listen()
                    return
                except Exception as exc:  # keep trying: polling covers the gap meanwhile
                    logger.warning("store.listen_retry", store="postgres", attempt=attempt + 1, error=repr(exc))
        finally:
            self._relisten = None

    async def _disconnect(self) -> None:
        reader, self._payload_reader = self._payload_reader, None
        if reader is not None:
            await asyncio.wait([reader])
        relisten, self._relisten = self._relisten, None
        if relisten is not None:
            relisten.cancel()
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
        self._read_room.set()  # reads waiting for room learn that the store is closed

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            position = int(str(payload))
        except ValueError:
            return
        for listener in list(self._local_listeners):
            listener(position)

    def add_append_listener(self, listener: Callable[[int], None]) -> Callable[[], None]:
        """Call `listener(last_position)` after commits of any process (LISTEN/NOTIFY) or this one."""
        self._local_listeners.append(listener)
        self._committer.listeners.append(listener)

        def remove() -> None:
            self._local_listeners.remove(listener)
            self._committer.listeners.remove(listener)

        return remove

    # -- writes ---------------------------------------------------------------------------------

    async def _write_with_retries(
        self, batch: list[PendingAppend], snapshots: list[PendingSnapshot]
    ) -> list[AppendResult | BaseException]:
        return await write_with_retries(
            self._acquire, self.schema, batch, snapshots, retries=self.retries, retry_delay=self.retry_delay
        )

    def _acquire(self) -> AbstractAsyncContextManager[PgConnection]:
        return self._require_pool().acquire(timeout=self.command_timeout)

    # -- reads ----------------------------------------------------------------------------------

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        upper = version_range(stream_id, from_version, to_version)
        rows = await self._fetch(
            f'SELECT {_COLUMNS} FROM "{self.schema}".events e WHERE e.stream_key ='
            f' (SELECT key FROM "{self.schema}".streams WHERE name = $1) AND e.version BETWEEN $2 AND $3'
            " ORDER BY e.version",
            stream_id,
            from_version,
            upper,
        )
        return [recorded_event(stream_id, row) for row in rows]

    async def read_stream_payloads(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[StoredPayload]:
        """The lean replay read: (version, position, type, schema version, data) only, no metadata.

        Reads that arrive together (thousands of actors recovering at once) share one query; beyond
        `StoreLimits.max_queued_reads` waiting reads, a new one waits for the next query to take some.
        """
        upper = version_range(stream_id, from_version, to_version)
        self._check_open()
        while len(self._payload_reads) >= self._committer.limits.max_queued_reads:
            self._read_room.clear()
            await self._read_room.wait()
            self._check_open()
        reply: asyncio.Future[list[StoredPayload]] = asyncio.get_running_loop().create_future()
        self._payload_reads.append((stream_id, from_version, upper, reply))
        if self._payload_reader is None:
            self._payload_reader = asyncio.get_running_loop().create_task(self._read_payloads())
        return await reply

    async def _read_payloads(self) -> None:
        try:
            while self._payload_reads:
                batch, self._payload_reads = self._payload_reads[:1000], self._payload_reads[1000:]
                self._read_room.set()
                try:
                    rows = await self._fetch(
                        "SELECT r.i, e.version, e.position, e.type, e.schema_version, e.data"
                        " FROM unnest($1::text[], $2::bigint[], $3::bigint[]) WITH ORDINALITY AS r(name, lo, hi, i)"
                        f' JOIN "{self.schema}".streams s ON s.name = r.name'
                        f' JOIN "{self.schema}".events e ON e.stream_key = s.key AND e.version BETWEEN r.lo AND r.hi'
                        " ORDER BY r.i, e.version",
                        [name for name, _, _, _ in batch],
                        [lo for _, lo, _, _ in batch],
                        [hi for _, _, hi, _ in batch],
                    )
                except Exception as exc:
                    for *_, reply in batch:
                        if not reply.done():
                            reply.set_exception(exc)
                    continue
                found: list[list[StoredPayload]] = [[] for _ in batch]
                for row in rows:
                    found[row[0] - 1].append((row[1], row[2], row[3], row[4], bytes(row[5])))
                for (*_, reply), payloads in zip(batch, found, strict=True):
                    if not reply.done():
                        reply.set_result(payloads)
        finally:
            self._payload_reader = None

    async def read_all(
        self, after_position: int = 0, limit: int = 1000, *, slices: tuple[int, int] | None = None
    ) -> list[RecordedEvent]:
        check_int("after_position", after_position, 0)
        check_int("limit", limit, 1)
        if check_slices(slices) is None:
            rows = await self._fetch(
                f'SELECT s.name, {_COLUMNS} FROM "{self.schema}".events e JOIN "{self.schema}".streams s'
                " ON s.key = e.stream_key WHERE e.position > $1 ORDER BY e.position LIMIT $2",
                after_position,
                limit,
            )
            return [recorded_event(row[0], tuple(row)[1:]) for row in rows]
        assert slices is not None
        low, high = slices
        # Two plans with a bounded cost per page (see SQLiteEventStore.read_all): few slices, each one's next
        # `limit` rows through events_by_slice, merged; many, the log in order skipping other slices
        # (`slice + 0` keeps the planner on the primary key, whose order is the one wanted).
        if high - low < _NARROW_SLICES:
            source = (
                "generate_series($1::int, $2::int - 1) AS k(n) CROSS JOIN LATERAL"
                f' (SELECT * FROM "{self.schema}".events WHERE slice = k.n AND position > $3'
                " ORDER BY position LIMIT $4) AS e"
            )
            where = "TRUE"
        else:
            source = f'"{self.schema}".events e'
            where = "e.slice + 0 >= $1 AND e.slice + 0 < $2 AND e.position > $3"
        rows = await self._fetch(
            f'SELECT s.name, {_COLUMNS} FROM {source} JOIN "{self.schema}".streams s ON s.key = e.stream_key'
            f" WHERE {where} ORDER BY e.position LIMIT $4",
            low,
            high,
            after_position,
            limit,
        )
        return log_records(rows, sliced=True)

    async def _raise_fence(self, shard: int, token: int) -> int:
        for attempt in range(self.retries + 1):  # safe to repeat: the fence only ever moves up to `token`
            try:
                async with self._acquire() as conn:
                    return await raise_fence(conn, self.schema, shard, token)
            except TRANSIENT_ERRORS as exc:
                if attempt == self.retries:
                    raise StoreError(
                        f"raising the fence of shard {shard} failed after {attempt + 1} attempts: {exc!r}"
                    ) from exc
                await anyio.sleep(backoff(self.retry_delay, attempt))
            except asyncpg.PostgresError as exc:
                raise StoreError(f"raising the fence of shard {shard} failed: {exc!r}") from exc
        raise AssertionError("unreachable")

    async def fences(self) -> dict[int, int]:
        rows = await self._fetch(f'SELECT shard, token FROM "{self.schema}".fences')
        return {int(shard): int(token) for shard, token in rows}

    async def stream_version(self, stream_id: str) -> int:
        validate_stream_id(stream_id)
        rows = await self._fetch(f'SELECT version FROM "{self.schema}".streams WHERE name = $1', stream_id)
        return int(rows[0][0]) if rows else 0

    async def last_position(self) -> int:
        rows = await self._fetch(f'SELECT position FROM "{self.schema}".log_head WHERE id = 1')
        return int(rows[0][0])

    async def find_commands(self, stream_id: str, command_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        validate_stream_id(stream_id)
        rows = await self._fetch(
            f'SELECT command_id, first_version, last_version FROM "{self.schema}".command_ids'
            f' WHERE stream_key = (SELECT key FROM "{self.schema}".streams WHERE name = $1)'
            " AND command_id = ANY($2::text[])",
            stream_id,
            list(dict.fromkeys(command_ids)),
        )
        return {command_id: (first, last) for command_id, first, last in rows}

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        validate_stream_id(stream_id)
        rows = await self._fetch(
            f'SELECT version, position, schema_version, data, taken_at FROM "{self.schema}".snapshots'
            " WHERE stream_id = $1 ORDER BY version DESC LIMIT 1",
            stream_id,
        )
        if not rows:
            return None
        version, position, schema_version, data, taken_at = rows[0]
        return Snapshot(stream_id, version, position, schema_version, bytes(data), micros_to_datetime(taken_at))

    async def _fetch(self, sql: str, *params: Any) -> list[Any]:
        pool = self._require_pool()
        for attempt in range(self.retries + 1):
            try:
                return list(await pool.fetch(sql, *params))
            except TRANSIENT_ERRORS as exc:  # reads are safe to repeat
                if attempt == self.retries:
                    raise StoreError(f"PostgreSQL read failed after {attempt + 1} attempts: {exc!r}") from exc
                await anyio.sleep(backoff(self.retry_delay, attempt))
            except (asyncpg.PostgresError, OverflowError, UnicodeError, ValueError) as exc:
                raise StoreError(f"PostgreSQL read failed: {exc!r}") from exc
        raise AssertionError("unreachable")

    def _require_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreClosedError(f"PostgreSQL store (schema {self.schema!r}) is not open")
        return self._pool

    def _check_open(self) -> None:
        self._require_pool()


def _check_timeout(seconds: float | None) -> float | None:
    if seconds is not None and (
        isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds < float("inf")
    ):
        raise ConfigurationError(f"command_timeout must be a number of seconds > 0 or None, got {seconds!r}")
    return seconds
