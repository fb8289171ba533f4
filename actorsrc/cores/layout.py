"""What a directory was split into, recorded on first use, so that no process starts with another count.

Part files name their count (`part-<k>-of-<n>.db`); `cores.json` records it for a shared database too,
where there are no part files. A mismatch is a `CoresLayoutError`: instances would be placed on other
parts than the ones holding their events (SQLite), or two processes would both run one instance (shared).
"""

from __future__ import annotations

import contextlib
import json
import os
import re

from actorsrc.cores.settings import Cores
from actorsrc.errors import CoresLayoutError

_PART_FILE = re.compile(r"part-(\d+)-of-(\d+)\.db")
LAYOUT_FILE = "cores.json"


def check_layout(cores: Cores) -> None:
    """Create the directory and record its count, or refuse it if it was split into another."""
    cores.directory.mkdir(parents=True, exist_ok=True)
    found = {int(match[2]) for name in os.listdir(cores.directory) if (match := _PART_FILE.fullmatch(name))}
    path = cores.directory / LAYOUT_FILE
    recorded = _recorded(path)
    if recorded is None:
        # Written aside, then linked into place: a reader never sees it half-written, and of two
        # processes starting at once one records it and the other reads that back.
        draft = cores.directory / f".{LAYOUT_FILE}.{os.getpid()}"
        draft.write_text(json.dumps({"count": cores.count}), encoding="utf-8")
        try:
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            draft.unlink(missing_ok=True)
        recorded = _recorded(path)
    if recorded is not None:
        found.add(recorded)
    other = sorted(found - {cores.count})
    if other:
        raise CoresLayoutError(
            f"{str(cores.directory)!r} is split into {other[0]} parts, not {cores.count}: start every process "
            f"with Cores(..., count={other[0]}), or use another directory",
            directory=str(cores.directory),
            count=cores.count,
            found=other[0],
        )


def _recorded(path: os.PathLike[str]) -> int | None:
    try:
        with open(path, encoding="utf-8") as layout:
            text = layout.read()
    except FileNotFoundError:
        return None
    try:
        count = json.loads(text)["count"]
    except (ValueError, KeyError, TypeError):
        count = None
    if type(count) is not int:
        raise CoresLayoutError(
            f"{str(path)!r} is not a cores layout file (it holds {text[:80]!r})", directory=str(path), count=0, found=0
        )
    return count
