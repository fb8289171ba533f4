"""The library's structlog logger. A library never configures structlog; applications do.

Until the application configures structlog, actorsrc stays quiet: warnings and errors go to stderr
and lifecycle chatter (debug, info) is dropped, rather than structlog's unconfigured default of
printing every level to stdout. Once structlog is configured, every event follows that configuration.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any

import structlog

_PROCESSORS: list[Any] = [
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso"),
    structlog.dev.ConsoleRenderer(colors=False),
]
_quiet: dict[int, Any] = {}


def _quiet_logger() -> Any:
    """Warnings and up, to whatever sys.stderr is now (it may have been replaced since import)."""
    stream = sys.stderr
    cached = _quiet.get(id(stream))
    if cached is None or cached[0] is not stream:
        logger = structlog.wrap_logger(
            structlog.PrintLogger(stream),
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
            processors=_PROCESSORS,
        )
        _quiet.clear()
        cached = _quiet[id(stream)] = (stream, logger)
    return cached[1]


class _LibraryLogger:
    """Chooses, at each call, the application's configuration or the quiet default.

    A failing log sink (a closed stream, a broken processor) never breaks the code that logs.
    """

    def _target(self) -> Any:
        return structlog.get_logger("actorsrc") if structlog.is_configured() else _quiet_logger()

    def _emit(self, level: str, event: str, fields: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # logging must not take the runtime down
            getattr(self._target(), level)(event, **fields)

    def debug(self, event: str, **fields: Any) -> None:
        if structlog.is_configured():  # else dropped anyway: skip finding the quiet logger (hot paths log debug)
            self._emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        if structlog.is_configured():
            self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, fields)

    def bind(self, **fields: Any) -> _BoundLibraryLogger:
        return _BoundLibraryLogger(self, fields)


class _BoundLibraryLogger:
    def __init__(self, parent: _LibraryLogger, fields: dict[str, Any]) -> None:
        self._parent = parent
        self._fields = fields

    def warning(self, event: str, **fields: Any) -> None:
        self._parent.warning(event, **self._fields, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self._parent.error(event, **self._fields, **fields)


logger = _LibraryLogger()
