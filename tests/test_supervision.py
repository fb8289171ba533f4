"""Supervision: crashed actors restart from the store with backoff; past the limit they fail for a while.

A failing store is not an actor's fault: it costs no restart (see tests/test_store_outage.py for the breaker).
"""

from __future__ import annotations

import dataclasses
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from actorsrc import (
    AggregateFailedError,
    AskTimeoutError,
    ConfigurationError,
    RecoveryError,
    Runtime,
    SQLiteEventStore,
    StoreError,
    WriteSettings,
)
from actorsrc.backoff import exponential_backoff
from actorsrc.errors import PersistTimeoutError, StoreUnavailableError
from actorsrc.runtime.store_health import StoreBreakerPolicy
from actorsrc.runtime.supervision import RestartTracker, SupervisorPolicy
from actorsrc.testing.faults import FaultyStore
from examples.bank import AccountCredited, AccountState, Credit, OpenAccount, account
from examples.bank.domain import Event
from tests.helpers import replayed_account

FAST = SupervisorPolicy(min_backoff=0.01, max_backoff=0.05, max_restarts=1000, window=1.0, cooldown=0.2)
QUICK_PROBES = StoreBreakerPolicy(min_backoff=0.01, max_backoff=0.05)


def fragile_account(bad_amount: int = 13) -> Any:
    """The bank account with a bug in `evolve`: crediting `bad_amount` raises."""

    def fragile_evolve(state: AccountState, event: Event) -> AccountState:
        if isinstance(event, AccountCredited) and event.amount == bad_amount:
            raise RuntimeError(f"evolve cannot handle {bad_amount}")
        return account.evolve(state, event)

    return dataclasses.replace(account, evolve=fragile_evolve)


async def served(runtime: Runtime, ref: Any, command: object) -> Any:
    """Send `command` until the store breaker lets it through (bounded by the caller)."""
    while True:
        try:
            return await ref.ask(command, timeout=5)
        except StoreUnavailableError:
            await anyio.sleep(max(0.005, runtime.store_status().next_probe_in))


async def test_intermittent_append_failures_lose_nothing_acknowledged(tmp_path: Path) -> None:
    acknowledged: dict[str, int] = {}
    errors = 0
    async with SQLiteEventStore.open(tmp_path / "b.db") as inner:
        store = FaultyStore(inner, seed=7)
        async with Runtime(store, [account], supervisor=FAST, store_breaker=QUICK_PROBES) as runtime:
            for n in range(10):
                await runtime.ref(account, f"a{n}").ask(OpenAccount("x"))
                acknowledged[f"a{n}"] = 0
            store.fail_at_random(0.3)

            async def credit(account_id: str, amount: int) -> None:
                nonlocal errors
                try:
                    await runtime.ref(account, account_id).ask(Credit(amount))
                except StoreError:
                    errors += 1
                else:
                    acknowledged[account_id] += amount

            async with anyio.create_task_group() as tg:
                for i in range(400):
                    tg.start_soon(credit, f"a{i % 10}", i + 1)
            store.fail_at_random(0.0)
            assert errors > 0
            assert store.failures_injected > 0
            with anyio.fail_after(5):
                for n in range(10):  # later commands succeed on every instance, once the breaker lets them
                    await served(runtime, runtime.ref(account, f"a{n}"), Credit(1))
                    acknowledged[f"a{n}"] += 1
            assert runtime.stats().failed_actors == 0
        for account_id, balance in acknowledged.items():
            state, versions = await replayed_account(inner, account_id)
            assert state.balance == balance
            assert versions == list(range(1, len(versions) + 1))


