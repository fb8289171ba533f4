"""The SQLite schema, chosen for insert speed, and how a file is recognised as ours before it is touched.

Streams get small integer keys: the per-stream index is then (int, int) instead of
(text, int), which keeps index pages dense and the write amplification of a batch touching
many streams low. The global position is the rowid, so it is gapless and in commit order
(SQLite has one writer at a time and a rolled-back rowid is reused).

An actorsrc store carries `PRAGMA application_id = APPLICATION_ID` and its schema version in
`PRAGMA user_version`. A database without that marker is initialised only if it is empty; an
application's own database is refused before anything is written to it (not even the switch to WAL).
"""

from __future__ import annotations

import sqlite3

from actorsrc.errors import ForeignDatabaseError
from actorsrc.hashing import slice_of

SCHEMA_VERSION = 5
"""1: streams and events; 2: snapshots; 3: command ids; 4: the application id marker (no table change);
5: each event's slice (and its index), shard fences."""
APPLICATION_ID = 0x61637372  # "acsr": an actorsrc event store
_SQLITE_NOTADB = 26

STATEMENTS = [
    """CREATE TABLE IF NOT EXISTS streams (
    key     INTEGER PRIMARY KEY,
    name    TEXT    NOT NULL UNIQUE,
    version INTEGER NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,
    stream_key     INTEGER NOT NULL,
    version        INTEGER NOT NULL,
    type           TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    data           BLOB    NOT NULL,
    metadata       BLOB    NOT NULL,
    recorded_at    INTEGER NOT NULL,
    slice          INTEGER NOT NULL
)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS events_by_stream ON events (stream_key, version)",
    """CREATE TABLE IF NOT EXISTS snapshots (
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    position       INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    data           BLOB    NOT NULL,
    taken_at       INTEGER NOT NULL,
    PRIMARY KEY (stream_id, version)
) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS command_ids (
    stream_key    INTEGER NOT NULL,
    command_id    TEXT    NOT NULL,
    first_version INTEGER NOT NULL,
    last_version  INTEGER NOT NULL,
    PRIMARY KEY (stream_key, command_id)
) WITHOUT ROWID""",
]
"""Run in order inside one transaction: a failure leaves nothing half made."""

LATER_STATEMENTS = [
    # Serves "events of slices [low, high) after position p in position order" (read_all's slices): an
    # index holds the rowid, which is the position, so this is (slice, position) without a second copy.
    "CREATE INDEX IF NOT EXISTS events_by_slice ON events (slice)",
    """CREATE TABLE IF NOT EXISTS fences (
    shard INTEGER PRIMARY KEY,
    token INTEGER NOT NULL
)""",
]
"""Run after an older store's events have their slice column (version 5)."""
_SLICE_BATCH = 1000  # streams whose events get their slice per statement batch

# Our tables' columns, to recognise a store written before version 4 (no application id yet).
_COLUMNS = {
    "streams": ("key", "name", "version"),
    "events": ("position", "stream_key", "version", "type", "schema_version", "data", "metadata", "recorded_at"),
    "snapshots": ("stream_id", "version", "position", "schema_version", "data", "taken_at"),
    "command_ids": ("stream_key", "command_id", "first_version", "last_version"),
}
_REQUIRED_BEFORE_MARKER = ("streams", "events")  # version 1 had only these
_ADDED_COLUMNS = {"events": ("slice",)}  # by version 5; tolerated on an unmarked store (see _add_slices)


def configure(conn: sqlite3.Connection, *, durable: bool, in_memory: bool = False) -> None:
    """Pragmas for every connection: WAL, and fsync on every commit when `durable` (none in memory)."""
    conn.execute("PRAGMA busy_timeout = 10000")
    if in_memory:
        return
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"could not switch the database to WAL mode (got {mode!r})")
    # FULL syncs the WAL on every commit: an acknowledged append survives a power cut.
    # NORMAL survives a process crash but may lose the last commits on power loss.
    conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")


def migrate(conn: sqlite3.Connection, *, where: str = "the database") -> None:
    """Create or upgrade the schema, in one transaction; safe to run on every open.

    Reads first and writes only to a database that is empty or already an actorsrc store; any other
    raises `ForeignDatabaseError` and is left byte for byte as it was. `where` names the file in errors.
    """
    conn.execute("PRAGMA busy_timeout = 10000")
    if _found_version(conn, where) == SCHEMA_VERSION:
        return  # the common case: nothing to write
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = _found_version(conn, where)  # again, under the write lock: another process may have done it
        if found < SCHEMA_VERSION:
            for statement in STATEMENTS:
                conn.execute(statement)
            if 1 <= found < 5:
                _add_slices(conn)
            for statement in LATER_STATEMENTS:
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _add_slices(conn: sqlite3.Connection) -> None:
    """Version 5: give every event of an older store its slice, computed per stream (it depends on the
    stream id only), stream by stream through the (stream_key, version) index."""
    if "slice" not in [row[1] for row in conn.execute("PRAGMA table_info(events)")]:
        conn.execute("ALTER TABLE events ADD COLUMN slice INTEGER NOT NULL DEFAULT 0")
    streams = conn.execute("SELECT key, name FROM streams ORDER BY key")
    while chunk := streams.fetchmany(_SLICE_BATCH):
        conn.executemany("UPDATE events SET slice = ? WHERE stream_key = ?", [(slice_of(n), k) for k, n in chunk])


def _found_version(conn: sqlite3.Connection, where: str) -> int:
    """The schema version of an actorsrc store (0: an empty database); reads only."""
    try:
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
            )
        ]
        objects = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorcode", None) == _SQLITE_NOTADB:
            raise ForeignDatabaseError(
                f"{where} is not an actorsrc store: it is not an SQLite database ({exc}); it was left"
                " untouched. Give the event store a new file"
            ) from exc
        raise
    if application_id == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"the database schema is version {version}, newer than this actorsrc understands "
                f"({SCHEMA_VERSION}); upgrade actorsrc"
            )
        return int(version)
    if application_id == 0 and version == 0 and objects == 0:
        return 0
    if application_id == 0 and 1 <= version < SCHEMA_VERSION and _has_our_tables(conn, tables):
        return int(version)  # a store from before the marker
    marker = f"application id {application_id:#x}, " if application_id else ""
    raise ForeignDatabaseError(
        f"{where} is not an actorsrc store: it holds {_describe(tables)} ({marker}user_version {version})"
        " without actorsrc's schema marker; it was left untouched. Give the event store its own file"
        " (a new or empty one)"
    )


def _has_our_tables(conn: sqlite3.Connection, tables: list[str]) -> bool:
    if not all(name in tables for name in _REQUIRED_BEFORE_MARKER):
        return False
    for name, columns in _COLUMNS.items():
        if name in tables:
            found = tuple(row[1] for row in conn.execute(f"PRAGMA table_info({name})"))
            if found not in (columns, columns + _ADDED_COLUMNS.get(name, ())):
                return False
    return True


def _describe(tables: list[str]) -> str:
    if not tables:
        return "no tables but other schema objects"
    shown = ", ".join(repr(name) for name in sorted(tables)[:5])
    more = f" and {len(tables) - 5} more" if len(tables) > 5 else ""
    return f"tables {shown}{more}"
