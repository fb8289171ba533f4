"""The library's structlog logger. A library never configures structlog; applications do."""

from __future__ import annotations

import structlog

logger: structlog.stdlib.BoundLogger = structlog.get_logger("actorsrc")
