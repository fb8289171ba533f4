from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

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
