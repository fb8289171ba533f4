"""The garbage-collector tuning a Runtime applies while it runs, visible and switchable.

CPython collects its young generation every 700 allocations, and every hundredth of those passes walks
every live object. A runtime holding tens of thousands of actors and making a few objects per command
pays for those walks again and again (measured: the write path at 0.71x with CPython's thresholds).
So a Runtime raises the young threshold while it is open, and puts the old thresholds back when the
last open runtime exits. It only does so when the process still has CPython's own thresholds (those of
the running version: 3.13 changed them): an application that chose its own is left alone.
`Runtime(..., tune_gc=False)` turns it off; `runtime.gc_tuned` says whether it applied. Reference cycles
are still collected, in larger, rarer passes.
"""

from __future__ import annotations

import gc
import sys
import threading

from actorsrc.observability import logger

Thresholds = tuple[int, int, int]

# What a new CPython interpreter starts with, by version: 3.13 raised the young threshold, 3.14's
# incremental collector reports no third one.
_CPYTHON_THRESHOLDS: dict[tuple[int, int], Thresholds] = {
    (3, 11): (700, 10, 10),
    (3, 12): (700, 10, 10),
    (3, 13): (2000, 10, 10),
    (3, 14): (2000, 10, 0),
}
_AT_IMPORT: Thresholds = gc.get_threshold()


def cpython_thresholds(version: tuple[int, int]) -> Thresholds:
    """CPython's own thresholds in `version` (for a version not listed: the process's when actorsrc loaded)."""
    return _CPYTHON_THRESHOLDS.get(version, _AT_IMPORT)


CPYTHON_THRESHOLDS = cpython_thresholds((sys.version_info[0], sys.version_info[1]))
TUNED_YOUNG_THRESHOLD = 50_000


class ProcessGcTuning:
    """Process-wide, counted: the first runtime to enter tunes, the last to exit restores. Runtimes may
    enter and exit on several threads (each with its own loop): the count is kept under a lock."""

    def __init__(self, defaults: Thresholds = CPYTHON_THRESHOLDS) -> None:
        self.defaults = defaults
        self.holders = 0
        self.previous: Thresholds | None = None
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        """Tune (or join a tuning already applied). False: the application set its own thresholds."""
        with self._lock:
            if self.holders:
                self.holders += 1
                return True
            current = gc.get_threshold()
            if current != self.defaults:
                return False
            self.previous = current
            gc.set_threshold(TUNED_YOUNG_THRESHOLD, current[1], current[2])
            self.holders = 1
            tuned = gc.get_threshold()
        logger.info("runtime.gc_tuned", thresholds=list(tuned), previous=list(current))
        return True

    def release(self) -> None:
        with self._lock:
            self.holders -= 1
            if self.holders or self.previous is None:
                return
            # Only put back what we changed: an application that retuned since then keeps its choice.
            if gc.get_threshold()[0] == TUNED_YOUNG_THRESHOLD:
                gc.set_threshold(*self.previous)
            self.previous = None


PROCESS_GC = ProcessGcTuning()
