"""Shared test helpers: a bank on a fresh SQLite file, reading an account back from its events, and
waiting for a condition instead of for time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from actorsrc import Runtime, SQLiteEventStore
from actorsrc.recovery import load_state
from actorsrc.store.base import EventStore
from actorsrc.testing.faults import FaultyStore, InlineFaultyStore
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


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, *, what: str = "the condition") -> None:
    """Return as soon as `predicate()` is true; fail the test if it is still false after `timeout` seconds.

    For gauges nothing signals (live actors, mailbox lengths, callers that have been answered): tests wait
    on the state they need, never on a fixed time, so a loaded machine makes them slower, not wrong.
    """
    deadline = anyio.current_time() + timeout
    while not predicate():
        if anyio.current_time() >= deadline:
            raise AssertionError(f"{what} was still false after {timeout} s")
        await anyio.sleep(0.002)


both_persist_paths = pytest.mark.parametrize("inline", [False, True], ids=["task-path", "inline-path"])
"""Run a fault test on both of the runtime's persist paths: `FaultyStore(inner, inline=inline)`."""


def used_persist_path(store: FaultyStore, inline: bool) -> bool:
    """Whether the runtime persisted through the path the test meant to exercise."""
    if inline:
        return isinstance(store, InlineFaultyStore) and store.submitted > 0
    return not isinstance(store, InlineFaultyStore)
