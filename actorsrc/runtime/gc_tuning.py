"""The garbage-collector tuning a Runtime applies while it runs, visible and switchable.

CPython collects its young generation every 700 allocations, and every hundredth of those passes walks
every live object. A runtime holding tens of thousands of actors and making a few objects per command
pays for those walks again and again (measured: the write path at 0.71x with CPython's thresholds).
So a Runtime raises the young threshold while it is open, and puts the old thresholds back when the
last open runtime exits. It only does so when the process still has CPython's own thresholds: an
application that chose its own is left alone. `Runtime(..., tune_gc=False)` turns it off;
`runtime.gc_tuned` says whether it applied. Reference cycles are still collected, in larger, rarer passes.
"""

from __future__ import annotations

import gc

from actorsrc.observability import logger

CPYTHON_THRESHOLDS = (700, 10, 10)
TUNED_YOUNG_THRESHOLD = 50_000


class _ProcessGcTuning:
    """Process-wide, counted: the first runtime to enter tunes, the last to exit restores."""

    def __init__(self) -> None:
        self.holders = 0
        self.previous: tuple[int, int, int] | None = None

    def acquire(self) -> bool:
        """Tune (or join a tuning already applied). False: the application set its own thresholds."""
        if self.holders:
            self.holders += 1
            return True
        current = gc.get_threshold()
        if current != CPYTHON_THRESHOLDS:
            return False
        self.previous = current
        gc.set_threshold(TUNED_YOUNG_THRESHOLD, current[1], current[2])
        self.holders = 1
        logger.info("runtime.gc_tuned", thresholds=list(gc.get_threshold()), previous=list(current))
        return True

    def release(self) -> None:
        self.holders -= 1
        if self.holders or self.previous is None:
            return
        # Only put back what we changed: an application that retuned since then keeps its choice.
        if gc.get_threshold()[0] == TUNED_YOUNG_THRESHOLD:
            gc.set_threshold(*self.previous)
        self.previous = None


PROCESS_GC = _ProcessGcTuning()
