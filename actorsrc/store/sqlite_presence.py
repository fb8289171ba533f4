"""Filling a SQLite store's `StreamPresence` with the stream ids already stored, when it opens."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from actorsrc.store.presence import StreamPresence


def fill_presence(path: str, presence: StreamPresence, stop: threading.Event, chunk: int = 10_000) -> None:
    """Add every stream id stored at `path` to `presence`, then mark it ready (unless `stop` was set).

    Its own read-only connection, in key order by chunks, so a huge store does not hold one read open."""
    conn = sqlite3.connect(Path(path).absolute().as_uri() + "?mode=ro", uri=True, check_same_thread=False)
    try:
        last = 0
        while not stop.is_set():
            rows = conn.execute(
                "SELECT key, name FROM streams WHERE key > ? ORDER BY key LIMIT ?", (last, chunk)
            ).fetchall()
            for _, name in rows:
                presence.add(name)
            if len(rows) < chunk:
                presence.ready = True
                return
            last = rows[-1][0]
    finally:
        conn.close()
