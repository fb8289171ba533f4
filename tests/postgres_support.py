"""Where the PostgreSQL tests find their server: ACTORSRC_TEST_POSTGRES (set by .ci/with-postgres).

Without it they are skipped locally, and fail under CI=true: CI must never skip them silently.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

DSN = os.environ.get("ACTORSRC_TEST_POSTGRES")


def require_postgres() -> str:
    if DSN:
        return DSN
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("ACTORSRC_TEST_POSTGRES is not set under CI: run the tests through .ci/with-postgres")
    pytest.skip("no PostgreSQL: run `bash .ci/with-postgres .venv/bin/pytest` to include these tests")


async def fresh_schema() -> AsyncIterator[str]:
    """A schema name of its own for one test, dropped afterwards."""
    dsn = require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield schema
    conn = await asyncpg.connect(dsn)
    try:
        # A lock left by a process the test could not stop fails the teardown instead of hanging it.
        await conn.execute("SET lock_timeout = '30s'")
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
