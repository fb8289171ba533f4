"""Claiming a part: an exclusive OS lock on `part-<k>.lock`, held for the process's life.

A process takes the first part whose lock is free, so workers started without an index (uvicorn's) each
get one, and no two processes ever hold one part. The kernel drops the lock when its holder exits,
however it exits (kill -9 included), so a restarted worker takes the freed part; a process that is only
paused (SIGSTOP, a long GC) keeps it, so nobody else writes its part meanwhile.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass

from actorsrc.cores.settings import Cores
from actorsrc.errors import NoFreePartError


@dataclass(slots=True)
class PartClaim:
    """Part `index` of `cores`, owned by this process while `release` has not been called.

    `shared_store`: the parts share one database (PostgreSQL) instead of a file each."""

    cores: Cores
    index: int
    _fd: int
    shared_store: bool = False

    @property
    def count(self) -> int:
        return self.cores.count

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = -1


def claim_part(cores: Cores, prefer: int | None = None) -> PartClaim:
    """The first free part (trying `prefer` first); `NoFreePartError` when every part is held."""
    order = list(range(cores.count))
    if prefer is not None and 0 <= prefer < cores.count:
        order.remove(prefer)
        order.insert(0, prefer)
    for index in order:
        claim = try_claim(cores, index)
        if claim is not None:
            return claim
    raise NoFreePartError(
        f"all {cores.count} parts of {str(cores.directory)!r} are held by running processes: start at most "
        f"{cores.count} processes on it (or wait for one to exit)"
    )


def try_claim(cores: Cores, index: int) -> PartClaim | None:
    fd = os.open(cores.lock_path(index), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())  # for a person looking: who holds it
    return PartClaim(cores, index, fd)
