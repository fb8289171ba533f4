"""`Cores`: one runtime process per core on one machine, over a store split into one part per process.

The directory holds everything the processes share: each part's SQLite file (`part-<k>-of-<n>.db`, when
the store is not a shared PostgreSQL database), the lock a process holds while it owns part k
(`part-<k>.lock`), and the Unix socket it takes routed commands on (`part-<k>.sock`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from actorsrc.errors import ConfigurationError
from actorsrc.hashing import SLICES

# A Unix socket's path must fit sockaddr_un.sun_path (108 bytes on Linux, 104 on macOS), with the nul.
_MAX_SOCKET_PATH = 103


@dataclass(frozen=True, slots=True, init=False)
class Cores:
    """`Runtime.for_cores(Cores(directory, count), aggregates, ...)`: this process takes one free part of
    `count`, runs the aggregate instances placed on it, and routes commands for the others to their owners.

    - ``directory``: shared by the processes of one application (created if missing).
    - ``count``: how many parts (processes); fixed for the directory's life, at most 1024. Default: the
      machine's cores.
    - ``connect_timeout``: how long one attempt to reach another part's process may take (seconds).
    """

    directory: Path
    count: int = 0
    connect_timeout: float = 1.0

    def __init__(self, directory: str | os.PathLike[str], count: int | None = None, *, connect_timeout: float = 1.0):
        if not isinstance(directory, str | os.PathLike) or not str(directory):
            raise ConfigurationError(f"Cores directory must be a path, got {directory!r}")
        if count is None:
            count = os.cpu_count() or 1
        if type(count) is not int or not 1 <= count <= SLICES:
            raise ConfigurationError(f"Cores count must be an int between 1 and {SLICES}, got {count!r}")
        if isinstance(connect_timeout, bool) or not isinstance(connect_timeout, int | float) or not connect_timeout > 0:
            raise ConfigurationError(f"Cores connect_timeout must be a number of seconds > 0, got {connect_timeout!r}")
        path = Path(directory).absolute()
        longest = path / f"part-{count - 1}.sock"
        if len(os.fsencode(longest)) > _MAX_SOCKET_PATH:
            raise ConfigurationError(
                f"Cores directory {str(path)!r} is too long for a Unix socket path ({longest} is over "
                f"{_MAX_SOCKET_PATH} bytes): choose a shorter one"
            )
        object.__setattr__(self, "directory", path)
        object.__setattr__(self, "count", count)
        object.__setattr__(self, "connect_timeout", float(connect_timeout))

    def lock_path(self, part: int) -> Path:
        return self.directory / f"part-{part}.lock"

    def socket_path(self, part: int) -> Path:
        return self.directory / f"part-{part}.sock"

    def database_path(self, part: int) -> Path:
        return self.directory / f"part-{part}-of-{self.count}.db"
