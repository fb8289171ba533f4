from __future__ import annotations

from pathlib import Path

import pytest

from actorsrc.store.sqlite import SQLiteEventStore
from actorsrc.testing import EventStoreContract, StoreFactory


class TestSQLiteEventStoreContract(EventStoreContract):
    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> StoreFactory:
        return lambda: SQLiteEventStore.open(tmp_path / "events.db")
