"""Running a handler's code in a PostgreSQL read model's transaction: portable (plain functions, in a
worker thread, over a `PortableConnection`) or async (over the asyncpg connection), and rolling back
whatever it left behind, even while cancelled."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import asyncpg

from actorsrc.errors import ConfigurationError
from actorsrc.readmodel.portable import PortableConnection, translate

if TYPE_CHECKING:
    from actorsrc.sql.postgres import PgConnection

LET_GO = 2.0
"""Seconds a transaction's clean-up (asyncpg cancelling a statement, then ROLLBACK) may take before its
connection is terminated instead."""


async def roll_back(conn: PgConnection) -> None:
    """Roll back, even while cancelled. A statement the body left running (cancelled by a timeout or a
    stop) is still being cancelled by asyncpg, which refuses other statements until the server confirms:
    wait for that (briefly) rather than terminate the connection under asyncpg's own cancel request."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(LET_GO):
        while not conn.is_closed():
            try:
                await conn.execute("ROLLBACK", timeout=LET_GO)
                return
            except asyncpg.InterfaceError as exc:
                if "cancelling" not in str(exc):
                    break
            except Exception:
                break
            await anyio.sleep(0.005)
    conn.terminate()  # a broken link goes, rather than back to the pool mid-transaction


def not_awaitable(result: Any, whose: str) -> None:
    """Refuse what a plain (portable) function returned if it is awaitable: it was meant to be `async def`."""
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()  # never awaited: say so once, here, rather than as a warning
        raise ConfigurationError(
            f"{whose} returned an awaitable from a plain function: declare it `async def` (asyncpg, PostgreSQL "
            "only) or make it synchronous over the portable connection"
        )


async def in_thread(conn: PgConnection, work: Callable[[PortableConnection], None]) -> None:
    """Portable (synchronous) handler code, in a worker thread, its statements bridged into the
    transaction on `conn`; given up when cancelled (the thread's later statements are refused)."""
    db = PortableConnection(conn)
    try:
        await anyio.to_thread.run_sync(work, db, abandon_on_cancel=True)
    finally:
        await db.close(LET_GO)


def query_arguments(sql: str, params: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
    """A read query's statement and parameters as asyncpg takes them: the portable form (``?``
    placeholders, the parameters as one tuple or list) is translated to ``$n``; anything else (asyncpg's
    own ``$n`` form, a jsonb ``?`` operator with ``$n`` parameters, no parameters) is left as it is."""
    if len(params) == 1 and isinstance(params[0], (tuple, list)):
        translated, _, numbered = translate(sql)
        if not numbered:
            return translated, tuple(params[0])
    return sql, params
