"""Regression tests for edge cases found in review: each once lost, doubled or hung something."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from actorsrc import (
    CodecError,
    InvalidStreamIdError,
    NewEvent,
    Runtime,
    RuntimeClosedError,
    SQLiteEventStore,
)
from actorsrc.messages import Metadata
from actorsrc.runtime.supervision import SupervisorPolicy
from actorsrc.testing.faults import FaultyStore
from examples.bank import AccountCredited, AccountState, Credit, OpenAccount, account
from examples.bank.domain import Event
from tests.helpers import bank, replayed_account


async def test_evolve_failure_then_conflict_never_writes_a_command_twice(tmp_path: Path) -> None:
    def fragile_evolve(state: AccountState, event: Event) -> AccountState:
        if isinstance(event, AccountCredited) and event.amount == 13:
            raise RuntimeError("evolve bug")
        return account.evolve(state, event)

    fragile = dataclasses.replace(account, evolve=fragile_evolve)
    db = tmp_path / "b.db"
    async with SQLiteEventStore.open(db) as store, Runtime(store, [fragile]) as first, bank(db) as (_, second):
        await first.ref(fragile, "x").ask(OpenAccount("ann"))
        await second.ref(account, "x").ask(Credit(1))  # `first` now holds a stale version: its next append conflicts
        async with anyio.create_task_group() as tg:
            for amount in (2, 13, 100):
                tg.start_soon(_ask_quietly, first.ref(fragile, "x"), amount)
        state, versions = await replayed_account(store, "x")
        assert (state.balance, versions) == (103, [1, 2, 3, 4])


async def _ask_quietly(ref: Any, amount: int) -> None:
    try:
        await ref.ask(Credit(amount))
    except RuntimeError as exc:
        assert str(exc) == "evolve bug"  # noqa: PT017 - only the 13 may fail, and only this way


async def test_events_whose_fields_do_not_fit_their_types_are_refused_before_writing(tmp_path: Path) -> None:
    async with bank(tmp_path / "b.db") as (store, runtime):
        ref = runtime.ref(account, "c")
        await ref.ask(OpenAccount("ann"))
        with pytest.raises(CodecError, match=r"AccountCredited cannot be stored: Expected `int`, got `float`"):
            await ref.ask(Credit(1.5))  # type: ignore[arg-type]
        with pytest.raises(CodecError, match="AccountCredited cannot be stored"):
            await ref.ask(Credit(float("nan")))  # type: ignore[arg-type]
        assert await store.last_position() == 1
        assert (await ref.ask(Credit(2))).version == 2


async def test_exceptions_from_the_store_block_are_not_wrapped(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        async with SQLiteEventStore.open(tmp_path / "b.db"):
            raise KeyError("mine")


async def test_undecodable_ids_and_metadata_are_refused_and_harm_no_one_else(tmp_path: Path) -> None:
    async with bank(tmp_path / "b.db") as (store, runtime):
        with pytest.raises(InvalidStreamIdError, match="UTF-8"):
            runtime.ref(account, "evil\udc80")
        results = await _gather(store.read_stream("ok"), store.read_stream("evil\udc80"), store.stream_version("ok"))
        assert results[0] == []
        assert isinstance(results[1], InvalidStreamIdError)
        assert results[2] == 0
        with pytest.raises(ValueError, match="after_position"):
            await store.read_all(2**70)
        with pytest.raises(TypeError, match=r"metadata\.event_id"):
            await store.append("s", [NewEvent("T", b"{}", Metadata(123))], 0)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"metadata\.command_id"):
            await store.append("s", [NewEvent("T", b"{}", Metadata("e", command_id="\udc80"))], 0)
        assert await store.last_position() == 0


async def _gather(*calls: Any) -> list[Any]:
    return list(await asyncio.gather(*calls, return_exceptions=True))


async def test_timeouts_while_waiting_for_room_leave_no_unretrieved_errors(tmp_path: Path) -> None:
    problems: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: problems.append(context))
    async with SQLiteEventStore.open(tmp_path / "b.db") as inner:
        store = FaultyStore(inner)
        async with Runtime(store, [account], max_live_actors=1) as runtime:
            await runtime.ref(account, "busy").ask(OpenAccount("x"))
            store.hold_appends()
            async with anyio.create_task_group() as tg:
                tg.start_soon(_ask_ignoring, runtime.ref(account, "busy"), Credit(1), 5)
                await anyio.sleep(0.02)
                for n in range(5):  # wait for room, time out, and are cancelled besides
                    tg.start_soon(_ask_ignoring, runtime.ref(account, f"new-{n}"), OpenAccount("y"), 0.05)
                await anyio.sleep(0.2)
                store.release_appends()
            assert (await runtime.ref(account, "new-0").ask(OpenAccount("y"))).version == 1
    gc.collect()
    await anyio.lowlevel.checkpoint()
    assert problems == []


async def _ask_ignoring(ref: Any, command: object, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await ref.ask(command, timeout=timeout)


async def test_closing_wakes_callers_waiting_for_room(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    async with SQLiteEventStore.open(tmp_path / "b.db") as inner:
        store = FaultyStore(inner)
        runtime = Runtime(store, [account], max_live_actors=1, default_timeout=None)

        async def waiting(n: int) -> None:
            try:
                await runtime.ref(account, f"w{n}").ask(OpenAccount("x"))
            except RuntimeClosedError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg, runtime:
            store.hold_appends()
            tg.start_soon(runtime.ref(account, "busy").ask, OpenAccount("x"))
            await anyio.sleep(0.02)
            for n in range(3):
                tg.start_soon(waiting, n)
            await anyio.sleep(0.02)
            store.release_appends()
        assert len(errors) + (await inner.last_position() - 1) == 3


async def test_cancelling_the_runtime_mid_append_tells_callers_the_truth(tmp_path: Path) -> None:
    outcomes: dict[int, object] = {}
    async with SQLiteEventStore.open(tmp_path / "b.db") as store:
        async with anyio.create_task_group() as tg:

            async def drive() -> None:
                async with Runtime(store, [account]) as runtime:
                    await runtime.ref(account, "a").ask(OpenAccount("x"))

                    async def credit(n: int) -> None:
                        try:
                            outcomes[n] = await runtime.ref(account, "a").ask(Credit(1), command_id=f"c{n}")
                        except RuntimeClosedError as exc:
                            outcomes[n] = exc

                    async with anyio.create_task_group() as callers:
                        for n in range(200):
                            callers.start_soon(credit, n)
                        await anyio.sleep(0.001)
                        tg.cancel_scope.cancel()

            tg.start_soon(drive)
        stored = {r.metadata.command_id for r in await store.read_stream("account-a")}
        for n, outcome in outcomes.items():
            assert (f"c{n}" in stored) == (not isinstance(outcome, BaseException)), n


async def test_commands_after_an_evolve_failure_are_kept_when_the_append_fails(tmp_path: Path) -> None:
    def fragile_evolve(state: AccountState, event: Event) -> AccountState:
        if isinstance(event, AccountCredited) and event.amount == 13:
            raise RuntimeError("evolve bug")
        return account.evolve(state, event)

    fragile = dataclasses.replace(account, evolve=fragile_evolve)
    policy = SupervisorPolicy(min_backoff=0.01, max_backoff=0.02, max_restarts=100)
    outcomes: dict[int, object] = {}
    async with SQLiteEventStore.open(tmp_path / "b.db") as inner:
        store = FaultyStore(inner)
        async with Runtime(store, [fragile], supervisor=policy, default_timeout=None) as runtime:
            ref = runtime.ref(fragile, "x")
            await ref.ask(OpenAccount("ann"))
            store.fail_next_appends(1)
            store.hold_appends()

            async def send(amount: int) -> None:
                try:
                    outcomes[amount] = (await ref.ask(Credit(amount))).version
                except Exception as exc:
                    outcomes[amount] = type(exc).__name__

            with anyio.fail_after(10):  # nobody may hang
                async with anyio.create_task_group() as tg:
                    for amount in (5, 13, 2):
                        tg.start_soon(send, amount)
                        await anyio.sleep(0.01)
                    store.release_appends()
    assert outcomes[5] == "StoreError"  # its append failed
    assert outcomes[13] in ("StoreError", "RuntimeError")
    assert isinstance(outcomes[2], int)  # queued behind the evolve failure: handled after the restart


def test_process_manager_sends_sharing_a_target_stay_in_event_order() -> None:
    from actorsrc.messages import Metadata
    from actorsrc.projection import EventEnvelope, Send
    from actorsrc.runtime.process import _independent_groups

    def envelope(position: int) -> EventEnvelope[object]:
        return EventEnvelope(None, "T", "s", position, position, datetime.now(UTC), Metadata(f"e{position}"))

    a, t, u = (Send(account, "a", Credit(1)), Send(account, "t", Credit(2)), Send(account, "u", Credit(3)))
    planned = {
        "k1": [(a, envelope(1), "c1"), (t, envelope(2), "c2")],
        "k2": [(t, envelope(3), "c3")],
        "k3": [(u, envelope(4), "c4")],
    }
    groups = sorted(_independent_groups(planned), key=len)
    assert [[item[2] for item in group] for group in groups] == [["c4"], ["c1", "c2", "c3"]]
