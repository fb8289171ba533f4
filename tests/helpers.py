"""Shared test helpers: a bank on a fresh SQLite file, and reading an account back from its events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from actorsrc import Runtime, SQLiteEventStore
from actorsrc.loading import load_state
from actorsrc.store.base import EventStore
from examples.bank import AccountState, account


@asynccontextmanager
async def bank(path: Path, **runtime_options: Any) -> AsyncIterator[tuple[SQLiteEventStore, Runtime]]:
    async with SQLiteEventStore.open(path) as store, Runtime(store, [account], **runtime_options) as runtime:
        yield store, runtime


async def replayed_account(store: EventStore, account_id: str) -> tuple[AccountState, list[int]]:
    """The account's state folded from its stored events, and the versions it has."""
    loaded = await load_state(store, account, account_id)
    versions = [r.version for r in await store.read_stream(account.stream_id(account_id))]
    return loaded.state, versions
