"""Shared test helpers: a bank on a fresh SQLite file, and reading an account back from its events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from actorsrc import Runtime, SQLiteEventStore
from actorsrc.codec import EventCodec
from actorsrc.store.base import EventStore
from examples.bank import AccountState, account

_codec = EventCodec(account.events, account.schema_versions)


@asynccontextmanager
async def bank(path: Path, **runtime_options: Any) -> AsyncIterator[tuple[SQLiteEventStore, Runtime]]:
    async with SQLiteEventStore.open(path) as store, Runtime(store, [account], **runtime_options) as runtime:
        yield store, runtime


async def replayed_account(store: EventStore, account_id: str) -> tuple[AccountState, list[int]]:
    """The account's state folded from its stored events, and the versions it has."""
    stream_id = account.stream_id(account_id)
    records = await store.read_stream(stream_id)
    events = [_codec.decode(stream_id, r.version, r.type, r.data) for r in records]
    return account.replay(events), [r.version for r in records]
