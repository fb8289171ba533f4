"""Portable projections: one synchronous handler for every read model.

A projection written as plain functions, ``handle(db, envelope)``, ``setup(db)`` and ``reset(db)``, over
the sqlite3-style subset ``db.execute(sql, params=())`` (a cursor-like result with `fetchone`,
`fetchall`, `fetchmany`, `rowcount` and iteration), ``db.executemany(sql, seq_of_params)`` and
``db.executescript(sql)``, with ``?`` placeholders, runs unchanged on every read model:

- on `SQLiteReadModel` (a file or ":memory:") `db` is the real `sqlite3.Connection`, on the read
  model's own thread, a whole batch per hop: nothing is translated, nothing is slower;
- on `PostgresReadModel` the handler runs in a worker thread inside the read model's transaction, and
  `db` is a `PortableConnection`: each statement crosses to the event loop, ``?`` becomes ``$1..$n``
  and runs on the transaction's asyncpg connection. The checkpoint still moves in the same
  transaction, so each event's effect lands exactly once.

Write the SQL both databases accept: ``TEXT``, ``BIGINT``, ``DOUBLE PRECISION``/``REAL``, ``BYTEA``
is PostgreSQL's ``BLOB``; ``INSERT ... ON CONFLICT (...) DO UPDATE SET n = n + excluded.n``; no
``INSERT OR REPLACE``. asyncpg checks parameter types against the columns (an `int` into a ``TEXT``
column is refused) where SQLite converts. ``??`` stands for a literal ``?`` (PostgreSQL's jsonb
operators) and is translated only on PostgreSQL.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread

from actorsrc.errors import ActorsrcError, ConfigurationError

if TYPE_CHECKING:
    from actorsrc.sql.postgres import PgConnection


class PlaceholderError(ConfigurationError):
    """A statement's placeholders cannot be translated: it mixes ``?`` with ``$n``, or its parameters
    are not a sequence."""


class TransactionAbandonedError(ActorsrcError):
    """A portable handler kept running after its transaction was given up (it overran its timeout, or
    the read model is stopping): its statement was refused, nothing of it is written."""


def is_async(code: Callable[..., Any]) -> bool:
    """Whether a handler's function is written for asyncpg (`async def`, PostgreSQL only) rather than
    portable (a plain function, every read model)."""
    return inspect.iscoroutinefunction(code) or inspect.iscoroutinefunction(type(code).__call__)


# -- placeholders ---------------------------------------------------------------------------------

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_NUMBERED = re.compile(r"\$[0-9]+")


@lru_cache(maxsize=2048)
def translate(sql: str) -> tuple[str, int, bool]:
    """``?`` placeholders to PostgreSQL's ``$1..$n``; returns (sql, how many ``?``, whether it already
    has ``$n`` placeholders). ``?`` inside quoted strings, quoted identifiers, dollar-quoted strings and
    comments stays as it is; ``??`` becomes a literal ``?``."""
    out: list[str] = []
    count = 0
    numbered = False
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "?":
            if i + 1 < n and sql[i + 1].isdigit():
                raise PlaceholderError(
                    f"numbered ?NNN placeholders are SQLite's own: use plain ? (in order) to run anywhere: {sql!r}"
                )
            if i + 1 < n and sql[i + 1] == "?":
                out.append("?")
                i += 2
                continue
            count += 1
            out.append(f"${count}")
            i += 1
            continue
        end = i + 1
        if c == "'":
            escapes = i > 0 and sql[i - 1] in "eE" and (i < 2 or not (sql[i - 2].isalnum() or sql[i - 2] == "_"))
            end = _quoted_end(sql, i, "'", backslash=escapes)
        elif c == '"':
            end = _quoted_end(sql, i, '"', backslash=False)
        elif c == "-" and sql.startswith("--", i):
            newline = sql.find("\n", i)
            end = n if newline < 0 else newline + 1
        elif c == "/" and sql.startswith("/*", i):
            end = _block_comment_end(sql, i)
        elif c == "$":
            numbered_match = _NUMBERED.match(sql, i)
            if numbered_match and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
                numbered = True
                end = numbered_match.end()
            else:
                tag = _DOLLAR_TAG.match(sql, i)
                if tag and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
                    closing = sql.find(tag.group(0), tag.end())
                    end = n if closing < 0 else closing + len(tag.group(0))
        out.append(sql[i:end])
        i = end
    if count and numbered:
        raise PlaceholderError(f"statement mixes ? and $n placeholders (use one kind): {sql!r}")
    return "".join(out), count, numbered


def _quoted_end(sql: str, start: int, quote: str, *, backslash: bool) -> int:
    i, n = start + 1, len(sql)
    while i < n:
        c = sql[i]
        if backslash and c == "\\":
            i += 2
            continue
        if c == quote:
            if i + 1 < n and sql[i + 1] == quote:  # a doubled quote stands for one
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _block_comment_end(sql: str, start: int) -> int:
    depth, i, n = 0, start, len(sql)
    while i < n:
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


def parameters(sql: str, params: Any) -> tuple[str, tuple[Any, ...]]:
    """The PostgreSQL form of a ``?`` statement and its parameters (a sequence, as sqlite3 takes them)."""
    if isinstance(params, (str, bytes, Mapping)) or not isinstance(params, Sequence | Iterable):
        raise PlaceholderError(
            f"parameters must be a sequence (a tuple or a list) for ? placeholders, got {type(params).__name__}"
        )
    translated, _, _ = translate(sql)
    return translated, tuple(params)


_ROWS_FIRST = frozenset({"SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN"})
_FIRST_WORD = re.compile(r"\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*[(\s]*([A-Za-z]+)", re.DOTALL)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
_LITERALS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.DOTALL)


@lru_cache(maxsize=2048)
def returns_rows(sql: str) -> bool:
    """Whether a statement yields rows (a query, or a write with RETURNING) rather than a row count."""
    first = _FIRST_WORD.match(sql)
    if first and first.group(1).upper() in _ROWS_FIRST:  # also `(SELECT ...) UNION (SELECT ...)`
        return True
    return bool(_RETURNING.search(_LITERALS.sub(" ", sql)))  # RETURNING in a string literal does not count


def _row_count(status: str) -> int:
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1


# -- the connection a portable handler gets on PostgreSQL ------------------------------------------


class Rows:
    """The result of `PortableConnection.execute`: what a `sqlite3.Cursor` offers for reading."""

    __slots__ = ("_next", "_rows", "rowcount")

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int = -1) -> None:
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._next >= len(self._rows):
            return None
        row = self._rows[self._next]
        self._next += 1
        return row

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        rows = self._rows[self._next : self._next + size]
        self._next += len(rows)
        return rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows = self._rows[self._next :]
        self._next = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while (row := self.fetchone()) is not None:
            yield row


class PortableConnection:
    """A PostgreSQL transaction seen through the sqlite3-style subset, for a synchronous handler run in a
    worker thread: each call runs its statement on the event loop, on the transaction's connection.

    Its owner (on the event loop) closes it when the transaction ends; a handler still running then (it
    overran its timeout: a thread cannot be stopped) has every further statement refused with
    `TransactionAbandonedError`, so nothing it does lands outside the transaction.
    """

    def __init__(self, conn: PgConnection) -> None:
        self._conn = conn
        self._open = True
        self._in_flight = 0
        self._idle: anyio.Event | None = None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        return anyio.from_thread.run(self._execute, sql, params)

    def executemany(self, sql: str, seq_of_params: Iterable[Sequence[Any]]) -> Rows:
        translated, _, _ = translate(sql)
        rows = [parameters(sql, params)[1] for params in seq_of_params]
        return anyio.from_thread.run(self._executemany, translated, rows)

    def executescript(self, sql: str) -> Rows:
        """Several statements, no parameters (PostgreSQL's simple query protocol)."""
        return anyio.from_thread.run(self._executescript, sql)

    async def close(self, wait: float) -> None:
        """Refuse further statements; wait up to `wait` seconds (even while cancelled) for one in flight."""
        self._open = False
        if self._in_flight:
            self._idle = anyio.Event()
            with anyio.CancelScope(shield=True), anyio.move_on_after(wait):
                await self._idle.wait()

    def _enter(self) -> None:
        if not self._open:
            raise TransactionAbandonedError(
                "statement refused: its handler's transaction was given up (timeout or stop) and rolled back"
            )
        self._in_flight += 1

    def _leave(self) -> None:
        self._in_flight -= 1
        if not self._in_flight and self._idle is not None:
            self._idle.set()

    async def _execute(self, sql: str, params: Sequence[Any]) -> Rows:
        translated, args = parameters(sql, params)
        self._enter()
        try:
            if returns_rows(sql):
                return Rows([tuple(record) for record in await self._conn.fetch(translated, *args)])
            return Rows([], _row_count(await self._conn.execute(translated, *args)))
        finally:
            self._leave()

    async def _executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> Rows:
        self._enter()
        try:
            if rows:
                await self._conn.executemany(sql, rows)
            return Rows([])
        finally:
            self._leave()

    async def _executescript(self, sql: str) -> Rows:
        self._enter()
        try:
            await self._conn.execute(sql)
            return Rows([])
        finally:
            self._leave()