@pytest.mark.parametrize("inline", [False, True], ids=["task path", "task-free path"])
async def test_a_hanging_store_times_out_and_the_actor_recovers(
    tmp_path: Path, inline: bool, captured_logs: list[MutableMapping[str, Any]]
) -> None:
    async with SQLiteEventStore.open(tmp_path / "b.db") as inner:
        store = FaultyStore(inner, inline=inline)
        async with Runtime(
            store, [account], write=WriteSettings(persist_timeout=0.1), supervisor=FAST, store_breaker=QUICK_PROBES
        ) as runtime:
            ref = runtime.ref(account, "h")
            await ref.ask(OpenAccount("x"))
            store.hold_appends()
            with pytest.raises(PersistTimeoutError, match=r"did not complete within 0\.1 s"):
                await ref.ask(Credit(5), timeout=5)
            with pytest.raises(AskTimeoutError):
                await ref.ask(Credit(6), timeout=0.05)  # the probe: it too waits on the hung store
            store.release_appends()
            with anyio.fail_after(5):
                assert (await served(runtime, ref, Credit(7))).version >= 2
            assert runtime.stats().store_available
            state = await ref.state()
        replayed, _ = await replayed_account(inner, "h")
        assert state == replayed
        assert replayed.balance in (7, 12, 13, 18)  # held appends may land later: their outcome was unknown
    # A hung store is the store's failure, not the actor's: no restart is counted, the breaker opens and closes.
    events = [e["event"] for e in captured_logs]
    assert "actor.crashed" not in events
    failed = next(e for e in captured_logs if e["event"] == "actor.store_failed")
    assert (failed["reason"], failed["aggregate_id"]) == ("persist failed", "h")
    assert "PersistTimeoutError" in next(e for e in captured_logs if e["event"] == "store.unavailable")["error"]
    assert "store.recovered" in events


async def test_restart_limit_trips_then_recovers_after_cooldown(
    tmp_path: Path, captured_logs: list[MutableMapping[str, Any]]
) -> None:
    policy = SupervisorPolicy(min_backoff=0.01, max_backoff=0.02, max_restarts=2, window=10.0, cooldown=0.3)
    fragile = fragile_account()
    async with (
        SQLiteEventStore.open(tmp_path / "b.db") as store,
        Runtime(store, [fragile], supervisor=policy) as runtime,
    ):
        ref = runtime.ref(fragile, "f")
        await ref.ask(OpenAccount("x"))
        for _ in range(3):  # a bug in evolve is the aggregate's own failure: it spends the restart budget
            with pytest.raises(RuntimeError, match="cannot handle 13"):
                await ref.ask(Credit(13))
        with pytest.raises(AggregateFailedError, match=r"account 'f' crashed 3 times within 10.0 s"):
            await ref.ask(Credit(1))
        assert runtime.stats().failed_actors == 1
        assert (await runtime.ref(fragile, "other").ask(OpenAccount("y"))).version == 1  # others unaffected
        with pytest.raises(AggregateFailedError):  # a good command now would work, but the cool-down holds
            await ref.ask(Credit(1))
        with anyio.fail_after(5):
            while runtime.stats().failed_actors:  # noqa: ASYNC110 - waiting for the cool-down to pass
                await anyio.sleep(0.01)
        assert (await ref.ask(Credit(9))).version == 2
        assert (await ref.state()).balance == 9
    assert [e["event"] for e in captured_logs if e["event"].startswith("actor.")].count("actor.gave_up") == 1


@pytest.mark.parametrize("inline", [False, True], ids=["task path", "task-free path"])
async def test_store_failures_spend_no_restarts(
    tmp_path: Path, inline: bool, captured_logs: list[MutableMapping[str, Any]]
) -> None:
    policy = SupervisorPolicy(min_backoff=0.01, max_backoff=0.02, max_restarts=2, window=10.0, cooldown=30.0)
    async with SQLiteEventStore.open(tmp_path / "b.db") as inner:
        store = FaultyStore(inner, inline=inline)
        async with Runtime(store, [account], supervisor=policy, store_breaker=QUICK_PROBES) as runtime:
            ref = runtime.ref(account, "f")
            await ref.ask(OpenAccount("x"))
            store.fail_next_appends(1000)
            failures = 0
            with anyio.fail_after(5):
                while store.failures_injected < 10:  # appends that really failed, well past max_restarts
                    with pytest.raises(StoreError, match="injected"):
                        await ref.ask(Credit(1))
                    failures += 1
                    await anyio.sleep(runtime.store_status().next_probe_in)
            assert failures >= 10
            assert runtime.stats().failed_actors == 0
            store.fail_next_appends(0)
            with anyio.fail_after(5):
                assert (await served(runtime, ref, Credit(9))).version == 2
    assert "actor.gave_up" not in [e["event"] for e in captured_logs]


