"""Many concurrent reads, one thread hop: queries queued while a hop is in flight go together.

A hop to the connection's thread costs ~75 us here; when thousands of actors recover at once
(each reading its stream), paying it once per batch instead of once per read matters. The queue
is bounded: beyond `max_queued` waiting queries, a new read waits for the next hop to take them.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite

from actorsrc.errors import EventDecodeError, StoreError
from actorsrc.sql.sqlite_thread import connection_of, run_on_connection_thread

INLINE_PER_TURN = 4
_Query = tuple[str, Sequence[Any], "asyncio.Future[list[Any]]"]


def _run_queries(conn: sqlite3.Connection, queries: list[_Query]) -> list[list[Any] | BaseException]:
    results: list[list[Any] | BaseException] = []
    for sql, params, _ in queries:
        try:
            results.append(conn.execute(sql, params).fetchall())
        except Exception as exc:  # this query's own failure; the others in the hop go on
            results.append(exc)
    return results


class BatchedReader:
    """Runs queries on one aiosqlite connection, batching those that arrive together."""

    def __init__(self, conn: aiosqlite.Connection, *, max_queued: int = 10_000, inline: bool = False) -> None:
        if max_queued < 1:
            raise ValueError(f"max_queued must be >= 1, got {max_queued}")
        self._conn = conn
        self._max_queued = max_queued
        self._queue: list[_Query] = []
        self._room = asyncio.Event()  # set when the queue has dropped below max_queued
        self._drain: asyncio.Task[None] | None = None
        # Small reads may run on the loop's own thread (see `fetch`): only on a connection opened with
        # check_same_thread=False, and a few per loop turn.
        self._inline_allowed = inline
        self._inline_this_turn = 0
        self.done_inline = 0

    @property
    def queued(self) -> int:
        """Queries waiting for the next hop."""
        return len(self._queue)

    async def fetch(self, sql: str, params: Sequence[Any], *, small: bool = False) -> list[Any]:
        """The rows of one query. A `small` one (a few rows by an index) runs right here, on the loop's
        thread, when the connection's thread is idle and fewer than INLINE_PER_TURN reads ran here in this
        loop turn: a lone caller's reads (a snapshot, then the events after it) then cost no thread hop
        (~75 us each way), while a crowd of reads (thousands of actors recovering) still goes to the
        thread in batches, overlapping the loop."""
        if small and self._inline_allowed and self._drain is None and self._inline_this_turn < INLINE_PER_TURN:
            if not self._inline_this_turn:
                asyncio.get_running_loop().call_soon(self._next_turn)
            self._inline_this_turn += 1
            self.done_inline += 1
            return connection_of(self._conn).execute(sql, params).fetchall()
        while len(self._queue) >= self._max_queued:  # backpressure: the next hop takes the whole queue
            self._room.clear()
            await self._room.wait()
        reply: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queue.append((sql, params, reply))
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._run())
        return await reply

    def _next_turn(self) -> None:
        self._inline_this_turn = 0

    async def _run(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                self._room.set()
                try:
                    results = await run_on_connection_thread(self._conn, _run_queries, batch)
                except BaseException as exc:  # the hop itself failed: every query in it failed
                    results = [exc] * len(batch)
                    if not isinstance(exc, Exception):
                        _deliver(batch, results)
                        raise
                _deliver(batch, results)
        finally:
            self._drain = None

    async def wait_idle(self) -> None:
        if self._drain is not None:
            await asyncio.wait([self._drain])


def _deliver(batch: list[_Query], results: Sequence[list[Any] | BaseException]) -> None:
    for (_, _, reply), result in zip(batch, results, strict=True):
        if reply.done():
            continue
        if isinstance(result, BaseException):
            reply.set_exception(result)
        else:
            reply.set_result(result)


class UndecodableText(StoreError):
    """A read hit text that is not UTF-8; the caller reads the rows again with the text as bytes."""


def with_text_checked(rows: list[Any], stream_id: str | None, *, sliced: bool = False) -> list[Any]:
    """Event rows read with their type (and stream name, first, when `stream_id` is None) as bytes, with that
    text decoded back; the first row whose text is not UTF-8 raises `EventDecodeError` naming its position
    (in a `sliced` read of the log, only if it is the first row: the rows before it are returned instead)."""
    offset = 1 if stream_id is None else 0
    decoded: list[Any] = []
    for raw in rows:
        row = list(raw)
        try:
            if stream_id is None:
                row[0] = bytes(row[0]).decode("utf-8")
            row[offset + 2] = bytes(row[offset + 2]).decode("utf-8")
        except UnicodeDecodeError as exc:
            name = stream_id if stream_id is not None else bytes(raw[0]).decode("utf-8", "backslashreplace")
            version, position, type_name = raw[offset], raw[offset + 1], raw[offset + 2]
            if sliced and decoded:
                return decoded
            raise EventDecodeError(
                name,
                version,
                bytes(type_name).decode("utf-8", "backslashreplace"),
                f"the stream name or event type is not UTF-8 text: {exc}",
                position=position,
            ) from exc
        decoded.append(tuple(row))
    return decoded
