"""The three read models an example's projections must run on unchanged, by name, for parametrized tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from actorsrc import SQLiteReadModel
from actorsrc.readmodel.postgres import PostgresReadModel
from tests.postgres_support import fresh_schema, require_postgres


@asynccontextmanager
async def _in_memory(tmp_path: Path) -> AsyncIterator[SQLiteReadModel]:
    async with SQLiteReadModel.open(":memory:") as model:
        yield model


@asynccontextmanager
async def _sqlite_file(tmp_path: Path) -> AsyncIterator[SQLiteReadModel]:
    async with SQLiteReadModel.open(tmp_path / "read.db") as model:
        yield model


@asynccontextmanager
async def _postgres(tmp_path: Path) -> AsyncIterator[PostgresReadModel]:
    dsn = require_postgres()
    async for schema in fresh_schema():
        async with PostgresReadModel.open(dsn, schema=schema) as model:
            yield model


READ_MODELS: dict[str, Callable[[Path], AbstractAsyncContextManager[Any]]] = {
    "memory": _in_memory,
    "sqlite": _sqlite_file,
    "postgres": _postgres,
}