async def test_an_exception_in_evolve_crashes_and_restarts_the_actor(tmp_path: Path) -> None:
    fragile = fragile_account()
    async with SQLiteEventStore.open(tmp_path / "b.db") as store:
        async with Runtime(store, [fragile], supervisor=FAST) as runtime:
            ref = runtime.ref(fragile, "e")
            await ref.ask(OpenAccount("x"))
            async with anyio.create_task_group() as tg:
                for amount in (1, 13, 2, 3):
                    tg.start_soon(_ask_ignoring_errors, ref, amount)
            assert (await ref.state()).balance == 6
        state, versions = await replayed_account(store, "e")
        assert (state.balance, versions) == (6, [1, 2, 3, 4])  # the 13 was never written


async def _ask_ignoring_errors(ref: Any, amount: int) -> None:
    if amount == 13:
        with pytest.raises(RuntimeError, match="cannot handle 13"):
            await ref.ask(Credit(amount))
    else:
        await ref.ask(Credit(amount))


async def test_recovery_failure_reaches_the_caller_and_is_retried(tmp_path: Path) -> None:
    async with SQLiteEventStore.open(tmp_path / "b.db") as inner:
        store = FaultyStore(inner)
        async with Runtime(store, [account], supervisor=FAST) as runtime:
            await runtime.ref(account, "r").ask(OpenAccount("x"))
        original = store.read_stream
        failures = 2

        async def flaky_read(stream_id: str, from_version: int = 1, to_version: int | None = None) -> Any:
            nonlocal failures
            if failures:
                failures -= 1
                raise StoreError("injected read failure")
            return await original(stream_id, from_version, to_version)

        store.read_stream = flaky_read  # type: ignore[method-assign]
        async with Runtime(store, [account], supervisor=FAST) as runtime:
            ref = runtime.ref(account, "r")
            for _ in range(2):
                with pytest.raises(RecoveryError, match="cannot recover 'account-r'"):
                    await ref.ask(Credit(1))
            assert runtime.stats().store_available  # reads failing do not open the breaker
            assert (await ref.ask(Credit(4))).version == 2


def test_backoff_grows_exponentially_with_jitter_and_caps() -> None:
    policy = SupervisorPolicy(min_backoff=0.1, max_backoff=1.0, jitter=0.2)
    for n, base in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)):
        delays = [policy.backoff(n) for _ in range(50)]
        assert all(base <= d <= base * 1.2 for d in delays)
        assert len(set(delays)) > 1
    tracker = RestartTracker()
    limited = SupervisorPolicy(max_restarts=2, window=5.0, cooldown=7.0)
    assert tracker.record_crash(limited, now=100.0)
    assert tracker.record_crash(limited, now=101.0)
    assert not tracker.record_crash(limited, now=102.0)
    assert tracker.is_failed(108.9)
    assert not tracker.is_failed(109.1)
    assert tracker.record_crash(limited, now=120.0)  # the window moved on
    assert exponential_backoff(0.05, 2.0, 0.0, 100_000) == 2.0  # no float overflow after very many attempts


@pytest.mark.parametrize(
    "options",
    [{"min_backoff": 0}, {"min_backoff": 2, "max_backoff": 1}, {"jitter": -1}, {"max_restarts": -1}, {"window": 0}],
)
def test_bad_policies_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        SupervisorPolicy(**options)  # type: ignore[arg-type]
