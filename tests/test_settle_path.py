"""One settle path: the task path and the task-free (inline) path settle a persisted batch the same way.

The same script of outcomes (success, a conflict decided again, a conflict past the retry limit, a
refusal before writing, a failed append, an `evolve` failure) runs on each path; what the callers see,
what is written and what the actor does next must not depend on the path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from actorsrc import Runtime, SQLiteEventStore, StoreLimits, WriteSettings
from actorsrc.errors import StoreUnavailableError
from actorsrc.runtime.store_health import StoreBreakerPolicy
from actorsrc.runtime.supervision import SupervisorPolicy
from actorsrc.testing.faults import FaultyStore
from examples.bank import AccountCredited, AccountState, Credit, OpenAccount, account
from examples.bank.domain import Event
from tests.helpers import both_persist_paths, replayed_account, used_persist_path

FAST = SupervisorPolicy(min_backoff=0.01, max_backoff=0.05, max_restarts=1000, window=1.0, cooldown=0.2)
QUICK_PROBES = StoreBreakerPolicy(min_backoff=0.01, max_backoff=0.05)
SMALL = StoreLimits(max_event_bytes=1024)


def fragile_evolve(state: AccountState, event: Event) -> AccountState:
    if isinstance(event, AccountCredited) and event.amount == 13:
        raise RuntimeError("evolve cannot handle 13")
    return account.evolve(state, event)


fragile = dataclasses.replace(account, evolve=fragile_evolve)


async def outcome_of(ref: Any, command: object) -> tuple[str, int | None]:
    """What the caller saw: ("ok", version) or (the error's type, None). Waits out a store refusal."""
    with anyio.fail_after(10):
        while True:
            try:
                outcome = await ref.ask(command, timeout=10)
            except StoreUnavailableError:
                await anyio.sleep(0.005)
            except Exception as exc:
                return type(exc).__name__, None
            else:
                return "ok", outcome.version


async def script(tmp_path: Path, inline: bool, *, max_conflict_retries: int) -> list[tuple[str, int | None]]:
    db = tmp_path / "b.db"
    seen: list[tuple[str, int | None]] = []
    async with (
        SQLiteEventStore.open(db, limits=SMALL) as inner,
        SQLiteEventStore.open(db) as other_store,
    ):
        store = FaultyStore(inner, inline=inline)
        runtime = Runtime(
            store,
            [fragile],
            supervisor=FAST,
            store_breaker=QUICK_PROBES,
            write=WriteSettings(max_conflict_retries=max_conflict_retries),
        )
        async with runtime, Runtime(other_store, [fragile]) as other:
            ann = runtime.ref(fragile, "ann")
            seen.append(await outcome_of(ann, OpenAccount("x" * 2000)))  # refused before writing
            seen.append(await outcome_of(ann, OpenAccount("ann")))  # success
            seen.append(await outcome_of(ann, Credit(5)))
            seen.append(await outcome_of(other.ref(fragile, "ann"), Credit(100)))  # ann's actor is now stale
            seen.append(await outcome_of(ann, Credit(7)))  # conflict: decided again, or past the limit
            seen.append(await outcome_of(ann, Credit(1)))  # reloaded either way
            seen.append(await outcome_of(ann, Credit(2)))
            store.fail_next_appends(1)
            seen.append(await outcome_of(ann, Credit(3)))  # a failed append: the actor reloads
            seen.append(await outcome_of(ann, Credit(4)))
            seen.append(await outcome_of(ann, Credit(13)))  # `evolve` raises: a crash and a restart
            seen.append(await outcome_of(ann, Credit(6)))
            assert runtime.stats().failed_actors == 0
            assert runtime.store_status().available
        assert used_persist_path(store, inline)
        state, versions = await replayed_account(inner, "ann")
        seen.append(("balance", state.balance))
        seen.append(("versions", len(versions)))
    return seen


@both_persist_paths
async def test_a_conflict_within_the_retry_limit_is_decided_again(tmp_path: Path, inline: bool) -> None:
    assert await script(tmp_path, inline, max_conflict_retries=3) == [
        ("LimitExceededError", None),
        ("ok", 1),
        ("ok", 2),
        ("ok", 3),
        ("ok", 4),  # decided again on version 3
        ("ok", 5),
        ("ok", 6),
        ("StoreError", None),
        ("ok", 7),
        ("RuntimeError", None),
        ("ok", 8),
        ("balance", 5 + 100 + 7 + 1 + 2 + 4 + 6),
        ("versions", 8),
    ]


@both_persist_paths
async def test_a_conflict_past_the_retry_limit_reaches_the_caller(tmp_path: Path, inline: bool) -> None:
    assert await script(tmp_path, inline, max_conflict_retries=0) == [
        ("LimitExceededError", None),
        ("ok", 1),
        ("ok", 2),
        ("ok", 3),
        ("ConcurrencyError", None),  # nothing written
        ("ok", 4),
        ("ok", 5),
        ("StoreError", None),
        ("ok", 6),
        ("RuntimeError", None),
        ("ok", 7),
        ("balance", 5 + 100 + 1 + 2 + 4 + 6),
        ("versions", 7),
    ]


@both_persist_paths
async def test_only_a_store_failure_is_logged_as_one(
    tmp_path: Path, inline: bool, captured_logs: list[MutableMapping[str, Any]]
) -> None:
    await script(tmp_path, inline, max_conflict_retries=3)
    events = [log["event"] for log in captured_logs if log["event"].startswith(("actor.", "store."))]
    assert events.count("actor.conflict") == 1
    assert events.count("store.unavailable") == 1  # the failed append; the refusal says nothing of the store
    assert events.count("store.recovered") == 1
    crashes = [log for log in captured_logs if log["event"] == "actor.crashed"]
    assert [log["reason"] for log in crashes] == ["evolve raised"]


def test_the_scripts_cover_each_outcome() -> None:
    # Keep the script honest if the bank example changes: 13 is the amount `evolve` cannot take.
    with pytest.raises(RuntimeError):
        fragile_evolve(account.initial, AccountCredited(13))
