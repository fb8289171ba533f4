from __future__ import annotations

import gc
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
    structlog.reset_defaults()  # capture every level, whatever an earlier test configured
    with structlog.testing.capture_logs() as logs:
        yield logs


@pytest.fixture(autouse=True)
def _process_settings_restored() -> Iterator[None]:
    # The CLI configures structlog and the GC process-wide, as an application may; the next test must not
    # see it.
    thresholds = gc.get_threshold()
    yield
    structlog.reset_defaults()
    gc.set_threshold(*thresholds)
