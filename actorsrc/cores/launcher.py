"""`run(count, main)`: start `count` processes, each running `main()` on a part of its own, and start a
process again whenever one dies (a crash, kill -9); it takes the part the dead one left.

Each child is a fresh interpreter (spawn): `main` must be importable (a module-level function) and `run`
called under ``if __name__ == "__main__":``. A child learns the part it should try first from
`ACTORSRC_CORES_PART` (`Runtime.for_cores` reads it; any free part otherwise). SIGTERM (and Ctrl-C) to
the launcher stops every child cleanly: in a child, SIGTERM raises `KeyboardInterrupt`, so its
``async with Runtime.for_cores(...)`` exits as on Ctrl-C (queued commands finished, store closed).
A child that exits with status 0 is not started again; `run` returns once none is left.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from actorsrc.backoff import exponential_backoff
from actorsrc.cores.opening import PART_VARIABLE
from actorsrc.errors import ConfigurationError
from actorsrc.observability import logger

_STEADY = 10.0  # a child that ran this long before dying is restarted at once, its backoff forgotten
_STOP_GRACE = 30.0  # seconds children get to stop cleanly before they are killed


def _child(main: Callable[[], object], part: int) -> None:
    os.environ[PART_VARIABLE] = str(part)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like Ctrl-C: cleanly
    with contextlib.suppress(KeyboardInterrupt):
        main()


def run(count: int, main: Callable[[], object], *, restart: bool = True) -> dict[int, int | None]:
    """Run `main()` in `count` processes until they all exit; their last exit codes by part."""
    if type(count) is not int or count < 1:
        raise ConfigurationError(f"run(count=...) must be an int >= 1, got {count!r}")
    if not callable(main):
        raise ConfigurationError(f"run(main=...) must be a callable, got {main!r}")
    context = multiprocessing.get_context("spawn")
    children: dict[int, BaseProcess] = {}
    started: dict[int, float] = {}
    failures: dict[int, int] = dict.fromkeys(range(count), 0)
    codes: dict[int, int | None] = {}
    stopping = False

    def start(part: int) -> None:
        child = context.Process(target=_child, args=(main, part), name=f"actorsrc-part-{part}")
        child.start()
        children[part], started[part] = child, time.monotonic()

    def stop(_signal: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.pid is not None and child.exitcode is None:
                os.kill(child.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for part in range(count):
            start(part)
        while children:
            wait([child.sentinel for child in children.values()])
            for part, child in list(children.items()):
                if child.exitcode is None:
                    continue
                del children[part]
                codes[part] = child.exitcode
                if stopping or child.exitcode == 0 or not restart:
                    continue
                ran = time.monotonic() - started[part]
                failures[part] = 1 if ran >= _STEADY else failures[part] + 1
                pause = exponential_backoff(0.1, 5.0, 0.2, failures[part]) if failures[part] > 1 else 0.0
                logger.warning("cores.child_died", part=part, exitcode=child.exitcode, restart_in=round(pause, 2))
                time.sleep(pause)
                if not stopping:
                    start(part)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        deadline = time.monotonic() + _STOP_GRACE
        for child in children.values():
            child.join(max(0.0, deadline - time.monotonic()))
            if child.exitcode is None:
                child.kill()
                child.join()
    return codes
