"""A command id names one command: reusing it for another command is refused (issue 10, limits).

As with HTTP idempotency keys, a retry (same id, same command) returns the original outcome and
writes nothing; the same id with a different command raises `CommandIdConflictError`. The digest of
the command is kept with its id: in the batch being decided, in the actor's memory, and in the events'
metadata in the store, so the check holds after passivation and in a new runtime.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import anyio
import msgspec
import pytest

from actorsrc import CommandIdConflictError, Runtime, SQLiteEventStore, WriteSettings
from actorsrc.codec import EventCodec
from actorsrc.records import Metadata, NewEvent
from actorsrc.runtime.command_digest import command_digest
from actorsrc.runtime.command_envelope import CommandEnvelope
from actorsrc.runtime.decision import decide_batch
from actorsrc.runtime.registry import AggregateEntry
from examples.bank import AccountOpened, AccountState, Credit, OpenAccount, account
from tests.helpers import bank, replayed_account

CONFLICT = r"^account: command id 'pay-1' was used before for another command, so Credit\(amount=11\) was not carried"


def test_the_digest_is_stable_and_covers_the_class_and_every_value() -> None:
    # Stored with the events: a change of algorithm would turn every later retry into a conflict.
    assert command_digest(Credit(10)) == "1f8bafa1e8b800df158a6f5369760ab0"
    assert command_digest(Credit(10)) != command_digest(Credit(11))

    @dataclass(frozen=True)
    class Deposit:  # the same fields under another name is another command
        amount: int

    assert command_digest(Deposit(10)) != command_digest(Credit(10))

    @dataclass(frozen=True)
    class Tag:
        labels: dict[str, int]
        kinds: frozenset[str]

    # Equal commands, whatever the insertion order of their dicts and sets.
    assert command_digest(Tag({"a": 1, "b": 2}, frozenset("xyz"))) == command_digest(
        Tag({"b": 2, "a": 1}, frozenset("zyx"))
    )
    assert command_digest(object()) is None  # not encodable: its id is not checked


async def test_the_same_id_twice_in_one_batch_with_another_command_is_a_conflict() -> None:
    loop = asyncio.get_running_loop()
    entry = AggregateEntry(account, EventCodec(account.events, account.schema_versions))
    state = AccountState(opened=True, owner="ann")
    first, retry, other = (CommandEnvelope(Credit(n), "pay-1", loop.create_future()) for n in (10, 10, 11))
    decision = decide_batch(entry, state, 1, [first, retry, other], {})
    assert [d.envelope for d in decision.accepted] == [first]
    assert [envelope for envelope, _ in decision.repeats] == [retry]
    [(rejected, error)] = decision.rejected
    assert rejected is other
    assert isinstance(error, CommandIdConflictError)
    assert str(error).startswith("account: command id 'pay-1' was used before for another command")
    assert [e.metadata.command_digest for e in decision.new_events] == [command_digest(Credit(10))]


async def test_the_same_id_with_another_command_is_refused_and_the_retry_still_works(tmp_path: Path) -> None:
    async with bank(tmp_path / "b.db") as (store, runtime):
        ref = runtime.ref(account, "i")
        await ref.ask(OpenAccount("ann"))
        original = await ref.ask(Credit(10), command_id="pay-1")
        with pytest.raises(CommandIdConflictError, match=CONFLICT):  # the outcome the actor holds in memory
            await ref.ask(Credit(11), command_id="pay-1")
        repeat = await ref.ask(Credit(10), command_id="pay-1")
        assert repeat.duplicate
        assert (repeat.version, repeat.position) == (original.version, original.position)
        assert (await ref.ask(Credit(11), command_id="pay-2")).version == 3  # the actor keeps serving
        state, versions = await replayed_account(store, "i")
        assert (state.balance, versions) == (21, [1, 2, 3])
        [_, paid, _] = await store.read_stream("account-i")
        assert paid.metadata.command_digest == command_digest(Credit(10))


async def test_concurrent_senders_of_one_id_get_one_outcome_or_a_conflict(tmp_path: Path) -> None:
    async with bank(tmp_path / "b.db") as (store, runtime):
        ref = runtime.ref(account, "c")
        await ref.ask(OpenAccount("ann"))
        outcomes: list[tuple[int, bool]] = []
        conflicts: list[int] = []

        async def send(amount: int) -> None:
            try:
                outcomes.append((amount, (await ref.ask(Credit(amount), command_id="pay-1")).duplicate))
            except CommandIdConflictError:
                conflicts.append(amount)

        async with anyio.create_task_group() as tg:  # most likely one batch; any batching gives the same answers
            for amount in (5, 6, 5, 6, 5):
                tg.start_soon(send, amount)
        assert sorted(outcomes) == [(5, False), (5, True), (5, True)]
        assert conflicts == [6, 6]
        state, _ = await replayed_account(store, "c")
        assert state.balance == 5


async def test_the_stored_digest_is_compared_in_a_new_runtime_and_after_passivation(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    async with bank(db) as (_, runtime):
        ref = runtime.ref(account, "r")
        await ref.ask(OpenAccount("ann"))
        await ref.ask(Credit(10), command_id="pay-1")
        for n in range(70):  # push it out of the actor's in-memory window: found in the store
            await ref.ask(Credit(1), command_id=f"filler-{n}")
        with pytest.raises(CommandIdConflictError, match=CONFLICT):
            await ref.ask(Credit(11), command_id="pay-1")
    async with bank(db, write=WriteSettings(max_live_actors=1)) as (store, runtime):
        ref = runtime.ref(account, "r")
        with pytest.raises(CommandIdConflictError, match=CONFLICT):  # a new process: only the store knows
            await ref.ask(Credit(11), command_id="pay-1")
        assert (await ref.ask(Credit(10), command_id="pay-1")).duplicate
        await runtime.ref(account, "other").ask(OpenAccount("bob"))  # one live actor at most: "r" makes room
        assert runtime.stats().passivated >= 1
        with pytest.raises(CommandIdConflictError, match=CONFLICT):  # a fresh actor: only the store knows
            await ref.ask(Credit(11), command_id="pay-1")
        assert (await ref.ask(Credit(10), command_id="pay-1")).duplicate
        state, versions = await replayed_account(store, "r")
        assert (state.balance, len(versions)) == (80, 72)


async def test_events_written_before_digests_existed_count_as_the_same_command(tmp_path: Path) -> None:
    async with SQLiteEventStore.open(tmp_path / "b.db") as store:
        opened = msgspec.json.encode(AccountOpened("ann", 0))
        await store.append("account-o", [NewEvent("AccountOpened", opened, Metadata("e1", "open-1"))], 0)
        async with Runtime(store, [account]) as runtime:
            repeat = await runtime.ref(account, "o").ask(OpenAccount("someone else"), command_id="open-1")
            assert repeat.duplicate
            assert repeat.events == (AccountOpened("ann", 0),)
        assert await store.last_position() == 1


async def test_commands_without_an_id_carry_no_digest(tmp_path: Path) -> None:
    async with bank(tmp_path / "b.db") as (store, runtime):
        ref = runtime.ref(account, "n")
        outcome = await ref.ask(OpenAccount("ann"))
        assert outcome.command_digest is None
        [record] = await store.read_stream("account-n")
        assert record.metadata == Metadata(record.metadata.event_id, None, None, record.metadata.event_id)
