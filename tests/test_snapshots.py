"""Snapshots: recovery from snapshot + tail equals a full replay; stale or broken ones are skipped."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import tempfile
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from actorsrc import Aggregate, DomainError, Runtime, SQLiteEventStore, load_state
from actorsrc.records import Snapshot
from actorsrc.store.base import SnapshotStore
from examples.bank import AccountState, ApplyInterest, Credit, Debit, OpenAccount, account
from examples.bank.domain import Command, Event

BankAggregate = Aggregate[AccountState, Command, Event]


def _bank(**snapshot_options: Any) -> BankAggregate:
    return dataclasses.replace(account, **snapshot_options)


commands = st.lists(
    st.one_of(
        st.builds(Credit, st.integers(1, 500)),
        st.builds(Debit, st.integers(1, 500)),
        st.builds(ApplyInterest, st.integers(1, 300)),
    ),
    max_size=60,
)


@settings(max_examples=30, deadline=None)
@given(commands=commands, every=st.integers(1, 12))
async def test_snapshot_plus_tail_equals_full_replay(commands: list[Command], every: int) -> None:
    aggregate = _bank(snapshot_every=every)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "s.db"
        async with SQLiteEventStore.open(db) as store:
            async with Runtime(store, [aggregate]) as runtime:
                ref = runtime.ref(aggregate, "a")
                await ref.ask(OpenAccount("ann", overdraft_limit=200))
                for command in commands:
                    with contextlib.suppress(DomainError):
                        await ref.ask(command)
                live_state = await ref.state()
            full = await load_state(store, aggregate, "a", use_snapshot=False)
            from_snapshot = await load_state(store, aggregate, "a")
            assert from_snapshot.state == full.state == live_state
            assert (from_snapshot.version, from_snapshot.position) == (full.version, full.position)
            if full.version >= every:
                assert from_snapshot.snapshot_version >= every
                assert from_snapshot.events_replayed < every
            async with Runtime(store, [aggregate]) as runtime:
                assert await runtime.ref(aggregate, "a").state() == full.state


async def _drive(db: Path, aggregate: BankAggregate, credits: int) -> None:
    async with SQLiteEventStore.open(db) as store, Runtime(store, [aggregate]) as runtime:
        ref = runtime.ref(aggregate, "a")
        await ref.ask(OpenAccount("ann"))
        for amount in range(1, credits + 1):
            await ref.ask(Credit(amount))


async def test_stale_snapshot_schema_is_ignored_with_a_log_line(
    tmp_path: Path, captured_logs: list[MutableMapping[str, Any]]
) -> None:
    db = tmp_path / "s.db"
    await _drive(db, _bank(snapshot_every=5), credits=19)  # snapshots at versions 5, 10, 15, 20
    newer = _bank(snapshot_every=5, snapshot_schema_version=2)
    async with SQLiteEventStore.open(db) as store:
        loaded = await load_state(store, newer, "a")
        assert (loaded.snapshot_version, loaded.events_replayed) == (0, 20)
        assert loaded.state.balance == sum(range(1, 20))
        async with Runtime(store, [newer]) as runtime:
            assert (await runtime.ref(newer, "a").state()).balance == sum(range(1, 20))
    ignored = [e for e in captured_logs if e["event"] == "snapshot.ignored"]
    assert ignored
    assert "schema version 1, current 2" in ignored[0]["reason"]


async def test_undecodable_snapshot_is_ignored_not_fatal(
    tmp_path: Path, captured_logs: list[MutableMapping[str, Any]]
) -> None:
    db = tmp_path / "s.db"
    aggregate = _bank(snapshot_every=3)
    await _drive(db, aggregate, credits=8)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE snapshots SET data = x'7b22626f67757322'")  # '{"bogus"': not a state
    conn.close()
    async with SQLiteEventStore.open(db) as store:
        loaded = await load_state(store, aggregate, "a")
        assert loaded.snapshot_version == 0
        assert loaded.state.balance == sum(range(1, 9))
    assert any(e["event"] == "snapshot.ignored" and e["log_level"] == "warning" for e in captured_logs)


async def test_old_snapshots_are_pruned_to_keep(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    await _drive(db, _bank(snapshot_every=2, snapshot_keep=3), credits=15)
    conn = sqlite3.connect(db)
    versions = [row[0] for row in conn.execute("SELECT version FROM snapshots ORDER BY version")]
    conn.close()
    assert versions == [12, 14, 16]


async def test_snapshot_predicate(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    rich = _bank(snapshot_when=lambda state, version: state.balance >= 50)
    await _drive(db, rich, credits=12)  # balance passes 50 at the 10th credit (55)
    async with SQLiteEventStore.open(db) as store:
        snapshot = await store.load_snapshot(rich.stream_id("a"))
        assert snapshot is not None
        assert snapshot.version == 13
        loaded = await load_state(store, rich, "a")
        assert (loaded.snapshot_version, loaded.events_replayed, loaded.state.balance) == (13, 0, 78)


class _SlowSnapshots:
    """Snapshot saves hang until released; everything else goes straight to the store."""

    def __init__(self, inner: SQLiteEventStore) -> None:
        self.inner = inner
        self.release = anyio.Event()
        self.saved: list[int] = []
        self.append = inner.append
        self.read_stream = inner.read_stream
        self.read_all = inner.read_all
        self.stream_version = inner.stream_version
        self.find_commands = inner.find_commands
        self.last_position = inner.last_position
        self.load_snapshot = inner.load_snapshot

    async def save_snapshot(self, snapshot: Snapshot, *, keep: int = 2) -> None:
        await self.release.wait()
        await self.inner.save_snapshot(snapshot, keep=keep)
        self.saved.append(snapshot.version)


async def test_taking_a_snapshot_never_delays_a_reply(tmp_path: Path) -> None:
    aggregate = _bank(snapshot_every=1)
    async with SQLiteEventStore.open(tmp_path / "s.db") as inner:
        store = _SlowSnapshots(inner)
        assert isinstance(store, SnapshotStore)
        async with Runtime(store, [aggregate]) as runtime:
            ref = runtime.ref(aggregate, "a")
            with anyio.fail_after(5):
                await ref.ask(OpenAccount("ann"))
                for _ in range(5):
                    await ref.ask(Credit(1))  # each would wait forever if snapshots blocked replies
            assert store.saved == []
            store.release.set()
        assert sorted(store.saved) == [1, 2, 3, 4, 5, 6]
        assert runtime.stats().snapshots_taken == 6
