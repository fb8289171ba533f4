"""`run(count, main)`: start `count` processes, each running `main()` on a part of its own, and start a
process again whenever one dies (a crash, kill -9); it takes the part the dead one left.

Each child is a fresh interpreter (spawn): `main` must be importable (a module-level function) and `run`
called under ``if __name__ == "__main__":``. A child learns the part it should try first from
`ACTORSRC_CORES_PART` (`Runtime.for_cores` reads it; any free part otherwise). SIGTERM (and Ctrl-C) to
the launcher stops every child cleanly: in a child, SIGTERM acts as Ctrl-C, so its
``async with Runtime.for_cores(...)`` exits as on Ctrl-C (queued commands finished, store closed); a child
still running `stop_grace` seconds (30) later is killed.
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


def _child(main: Callable[[], object], part: int) -> None:
    os.environ[PART_VARIABLE] = str(part)
    signal.signal(signal.SIGTERM, _as_ctrl_c)
    with contextlib.suppress(KeyboardInterrupt):
        main()


def _as_ctrl_c(_signal: int, frame: FrameType | None) -> None:
    """SIGTERM stops a child as Ctrl-C would, through the SIGINT handler in place: under ``asyncio.run`` its
    own, which cancels the main task from the loop, so the runtime closes between steps. (A KeyboardInterrupt
    raised in the middle of a task's step can leave anyio's worker thread running, and the process hanging
    at exit.)"""
    handler = signal.getsignal(signal.SIGINT)
    if not callable(handler):
        raise KeyboardInterrupt
    handler(signal.SIGINT, frame)


def run(
    count: int, main: Callable[[], object], *, restart: bool = True, stop_grace: float = 30.0
) -> dict[int, int | None]:
    """Run `main()` in `count` processes until they all exit; their last exit codes by part. Once stopping,
    a child still running after `stop_grace` seconds is killed."""
    if type(count) is not int or count < 1:
        raise ConfigurationError(f"run(count=...) must be an int >= 1, got {count!r}")
    if isinstance(stop_grace, bool) or not isinstance(stop_grace, int | float) or not stop_grace >= 0:
        raise ConfigurationError(f"run(stop_grace=...) must be a number of seconds >= 0, got {stop_grace!r}")
    if not callable(main):
        raise ConfigurationError(f"run(main=...) must be a callable, got {main!r}")
    context = multiprocessing.get_context("spawn")
    children: dict[int, BaseProcess] = {}
    started: dict[int, float] = {}
    failures: dict[int, int] = dict.fromkeys(range(count), 0)
    codes: dict[int, int | None] = {}
    stopping = False
    stop_by = 0.0  # once stopping: when children still running are killed

    def start(part: int) -> None:
        child = context.Process(target=_child, args=(main, part), name=f"actorsrc-part-{part}")
        child.start()
        children[part], started[part] = child, time.monotonic()

    def stop(_signal: int, _frame: FrameType | None) -> None:
        nonlocal stopping, stop_by
        if not stopping:
            stopping, stop_by = True, time.monotonic() + stop_grace
        for child in children.values():
            if child.pid is not None and child.exitcode is None:
                os.kill(child.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for part in range(count):
            start(part)
        while children:
            wait(
                [child.sentinel for child in children.values()],
                max(0.0, stop_by - time.monotonic()) if stopping else None,
            )
            if stopping and time.monotonic() >= stop_by:
                break  # the grace is over: what still runs is killed below
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
        deadline = stop_by if stopping else time.monotonic() + stop_grace
        for part, child in children.items():
            child.join(max(0.0, deadline - time.monotonic()))
            if child.exitcode is None:
                logger.warning("cores.child_killed", part=part, after=stop_grace)
                child.kill()
                child.join()
            codes[part] = child.exitcode
    return codes
