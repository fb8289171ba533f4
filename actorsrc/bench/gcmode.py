"""The two garbage-collector set-ups a benchmark compares: tuned, and CPython's default (what an
application gets when neither it nor the runtime touches the collector).

This is the one place that says what each means. Default: CPython's thresholds (700, 10, 10) and, when
`Runtime` takes `tune_gc` (it tunes the collector itself while open), `tune_gc=False`. Tuned: CPython's
thresholds for the Runtime to raise itself (`tune_gc=True`), as an application that does nothing gets
them; with an older Runtime, `actorsrc.tuning.tune_gc()` around the run instead.
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
# Checked once: True when this actorsrc's Runtime tunes the collector itself (and can be told not to).
RUNTIME_TUNES_GC = "tune_gc" in inspect.signature(Runtime).parameters


def runtime_options(default_gc: bool | None) -> dict[str, Any]:
    """Keyword arguments for `Runtime(...)`: None leaves the runtime as it comes; True/False asks for
    CPython's default collector or the tuned one."""
    if default_gc is None or not RUNTIME_TUNES_GC:
        return {}
    return {"tune_gc": not default_gc}


@contextmanager
def gc_mode(default_gc: bool | None) -> Iterator[None]:
    """The process's thresholds for a run, to wrap the Runtime's whole life (it tunes on entering):
    CPython's (True, or False when the Runtime tunes them itself), tune_gc's (False, older Runtime);
    restored afterwards. None leaves the process as it is."""
    if default_gc is None:
        yield
        return
    previous = gc.get_threshold()
    gc.set_threshold(*CPYTHON_GC_THRESHOLDS)
    if not default_gc and not RUNTIME_TUNES_GC:
        tune_gc()
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def describe(default_gc: bool) -> str:
    """What a row's GC set-up was, for the report."""
    if default_gc:
        return "CPython's default GC (700, 10, 10)" + (", Runtime(tune_gc=False)" if RUNTIME_TUNES_GC else "")
    return "tuned GC (Runtime(tune_gc=True))" if RUNTIME_TUNES_GC else "tuned GC (actorsrc.tuning.tune_gc())"
