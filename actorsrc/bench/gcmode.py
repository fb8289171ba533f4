"""The two garbage-collector set-ups a benchmark compares: tuned (what `actorsrc.tuning` applies) and
CPython's default, which is what an application gets when it does nothing.

This is the one place that says what "default GC" means: CPython's thresholds, and, once `Runtime`
takes a `gc_tuning` argument (the runtime tuning the collector itself), `gc_tuning=False` as well.
"""

from __future__ import annotations

import gc
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from actorsrc import Runtime
from actorsrc.tuning import tune_gc

CPYTHON_GC_THRESHOLDS = (700, 10, 10)
# Checked once: True when this actorsrc's Runtime can be told not to tune the collector.
RUNTIME_TAKES_GC_TUNING = "gc_tuning" in inspect.signature(Runtime).parameters


def runtime_options(default_gc: bool | None) -> dict[str, Any]:
    """Keyword arguments for `Runtime(...)`: None leaves the runtime as it comes; True/False asks for
    CPython's default collector or the tuned one."""
    if default_gc is None or not RUNTIME_TAKES_GC_TUNING:
        return {}
    return {"gc_tuning": not default_gc}


@contextmanager
def gc_mode(default_gc: bool | None) -> Iterator[None]:
    """CPython's thresholds (True) or the tuned ones (False) for the block, restored afterwards; None
    leaves the process as it is."""
    if default_gc is None:
        yield
        return
    previous = gc.get_threshold()
    gc.set_threshold(*CPYTHON_GC_THRESHOLDS)
    if not default_gc:
        tune_gc()
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def describe(default_gc: bool) -> str:
    """What a row's GC set-up was, for the report."""
    if default_gc:
        how = "CPython's default GC (700, 10, 10)"
        return how + (", Runtime(gc_tuning=False)" if RUNTIME_TAKES_GC_TUNING else "")
    return f"tuned GC {gc_thresholds_when_tuned()}"


def gc_thresholds_when_tuned() -> tuple[int, int, int]:
    with gc_mode(False):
        return gc.get_threshold()
