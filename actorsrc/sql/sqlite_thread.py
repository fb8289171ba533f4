"""Run a plain sqlite3 function on an aiosqlite connection's own thread, in one hop.

aiosqlite offers one hop per statement; a group commit is several statements, so we hand the whole
function to the connection thread through `Connection._execute`, the primitive all of aiosqlite's own
methods use (stable since aiosqlite 0.17). This is the only place that touches it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

import aiosqlite

T = TypeVar("T")
P = ParamSpec("P")


async def run_on_connection_thread(
    conn: aiosqlite.Connection,
    fn: Callable[Concatenate[sqlite3.Connection, P], T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    result: T = await conn._execute(fn, conn._conn, *args, **kwargs)  # type: ignore[no-untyped-call]
    return result


def connection_of(conn: aiosqlite.Connection) -> sqlite3.Connection:
    """The plain sqlite3 connection under `conn`, for a caller that knows its thread is idle (and that
    opened it with check_same_thread=False)."""
    plain: sqlite3.Connection = conn._conn
    return plain
