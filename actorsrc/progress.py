"""A tiny progress bar for the command line: a redrawn line on a terminal, a few plain lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self, TextIO

_BAR_WIDTH = 24


class Progress:
    """Counts work done out of `total` and shows it on `stream` (stderr by default).

    On a terminal the line is redrawn in place with ``\\r``, at most once per `interval` seconds so
    that drawing never costs more than the work. Anywhere else (a log file, a CI console) a ``\\r``
    stream is noise, so it prints one line per quarter of the work instead.
    """

    def __init__(
        self,
        total: int,
        label: str = "",
        *,
        stream: TextIO | None = None,
        interval: float = 0.1,
        milestones: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if total < 0:
            raise ValueError(f"total must be >= 0, got {total}")
        if milestones < 1:
            raise ValueError(f"milestones must be >= 1, got {milestones}")
        self.total = total
        self.label = label
        self.count = 0
        self._stream = stream if stream is not None else sys.stderr
        self._tty = _is_tty(self._stream)
        self._interval = interval
        self._milestones = milestones
        self._clock = clock
        self._started = clock()
        self._last_draw = float("-inf")
        self._last_width = 0
        self._next_milestone = 1
        self._printed: int | None = None  # the count on the last plain line

    def __enter__(self) -> Self:
        self._started = self._clock()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Always end the line, even on error, so what follows does not overwrite the bar.
        if self._tty:
            self._redraw()
            self._stream.write("\n")
        elif self._printed != self.count:
            self._print_line()
        self._stream.flush()

    def advance(self, n: int = 1) -> None:
        self.count += n
        if self._tty:
            now = self._clock()
            if now - self._last_draw >= self._interval:
                self._last_draw = now
                self._redraw()
        else:
            self._print_milestones()

    @property
    def rate(self) -> float:
        """Items per second since the start."""
        elapsed = self._clock() - self._started
        return self.count / elapsed if elapsed > 0 else 0.0

    def render(self) -> str:
        """The progress as one line of text, without a bar."""
        prefix = f"{self.label}: " if self.label else ""
        return f"{prefix}{self.count:,}/{self.total:,} ({self._fraction():.0%}), {self.rate:,.0f}/s"

    def _fraction(self) -> float:
        return min(self.count / self.total, 1.0) if self.total else 1.0

    def _redraw(self) -> None:
        filled = round(self._fraction() * _BAR_WIDTH)
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        prefix = f"{self.label} " if self.label else ""
        line = f"{prefix}[{bar}] {self.count:,}/{self.total:,} {self._fraction():6.1%} {self.rate:>10,.0f}/s"
        # Pad over the remains of a longer previous line.
        self._stream.write("\r" + line.ljust(self._last_width))
        self._stream.flush()
        self._last_width = len(line)

    def _print_milestones(self) -> None:
        reached = int(self._fraction() * self._milestones)
        if reached >= self._next_milestone:
            self._next_milestone = reached + 1
            self._print_line()

    def _print_line(self) -> None:
        self._stream.write(self.render() + "\n")
        self._stream.flush()
        self._printed = self.count


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-like stream without a terminal
        return False
