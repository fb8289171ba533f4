"""Regression tests for edge cases found in review: each once lost, doubled or hung something."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from actorsrc import (
    AskTimeoutError,
    CodecError,
    CommandOutcome,
    InvalidStreamIdError,
    NewEvent,
    PersistTimeoutError,
    Runtime,
    RuntimeClosedError,
    SQLiteEventStore,
    WriteSettings,
)
from actorsrc.records import Metadata
from actorsrc.runtime.supervision import SupervisorPolicy
from actorsrc.testing.faults import FaultyStore
from examples.bank import AccountCredited, AccountState, Credit, OpenAccount, account
from examples.bank.domain import Event
from tests.helpers import bank, both_persist_paths, replayed_account, used_persist_path, wait_until


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
        with pytest.raises(CodecError, match=r"AccountCredited\b.*Expected `int`, got `float`"):
            await ref.ask(Credit(1.5))  # type: ignore[arg-type]
        with pytest.raises(CodecError, match=r"AccountCredited( cannot be stored|\.amount is nan)"):
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
    timed_out: list[int] = []
    async with SQLiteEventStore.open(tmp_path / "b.db") as inner:
        store = FaultyStore(inner)
        async with Runtime(store, [account], write=WriteSettings(max_live_actors=1)) as runtime:
            await runtime.ref(account, "busy").ask(OpenAccount("x"))
            store.hold_appends()

            async def ask_for_room(n: int) -> None:
                with pytest.raises(AskTimeoutError):
                    await runtime.ref(account, f"new-{n}").ask(OpenAccount("y"), timeout=0.05)
                timed_out.append(n)

            async with anyio.create_task_group() as tg:
                tg.start_soon(_ask_ignoring, runtime.ref(account, "busy"), Credit(1), 10)
                await store.held()  # the only live actor is busy
                for n in range(5):  # wait for room, time out, and have their waits cancelled
                    tg.start_soon(ask_for_room, n)
                await wait_until(lambda: len(timed_out) == 5, what="every caller waiting for room timed out")
                assert runtime.live_actors == 1
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
    started = 0
    async with SQLiteEventStore.open(tmp_path / "b.db") as inner:
        store = FaultyStore(inner)
        runtime = Runtime(store, [account], write=WriteSettings(max_live_actors=1, default_timeout=None))

        async def waiting(n: int) -> None:
            nonlocal started
            started += 1  # the caller waits for room before this task next yields
            try:
                await runtime.ref(account, f"w{n}").ask(OpenAccount("x"))
            except RuntimeClosedError as exc:
                errors.append(exc)

        async def release_once_every_waiter_was_told() -> None:
            try:
                await wait_until(lambda: len(errors) == 3, what="closing told every waiting caller")
            finally:
                store.release_appends()  # closing drains the busy actor: it needs its append back

        async with anyio.create_task_group() as tg, runtime:  # the runtime closes first, the callers after
            store.hold_appends()
            tg.start_soon(runtime.ref(account, "busy").ask, OpenAccount("x"))
            await store.held()  # the only live actor is busy: nobody else gets room
            for n in range(3):
                tg.start_soon(waiting, n)
            await wait_until(lambda: started == 3, what="three callers waiting for room")
            assert runtime.live_actors == 1
            tg.start_soon(release_once_every_waiter_was_told)  # closing starts while the append is held
        assert len(errors) == 3
        assert all("closed" in str(error) for error in errors)
        assert await inner.last_position() == 1  # only the busy actor's command was written


@both_persist_paths
@pytest.mark.parametrize("ending", ["released", "expired"])
async def test_cancelling_the_runtime_mid_append_tells_callers_the_truth(
    tmp_path: Path, inline: bool, ending: str
) -> None:
    """Cancelled while one batch is being appended and more commands are queued: each caller is told what
    happened to its command. `released`: the append completes after the cancellation; `expired`: it hangs
    past `persist_timeout`, and its callers learn that its outcome is unknown."""
    outcomes: dict[int, object] = {}
    sent = 0
    async with SQLiteEventStore.open(tmp_path / "b.db") as inner:
        store = FaultyStore(inner, inline=inline)
        runtime = Runtime(store, [account], write=WriteSettings(persist_timeout=30))
        running = anyio.Event()
        cancelled = anyio.CancelScope()

        async def run_runtime() -> None:
            with cancelled:
                async with runtime:
                    running.set()
                    await anyio.sleep_forever()

        async def credit(n: int) -> None:  # outside the cancelled scope: a caller is not cancelled
            nonlocal sent
            sent += 1  # the command is in the mailbox before this task next yields
            try:
                outcomes[n] = await runtime.ref(account, "a").ask(Credit(n + 1))
            except (RuntimeClosedError, PersistTimeoutError) as exc:
                outcomes[n] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_runtime)
            await running.wait()
            await runtime.ref(account, "a").ask(OpenAccount("x"))
            if ending == "expired":
                runtime.persist_timeout = 0.3  # for the held append only: a real one may be slow on a loaded machine
            store.hold_appends()
            try:
                for n in range(20):
                    tg.start_soon(credit, n)
                await store.held()  # a batch is being appended
                for n in range(20, 200):
                    tg.start_soon(credit, n)
                await wait_until(lambda: sent == 200, what="every command sent")
                queued = runtime.mailbox_length(account, "a")
                in_flight = 200 - queued
                assert in_flight >= 1
                assert queued >= 1
                cancelled.cancel()
                await wait_until(lambda: len(outcomes) >= queued, what="queued callers refused")
                if ending == "released":
                    assert [type(o) for o in outcomes.values()] == [RuntimeClosedError] * queued
                    assert store.held_appends == 1  # the batch is still in flight
            finally:
                if ending == "released":
                    store.release_appends()

        assert used_persist_path(store, inline)
        assert len(outcomes) == 200  # every caller learned how its command ended
        stored = {json.loads(r.data)["amount"]: r.version for r in await inner.read_stream("account-a", 2)}
        kinds: dict[str, int] = {}
        for n, outcome in outcomes.items():
            kinds[type(outcome).__name__] = kinds.get(type(outcome).__name__, 0) + 1
            if isinstance(outcome, CommandOutcome):
                assert stored.get(n + 1) == outcome.version, n  # acknowledged: stored, at that version
            elif isinstance(outcome, RuntimeClosedError):
                assert n + 1 not in stored, n  # refused: not stored
            else:
                assert isinstance(outcome, PersistTimeoutError), n  # outcome unknown, and said so
        acknowledged = kinds.get("CommandOutcome", 0)
        assert len(stored) == acknowledged  # nothing was stored that no caller heard of
        expected = {"RuntimeClosedError": queued}
        expected["CommandOutcome" if ending == "released" else "PersistTimeoutError"] = in_flight
        assert kinds == expected


@both_persist_paths
async def test_commands_after_an_evolve_failure_are_kept_when_the_append_fails(tmp_path: Path, inline: bool) -> None:
    def fragile_evolve(state: AccountState, event: Event) -> AccountState:
        if isinstance(event, AccountCredited) and event.amount == 13:
            raise RuntimeError("evolve bug")
        return account.evolve(state, event)

    fragile = dataclasses.replace(account, evolve=fragile_evolve)
    policy = SupervisorPolicy(min_backoff=0.01, max_backoff=0.02, max_restarts=100)
    outcomes: dict[int, object] = {}
    async with SQLiteEventStore.open(tmp_path / "b.db") as inner:
        store = FaultyStore(inner, inline=inline)
        async with Runtime(store, [fragile], supervisor=policy, write=WriteSettings(default_timeout=None)) as runtime:
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
                    tg.start_soon(send, 5)
                    await store.held()  # 5 is being appended (and will fail) while 13, then 2, queue behind it
                    tg.start_soon(send, 13)
                    await wait_until(lambda: runtime.mailbox_length(fragile, "x") == 1, what="13 queued")
                    tg.start_soon(send, 2)
                    await wait_until(lambda: runtime.mailbox_length(fragile, "x") == 2, what="2 queued behind it")
                    store.release_appends()
        assert used_persist_path(store, inline)
    assert outcomes[5] == "StoreError"  # its append failed
    assert outcomes[13] in ("StoreError", "RuntimeError")
    assert isinstance(outcomes[2], int)  # queued behind the evolve failure: handled after the restart


def test_process_manager_sends_sharing_a_target_stay_in_event_order() -> None:
    from actorsrc.projection import EventEnvelope, Send
    from actorsrc.records import Metadata
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
