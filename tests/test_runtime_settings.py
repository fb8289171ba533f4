"""The runtime's settings as grouped values: their defaults, the errors a wrong value gets, and each group
reaching the part of the runtime that uses it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import anyio
import pytest

from actorsrc import (
    App,
    AskTimeoutError,
    ConfigurationError,
    MailboxFullError,
    ReadSettings,
    Runtime,
    SQLiteEventStore,
    StoreBreakerPolicy,
    SupervisorPolicy,
    WriteSettings,
)
from actorsrc.records import Metadata, NewEvent, next_event_id
from actorsrc.recovery import codec_for
from actorsrc.testing.faults import FaultyStore
from examples.bank import AccountCredited, Credit, OpenAccount, account
from tests.helpers import bank, replayed_account, wait_until
from tests.read_side_fixtures import balances, read_balances, read_side


def test_defaults_are_todays_values() -> None:
    assert WriteSettings() == WriteSettings(
        mailbox_capacity=1024,
        max_batch=256,
        max_conflict_retries=3,
        default_timeout=30.0,
        persist_timeout=10.0,
        passivate_after=300.0,
        max_live_actors=100_000,
    )
    assert ReadSettings() == ReadSettings(poll_interval=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        WriteSettings().max_batch = 1  # type: ignore[misc]


def test_none_turns_off_the_optional_limits() -> None:
    unlimited = WriteSettings(default_timeout=None, passivate_after=None, max_live_actors=None)
    assert (unlimited.default_timeout, unlimited.passivate_after, unlimited.max_live_actors) == (None, None, None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mailbox_capacity": 0}, "WriteSettings.mailbox_capacity must be an int >= 1, got 0"),
        ({"max_batch": -1}, "WriteSettings.max_batch must be an int >= 1, got -1"),
        ({"max_batch": 2.5}, "WriteSettings.max_batch must be an int >= 1, got 2.5"),
        ({"max_conflict_retries": -1}, "WriteSettings.max_conflict_retries must be an int >= 0, got -1"),
        ({"max_conflict_retries": True}, "WriteSettings.max_conflict_retries must be an int >= 0, got True"),
        ({"default_timeout": 0}, "WriteSettings.default_timeout must be a number of seconds > 0 or None, got 0"),
        ({"persist_timeout": None}, "WriteSettings.persist_timeout must be a number of seconds > 0, got None"),
        ({"persist_timeout": "10"}, "WriteSettings.persist_timeout must be a number of seconds > 0, got '10'"),
        ({"passivate_after": -5.0}, "WriteSettings.passivate_after must be a number of seconds > 0 or None, got -5.0"),
        ({"max_live_actors": 0}, "WriteSettings.max_live_actors must be an int >= 1 or None, got 0"),
    ],
)
def test_a_wrong_write_setting_is_named(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        WriteSettings(**options)
    assert str(caught.value) == message


@pytest.mark.parametrize("interval", [0, -1.0, float("nan"), None, "1"])
def test_a_wrong_poll_interval_is_named(interval: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"ReadSettings\.poll_interval must be a number of seconds > 0"):
        ReadSettings(poll_interval=interval)


@pytest.mark.parametrize(
    ("parameter", "value", "message"),
    [
        ("write", 5, "Runtime's write= must be a WriteSettings, got int 5"),
        ("write", {"max_batch": 1}, "Runtime's write= must be a WriteSettings, got dict"),
        ("read", WriteSettings(), "Runtime's read= must be a ReadSettings, got WriteSettings"),
        ("supervisor", None, "Runtime's supervisor= must be a SupervisorPolicy, got NoneType None"),
        ("store_breaker", SupervisorPolicy(), "Runtime's store_breaker= must be a StoreBreakerPolicy"),
    ],
)
async def test_a_value_of_the_wrong_type_names_its_parameter(
    tmp_path: Path, parameter: str, value: Any, message: str
) -> None:
    async with SQLiteEventStore.open(tmp_path / "b.db") as store:
        with pytest.raises(ConfigurationError) as caught:
            Runtime(store, [account], **{parameter: value})
        assert str(caught.value).startswith(message)


async def test_write_settings_reach_the_actors_and_the_sender(tmp_path: Path) -> None:
    write = WriteSettings(mailbox_capacity=2, max_batch=1, max_conflict_retries=7, persist_timeout=20.0)
    async with bank(tmp_path / "b.db", write=write) as (_, runtime):
        assert (runtime.mailbox_capacity, runtime.max_batch) == (2, 1)
        assert (runtime.max_conflict_retries, runtime.persist_timeout, runtime.default_timeout) == (7, 20.0, 30.0)


async def test_a_small_mailbox_makes_ask_fail_fast(tmp_path: Path) -> None:
    async with SQLiteEventStore.open(tmp_path / "b.db") as inner:
        store = FaultyStore(inner)
        async with Runtime(store, [account], write=WriteSettings(mailbox_capacity=2, max_batch=1)) as runtime:
            ref = runtime.ref(account, "small")
            await ref.ask(OpenAccount("ann"))
            store.hold_appends()
            async with anyio.create_task_group() as tg:
                for _ in range(3):  # one being persisted, two queued: the mailbox is full
                    tg.start_soon(ref.ask, Credit(1))
                await store.held()
                await wait_until(lambda: runtime.mailbox_length(account, "small") == 2, what="a full mailbox")
                with pytest.raises(MailboxFullError, match="account-small"):
                    await ref.ask(Credit(1), wait_for_space=False)
                store.release_appends()
        state, _ = await replayed_account(inner, "small")
        assert state.balance == 3  # the callers that waited for room were served once it freed up


async def test_default_timeout_bounds_an_ask_without_its_own(tmp_path: Path) -> None:
    async with SQLiteEventStore.open(tmp_path / "b.db") as inner:
        store = FaultyStore(inner)
        async with Runtime(store, [account], write=WriteSettings(default_timeout=0.2)) as runtime:
            ref = runtime.ref(account, "slow")
            await ref.ask(OpenAccount("ann"))
            store.hold_appends()
            with pytest.raises(AskTimeoutError):
                await ref.ask(Credit(1))  # the append is held: only the runtime's default timeout ends the wait
            store.release_appends()


async def test_the_live_actor_cap_evicts_idle_actors(tmp_path: Path) -> None:
    async with bank(tmp_path / "b.db", write=WriteSettings(max_live_actors=1, passivate_after=None)) as (_, runtime):
        for name in ("a", "b", "c"):
            await runtime.ref(account, name).ask(OpenAccount(name))
            assert runtime.live_actors == 1
        assert runtime.stats().passivated == 2


async def test_supervision_values_reach_the_actors_host(tmp_path: Path) -> None:
    supervisor = SupervisorPolicy(max_restarts=1, window=5.0)
    store_breaker = StoreBreakerPolicy(min_backoff=0.5, max_backoff=1.0)
    async with bank(tmp_path / "b.db", supervisor=supervisor, store_breaker=store_breaker) as (_, runtime):
        assert runtime.supervisor is supervisor
        assert runtime.store_health.policy is store_breaker


async def test_read_settings_reach_the_handlers(tmp_path: Path) -> None:
    """Appends by another process reach a handler by polling, every `read.poll_interval` seconds."""
    async with read_side(tmp_path, balances, read=ReadSettings(poll_interval=0.05)) as (_, read_model, runtime):
        assert runtime._read_side.subscription(balances).poll_interval == 0.05  # the only place it is used
        async with bank(tmp_path / "events.db") as (_, other):  # another writer on the same file
            await other.ref(account, "x").ask(OpenAccount("xu"))
            written = await other.ref(account, "x").ask(Credit(4))
        await runtime.wait_for(balances, written.position, timeout=10)
        assert await read_balances(read_model) == {"account-x": 4}


async def test_an_app_hands_its_settings_to_the_runtime(tmp_path: Path) -> None:
    supervisor = SupervisorPolicy(max_restarts=2)
    app = App(
        aggregates=[account],
        db=str(tmp_path / "app.db"),
        write=WriteSettings(max_batch=3),
        read=ReadSettings(poll_interval=0.5),
        supervisor=supervisor,
    )
    async with app.run() as runtime:
        assert (runtime.max_batch, runtime.supervisor) == (3, supervisor)
        await runtime.ref(account, "a").ask(OpenAccount("ann"))


@pytest.mark.parametrize(
    ("name", "bad"),
    [("max_batch", 0), ("max_conflict_retries", -1), ("persist_timeout", 0), ("mailbox_capacity", 0)],
)
async def test_settings_changed_on_a_running_runtime_are_checked_too(tmp_path: Path, name: str, bad: object) -> None:
    async with bank(tmp_path / "bank.db") as (_, runtime):
        before = getattr(runtime, name)
        with pytest.raises(ConfigurationError, match=name):
            setattr(runtime, name, bad)  # max_batch=0 would spin an actor forever without awaiting
        assert getattr(runtime, name) == before


async def test_a_batch_out_of_conflict_attempts_is_requeued_not_dropped(tmp_path: Path) -> None:
    """The retry limit raised while a batch's append is in flight: the batch's attempts were counted with
    the old limit, so it goes back to the mailbox and is served, rather than left unanswered."""
    async with SQLiteEventStore.open(tmp_path / "events.db") as inner:
        store = FaultyStore(inner)  # the task path
        async with Runtime(store, [account], write=WriteSettings(max_conflict_retries=0)) as runtime:
            ref = runtime.ref(account, "a")
            await ref.ask(OpenAccount("ann"), timeout=10)
            store.hold_appends()
            async with anyio.create_task_group() as tg:
                outcomes: list[Any] = []
                answered = anyio.Event()

                async def credit() -> None:
                    outcomes.append(await ref.ask(Credit(1), timeout=30))
                    answered.set()

                tg.start_soon(credit)
                await store.held()
                # Another writer moves the stream on, so the held append will conflict ...
                await inner.append(account.stream_id("a"), [_credit_event(5)], 1)
                runtime.max_conflict_retries = 3  # ... and now a conflict may be retried
                store.release_appends()
                with anyio.fail_after(10):  # before the fix the batch was dropped: this waited 30 s
                    await answered.wait()
            assert outcomes[0].version == 3


def _credit_event(amount: int) -> Any:
    name, version, data = codec_for(account).encode(AccountCredited(amount))
    return NewEvent(name, data, Metadata(next_event_id()), version)
