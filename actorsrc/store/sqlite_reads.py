"""Many concurrent reads, one thread hop: queries queued while a hop is in flight go together.

A hop to the connection's thread costs ~75 us here; when thousands of actors recover at once
(each reading its stream), paying it once per batch instead of once per read matters.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite

from actorsrc.store.sqlite_thread import run_on_connection_thread

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

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._queue: list[_Query] = []
        self._drain: asyncio.Task[None] | None = None

    async def fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        reply: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queue.append((sql, params, reply))
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._run())
        return await reply

    async def _run(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
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
