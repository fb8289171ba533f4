from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from actorsrc.store.base import EventStore
from actorsrc.store.postgres import PostgresEventStore
from actorsrc.testing import EventStoreContract, StoreFactory
from tests.postgres_support import fresh_schema, require_postgres


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async for name in fresh_schema():
        yield name


class TestPostgresEventStoreContract(EventStoreContract):
    @pytest.fixture
    def store_factory(self, schema: str) -> StoreFactory:
        dsn = require_postgres()
        return lambda: PostgresEventStore.open(dsn, schema=schema)

    async def corrupt_row(self, store: EventStore, position: int, column: str, value: bytes | int) -> None:
        assert isinstance(store, PostgresEventStore)
        assert column in ("metadata", "recorded_at")
        conn = await asyncpg.connect(store.dsn)  # another program writing to the database
        try:
            await conn.execute(f'UPDATE "{store.schema}".events SET {column} = $1 WHERE position = $2', value, position)
        finally:
            await conn.close()
