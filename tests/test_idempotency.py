"""Idempotent commands and the causation/correlation chain in event metadata."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from actorsrc import WriteSettings
from examples.bank import ApplyInterest, Credit, Debit, InsufficientFunds, OpenAccount, account
from tests.helpers import bank, replayed_account


async def test_a_repeated_command_id_returns_the_original_outcome_and_writes_nothing(tmp_path: Path) -> None:
    async with bank(tmp_path / "b.db") as (store, runtime):
        ref = runtime.ref(account, "i")
        await ref.ask(OpenAccount("ann"), command_id="open-1")
        first = await ref.ask(Credit(10), command_id="pay-1")
        again = await ref.ask(Credit(10), command_id="pay-1")
        assert (first.duplicate, again.duplicate) == (False, True)
        assert (again.version, again.position, again.events) == (first.version, first.position, first.events)
        assert (await ref.ask(OpenAccount("ann"), command_id="open-1")).duplicate  # would be rejected otherwise
        results = []

        async def send() -> None:
            results.append(await ref.ask(Credit(5), command_id="pay-2"))

        async with anyio.create_task_group() as tg:  # duplicates inside one batch
            for _ in range(20):
                tg.start_soon(send)
        assert sum(not r.duplicate for r in results) == 1
        assert {r.version for r in results} == {3}
        state, versions = await replayed_account(store, "i")
        assert (state.balance, versions) == (15, [1, 2, 3])


async def test_command_ids_are_remembered_across_restarts_and_passivation(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    async with bank(db) as (_, runtime):
        ref = runtime.ref(account, "r")
        await ref.ask(OpenAccount("ann"))
        original = await ref.ask(Credit(7), command_id="c-7")
        for n in range(200):  # push it out of the actor's in-memory window
            await ref.ask(Credit(1), command_id=f"filler-{n}")
    async with bank(db, write=WriteSettings(passivate_after=0.01)) as (store, runtime):
        ref = runtime.ref(account, "r")
        repeat = await ref.ask(Credit(7), command_id="c-7")
        assert repeat.duplicate
        assert (repeat.version, repeat.position, repeat.events) == (
            original.version,
            original.position,
            original.events,
        )
        assert (await ref.ask(Credit(7), command_id="c-7-new")).version == 203
        state, _ = await replayed_account(store, "r")
        assert state.balance == 7 + 200 + 7


async def test_rejected_and_eventless_commands_are_not_remembered(tmp_path: Path) -> None:
    async with bank(tmp_path / "b.db") as (store, runtime):
        ref = runtime.ref(account, "n")
        await ref.ask(OpenAccount("ann"))
        with pytest.raises(InsufficientFunds):
            await ref.ask(Debit(5), command_id="d-1")
        assert (await ref.ask(ApplyInterest(100), command_id="zero")).events == ()  # no interest on 0
        await ref.ask(Credit(1000))
        assert (await ref.ask(Debit(5), command_id="d-1")).version == 3  # a retry after the fix
        assert (await ref.ask(ApplyInterest(100), command_id="zero")).events != ()
        assert await store.find_commands("account-n", ["d-1", "zero", "nope"]) == {"d-1": (3, 3), "zero": (4, 4)}


async def test_causation_and_correlation_flow_into_event_metadata(tmp_path: Path) -> None:
    async with bank(tmp_path / "b.db") as (store, runtime):
        ref = runtime.ref(account, "m")
        await ref.ask(OpenAccount("ann"), command_id="cmd-1")
        await ref.ask(Credit(1), command_id="cmd-2", causation_id="evt-9", correlation_id="conv-1")
        await ref.ask(Credit(1))
        first, second, third = await store.read_stream("account-m")
        assert (first.metadata.command_id, first.metadata.causation_id, first.metadata.correlation_id) == (
            "cmd-1",
            "cmd-1",
            "cmd-1",
        )
        assert (second.metadata.command_id, second.metadata.causation_id, second.metadata.correlation_id) == (
            "cmd-2",
            "evt-9",
            "conv-1",
        )
        assert third.metadata.command_id is None
        assert third.metadata.correlation_id == third.metadata.event_id  # a new conversation starts here
        with pytest.raises(ValueError, match="correlation_id"):
            await ref.ask(Credit(1), correlation_id="")
