"""A brand-new instance skips its recovery read when the store says its stream surely does not exist,
and that guess never reaches a caller unproven: a stream another process created is found by the
append's version check, and an answer that writes nothing is given only after a real read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actorsrc import Runtime, SQLiteEventStore
from actorsrc.store.presence import StreamPresence
from examples.bank import AccountState, Credit, OpenAccount, account
from examples.bank.domain import AlreadyOpen
from tests.helpers import wait_until


def test_presence_holds_what_was_added_and_grows_past_its_capacity() -> None:
    presence = StreamPresence()
    presence.ready = True
    added = [f"account-{i}" for i in range(200_000)]  # more than the first layer's capacity
    for stream_id in added:
        presence.add(stream_id)
    assert len(presence.layers) > 1
    assert all(presence.may_hold(stream_id) for stream_id in added)  # never a false "absent"
    others = [f"other-{i}" for i in range(20_000)]
    false_positives = sum(presence.may_hold(stream_id) for stream_id in others)
    assert false_positives < len(others) * 0.02


def test_presence_says_nothing_is_absent_until_ready() -> None:
    presence = StreamPresence()
    assert presence.may_hold("never-added")
    presence.ready = True
    assert not presence.may_hold("never-added")


@pytest.fixture
async def filled(tmp_path: Path) -> AsyncIterator[tuple[SQLiteEventStore, Path]]:
    """A store opened over a file with one existing account, its presence filled."""
    path = tmp_path / "events.db"
    async with SQLiteEventStore.open(path) as first, Runtime(first, [account]) as runtime:
        await runtime.ref(account, "existing").ask(OpenAccount("ann"))
    async with SQLiteEventStore.open(path) as store:
        await wait_until(lambda: store.presence.ready, what="the presence filter to fill")
        yield store, path


async def test_the_filter_knows_stored_and_appended_streams(filled: tuple[SQLiteEventStore, Path]) -> None:
    store, _ = filled
    assert store.may_hold_stream("account-existing")
    assert not store.may_hold_stream("account-new")
    async with Runtime(store, [account]) as runtime:
        await runtime.ref(account, "new").ask(OpenAccount("bob"))
    assert store.may_hold_stream("account-new")


def count_reads(store: SQLiteEventStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    original = store.read_stream_payloads

    async def counted(stream_id: str, *args: Any, **kwargs: Any) -> Any:
        reads.append(stream_id)
        return await original(stream_id, *args, **kwargs)

    monkeypatch.setattr(store, "read_stream_payloads", counted)
    return reads


async def test_a_new_instance_is_not_read_and_an_existing_one_is(
    filled: tuple[SQLiteEventStore, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = filled
    reads = count_reads(store, monkeypatch)
    async with Runtime(store, [account]) as runtime:
        opened = await runtime.ref(account, "new").ask(OpenAccount("bob"))
        assert opened.version == 1
        assert reads == []
        credited = await runtime.ref(account, "existing").ask(Credit(5))
        assert credited.version == 2
        assert reads == ["account-existing"]


async def created_elsewhere(path: Path, aggregate_id: str) -> None:
    """Another process (here: another store object on the file) opens an account the filter never saw."""
    async with SQLiteEventStore.open(path) as other, Runtime(other, [account]) as runtime:
        await runtime.ref(account, aggregate_id).ask(OpenAccount("eve"))


async def test_a_rejection_of_a_guessed_new_instance_is_checked_by_a_read(
    filled: tuple[SQLiteEventStore, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, path = filled
    await created_elsewhere(path, "elsewhere")
    assert not store.may_hold_stream("account-elsewhere")  # stale: the guess will be wrong
    reads = count_reads(store, monkeypatch)
    async with Runtime(store, [account]) as runtime:
        ref = runtime.ref(account, "elsewhere")
        credited = await ref.ask(Credit(7))  # NotOpen on the guessed empty account: not answered, read instead
        assert credited.version == 2
        assert reads == ["account-elsewhere"]
        assert await ref.state() == AccountState(opened=True, owner="eve", balance=7)


async def test_a_stream_created_elsewhere_is_found_by_the_append_check(
    filled: tuple[SQLiteEventStore, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, path = filled
    await created_elsewhere(path, "elsewhere")
    reads = count_reads(store, monkeypatch)
    async with Runtime(store, [account]) as runtime:
        ref = runtime.ref(account, "elsewhere")
        # Against the guessed empty state a second OpenAccount is accepted; the stored account refuses it.
        with pytest.raises(AlreadyOpen):
            await ref.ask(OpenAccount("mallory"))  # written with expected version 0: a conflict, then a read
        assert reads == ["account-elsewhere"]


async def test_a_state_query_of_a_guessed_new_instance_is_read(
    filled: tuple[SQLiteEventStore, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, path = filled
    await created_elsewhere(path, "elsewhere")
    reads = count_reads(store, monkeypatch)
    async with Runtime(store, [account]) as runtime:
        assert await runtime.ref(account, "elsewhere").state() == AccountState(opened=True, owner="eve")
        assert reads == ["account-elsewhere"]
