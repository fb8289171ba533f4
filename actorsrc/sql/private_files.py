"""Database files readable by their owner only: events hold personal and financial data.

SQLite creates the `-wal` and `-shm` files with the permissions of the main file, so creating the
main file as 0600 before SQLite opens it covers all three.
"""

from __future__ import annotations

import os

IN_MEMORY = ":memory:"


def is_in_memory(path: str) -> bool:
    """Whether `path` names an SQLite in-memory database rather than a file."""
    return path == IN_MEMORY or (path.startswith("file:") and "mode=memory" in path)


def ensure_private_file(path: str) -> None:
    """Create `path` with mode 0600 if it does not exist yet; an existing file keeps its mode."""
    if is_in_memory(path) or path.startswith("file:"):
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
