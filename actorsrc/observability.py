"""The library's structlog logger. A library never configures structlog; applications do.

Until the application configures structlog, actorsrc stays quiet: warnings and errors go to stderr
and lifecycle chatter (debug, info) is dropped, rather than structlog's unconfigured default of
printing every level to stdout. Once structlog is configured, every event follows that configuration.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_quiet: Any = structlog.wrap_logger(
    structlog.PrintLogger(sys.stderr),
    wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    processors=[
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.dev.ConsoleRenderer(colors=False),
    ],
)


class _LibraryLogger:
    """Chooses, at each call, the application's configuration or the quiet default."""

    def _target(self) -> Any:
        return structlog.get_logger("actorsrc") if structlog.is_configured() else _quiet

    def debug(self, event: str, **fields: Any) -> None:
        self._target().debug(event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self._target().info(event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._target().warning(event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self._target().error(event, **fields)

    def bind(self, **fields: Any) -> Any:
        return self._target().bind(**fields)


logger = _LibraryLogger()
