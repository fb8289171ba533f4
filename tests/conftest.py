from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
import structlog
import structlog.testing


@pytest.fixture
def anyio_backend() -> str:
    # aiosqlite and asyncpg are asyncio-only.
    return "asyncio"


@pytest.fixture
def captured_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """structlog events emitted during the test; structlog is back to unconfigured afterwards."""
    with structlog.testing.capture_logs() as logs:
        yield logs
    structlog.reset_defaults()
