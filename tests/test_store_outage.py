"""A store outage is not the actors' fault: one shared breaker refuses commands while the store fails,
probes it with backoff, and lets every actor serve again once a probe's append succeeds."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from actorsrc import (
    AggregateFailedError,
    ConfigurationError,
    EventDecodeError,
    RecoveryError,
    Runtime,
    SQLiteEventStore,
    StoreError,
    WriteSettings,
)
from actorsrc.errors import (
    ForeignDatabaseError,
    OutcomeUnknownError,
    PersistTimeoutError,
    ReadModelError,
    StoreUnavailableError,
)
from actorsrc.records import AppendResult, NewEvent, RecordedEvent
from actorsrc.runtime.outcome import CommandOutcome
from actorsrc.runtime.ref import AggregateRef
from actorsrc.runtime.store_health import StoreBreakerPolicy, is_store_failure
from actorsrc.store.base import ExpectedVersion
from examples.bank import Credit, Debit, InsufficientFunds, OpenAccount, account
from tests.helpers import replayed_account, wait_until

QUICK = StoreBreakerPolicy(min_backoff=0.01, max_backoff=0.04)


class OutageStore:
    """A real SQLite store whose appends (and, if asked, reads) fail the way a full disk makes them fail.

    This class takes appends through `append` only, so actors use their task path; `SubmittingOutageStore`
    also takes them through `submit_append`, so healthy actors use the task-free path.
    """

    def __init__(self, inner: SQLiteEventStore) -> None:
        self.inner = inner
        self.appends_down = False
        self.reads_down = False
        self.unreadable: str | None = None  # a stream whose reads fail, as a bad sector would make them
        self.append_attempts = 0
        self.held: asyncio.Event | None = None

    def fail(self, *, reads: bool = False) -> None:
        self.appends_down, self.reads_down = True, reads

    def heal(self) -> None:
        self.appends_down = self.reads_down = False

    def error(self, what: str) -> StoreError:
        error = StoreError(f"SQLite store: {what} failed: database or disk is full (injected)")
        error.__cause__ = sqlite3.OperationalError("database or disk is full")
        return error

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: ExpectedVersion
    ) -> AppendResult:
        self.append_attempts += 1
        if self.held is not None:
            await self.held.wait()
        await asyncio.sleep(0)  # a failing write still takes a trip through the event loop
        if self.appends_down:
            raise self.error(f"append to {stream_id!r}")
        return await self.inner.append(stream_id, events, expected_version)

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        if self.reads_down or stream_id == self.unreadable:
            raise self.error(f"reading {stream_id!r}")
        return await self.inner.read_stream(stream_id, from_version, to_version)

    async def read_all(
        self, after_position: int = 0, limit: int = 1000, *, slices: tuple[int, int] | None = None
    ) -> list[RecordedEvent]:
        return await self.inner.read_all(after_position, limit, slices=slices)

    async def find_commands(self, stream_id: str, command_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        if self.reads_down:
            raise self.error(f"reading the command ids of {stream_id!r}")
        return await self.inner.find_commands(stream_id, command_ids)

    async def stream_version(self, stream_id: str) -> int:
        return await self.inner.stream_version(stream_id)

    async def last_position(self) -> int:
        return await self.inner.last_position()


class SubmittingOutageStore(OutageStore):
    def submit_append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: ExpectedVersion
    ) -> asyncio.Future[AppendResult]:
        if self.held is None and not self.appends_down:
            self.append_attempts += 1
            return self.inner.submit_append(stream_id, events, expected_version)
        return asyncio.ensure_future(self.append(stream_id, events, expected_version))


def outage_store(inner: SQLiteEventStore, path: str) -> OutageStore:
    return SubmittingOutageStore(inner) if path == "inline" else OutageStore(inner)


async def served(
    runtime: Runtime, ref: AggregateRef[Any, Any, Any], command: object, command_id: str | None = None
) -> CommandOutcome[Any]:
    """Send `command` until the breaker lets it through, as a caller told "retry later" does."""
    while True:
        try:
            return await ref.ask(command, command_id=command_id)
        except StoreUnavailableError:
            await anyio.sleep(max(0.005, runtime.store_status().next_probe_in))


@pytest.mark.parametrize("path", ["inline", "task"])
@pytest.mark.parametrize("outage", ["appends", "reads and appends"])
async def test_after_a_store_outage_every_actor_serves_again_and_none_is_failed(
    tmp_path: Path, path: str, outage: str, captured_logs: list[MutableMapping[str, Any]]
) -> None:
    """Regression: a 2 s full disk used to spend every actor's 5 restarts, and 70 of 100 actors still
    refused commands 24 s after the store had recovered."""
    errors: Counter[str] = Counter()
    async with SQLiteEventStore.open(tmp_path / "o.db") as inner:
        store = outage_store(inner, path)
        async with Runtime(store, [account]) as runtime:  # the default SupervisorPolicy: 5 restarts
            refs = [runtime.ref(account, f"a{n}") for n in range(100)]
            async with anyio.create_task_group() as tg:
                for ref in refs:
                    tg.start_soon(ref.ask, OpenAccount("x"))
            store.fail(reads=outage == "reads and appends")

            async def fail_repeatedly(ref: AggregateRef[Any, Any, Any]) -> None:
                for _ in range(8):  # well past max_restarts
                    with pytest.raises((StoreError, RecoveryError)) as caught:
                        await ref.ask(Credit(1))
                    errors[type(caught.value).__name__] += 1

            async with anyio.create_task_group() as tg:
                for ref in refs:
                    tg.start_soon(fail_repeatedly, ref)
            assert sum(errors.values()) == 800
            assert errors["StoreError"] >= 1  # some appends really failed; the others were refused
            assert errors["StoreUnavailableError"] >= 100
            assert not runtime.stats().store_available
            status = runtime.store_status()
            assert (status.available, status.since is not None) == (False, True)
            assert "disk is full" in str(status.last_error)

            store.heal()
            with anyio.fail_after(StoreBreakerPolicy().max_backoff * 1.2 + 5):
                async with anyio.create_task_group() as tg:
                    for ref in refs:
                        tg.start_soon(served, runtime, ref, Credit(1))  # AggregateFailedError would fail the test
            stats = runtime.stats()
            assert (stats.store_available, stats.failed_actors) == (True, 0)
            assert runtime.store_status().available
        for n in range(100):
            state, versions = await replayed_account(inner, f"a{n}")
            assert (state.balance, versions) == (1, [1, 2])  # the refused and failed credits wrote nothing
    events = [e["event"] for e in captured_logs]
    assert "actor.gave_up" not in events
    assert "actor.crashed" not in events
    assert events.count("store.unavailable") == 1
    assert events.count("store.recovered") == 1
    recovered = next(e for e in captured_logs if e["event"] == "store.recovered")
    assert recovered["seconds_down"] > 0
    assert recovered["refused_batches"] >= 100


async def test_while_the_store_fails_commands_are_refused_at_once_and_one_probe_goes_at_a_time(
    tmp_path: Path,
) -> None:
    slow = StoreBreakerPolicy(min_backoff=5, max_backoff=5)  # the first probe goes at once, the next after 5-6 s
    async with SQLiteEventStore.open(tmp_path / "o.db") as inner:
        store = SubmittingOutageStore(inner)
        async with Runtime(store, [account], store_breaker=slow) as runtime:
            for n in range(20):
                await runtime.ref(account, f"a{n}").ask(OpenAccount("x"))
            store.fail()
            with pytest.raises(StoreError, match="disk is full") as caught:
                await runtime.ref(account, "a0").ask(Credit(1))
            assert not isinstance(caught.value, StoreUnavailableError)  # the first caller hears what happened
            await wait_until(
                lambda: runtime.store_status().next_probe_in == 0, 5.0, what="the first probe is due at once"
            )
            store.held = asyncio.Event()  # the probe's append hangs, and with it the verdict
            attempts = store.append_attempts
            probe = asyncio.ensure_future(runtime.ref(account, "a1").ask(Credit(1)))
            await wait_until(lambda: store.append_attempts == attempts + 1, 5.0, what="the probe reached the store")
            for n in range(2, 20):  # everyone else is refused at once: they do not wait behind the probe
                with pytest.raises(StoreUnavailableError) as refused:
                    await runtime.ref(account, f"a{n}").ask(Credit(1), timeout=5)
                message = str(refused.value)
                assert "the event store is failing since" in message
                assert "disk is full" in message
                assert "nothing was written" in message
                assert "a probe is under way" in message
                assert isinstance(refused.value.__cause__, StoreError)
            assert store.append_attempts == attempts + 1
            store.held.set()
            store.held = None
            with pytest.raises(StoreError, match="disk is full"):
                await probe
            status = runtime.store_status()
            assert status.failed_probes == 1
            assert 4 < status.next_probe_in <= 6
            with pytest.raises(StoreUnavailableError, match=r"the first command after [45]\.\d\d s goes through"):
                await runtime.ref(account, "a2").ask(Credit(1))


async def test_failed_probes_back_off_exponentially_up_to_the_cap(tmp_path: Path) -> None:
    async with SQLiteEventStore.open(tmp_path / "o.db") as inner:
        store = OutageStore(inner)
        async with Runtime(store, [account], store_breaker=QUICK) as runtime:
            ref = runtime.ref(account, "a")
            await ref.ask(OpenAccount("x"))
            store.fail()
            delays: dict[int, float] = {}
            with anyio.fail_after(5):
                while len(delays) < 5:
                    with pytest.raises(StoreError):
                        await ref.ask(Credit(1))
                    status = runtime.store_status()
                    delays.setdefault(status.failed_probes, status.next_probe_in)
                    await anyio.sleep(status.next_probe_in)
            for failed, delay in delays.items():
                if failed:
                    assert delay <= min(QUICK.max_backoff, QUICK.min_backoff * 2 ** (failed - 1)) * 1.2
            assert max(delays) >= 4
            store.heal()
            await served(runtime, ref, Credit(5))
            assert runtime.store_status().failed_probes == 0
            assert (await ref.state()).balance == 5


async def test_an_actor_in_memory_still_answers_queries_and_rejects_commands_during_an_outage(
    tmp_path: Path,
) -> None:
    async with SQLiteEventStore.open(tmp_path / "o.db") as inner:
        store = SubmittingOutageStore(inner)
        async with Runtime(store, [account], store_breaker=StoreBreakerPolicy(min_backoff=5, max_backoff=5)) as runtime:
            healthy, broken = runtime.ref(account, "healthy"), runtime.ref(account, "broken")
            await healthy.ask(OpenAccount("x"))
            await healthy.ask(Credit(3))
            await broken.ask(OpenAccount("y"))
            store.fail()
            with pytest.raises(StoreError):
                await broken.ask(Credit(1))
            with pytest.raises(StoreError):  # the immediate probe; the next one is 5 s away
                await broken.ask(Credit(1))
            attempts = store.append_attempts
            assert (await healthy.state()).balance == 3  # needs no store: answered from memory
            with pytest.raises(InsufficientFunds):
                await healthy.ask(Debit(10))  # rejected by the domain: writes nothing, needs no store
            with pytest.raises(StoreUnavailableError):
                await healthy.ask(Credit(1))  # would write: refused
            with pytest.raises(StoreUnavailableError):
                await broken.state()  # its state must be reloaded from the store first: refused
            assert store.append_attempts == attempts
            assert runtime.stats().failed_actors == 0


async def test_a_refused_command_id_is_carried_out_once_when_sent_again(tmp_path: Path) -> None:
    async with SQLiteEventStore.open(tmp_path / "o.db") as inner:
        store = OutageStore(inner)
        async with Runtime(store, [account], store_breaker=QUICK) as runtime:
            ref = runtime.ref(account, "a")
            await ref.ask(OpenAccount("x"))
            store.fail(reads=True)
            for _ in range(3):
                with pytest.raises((StoreError, RecoveryError)):
                    await ref.ask(Credit(7), command_id="pay-1")
            store.heal()
            with anyio.fail_after(5):
                again = await served(runtime, ref, Credit(7), command_id="pay-1")
            assert (again.version, again.duplicate) == (2, False)  # nothing of the refused tries was written
            assert (await ref.ask(Credit(7), command_id="pay-1")).duplicate
        state, versions = await replayed_account(inner, "a")
        assert (state.balance, versions) == (7, [1, 2])


async def test_a_hung_store_opens_the_breaker_so_others_do_not_each_wait_for_the_timeout(
    tmp_path: Path, captured_logs: list[MutableMapping[str, Any]]
) -> None:
    async with SQLiteEventStore.open(tmp_path / "o.db") as inner:
        store = SubmittingOutageStore(inner)
        # persist_timeout is long enough that the probe below cannot time out before the test releases it
        async with Runtime(store, [account], write=WriteSettings(persist_timeout=2.0), store_breaker=QUICK) as runtime:
            for name in ("a", "b"):
                await runtime.ref(account, name).ask(OpenAccount("x"))
            store.held = asyncio.Event()
            with pytest.raises(PersistTimeoutError):
                await runtime.ref(account, "a").ask(Credit(1))
            assert not runtime.stats().store_available
            probe = asyncio.ensure_future(runtime.ref(account, "a").ask(Credit(2)))  # hangs, as the probe
            await wait_until(lambda: runtime.store_health.probe is not None, 5.0, what="a probe is under way")
            with pytest.raises(StoreUnavailableError, match="PersistTimeoutError"):
                await runtime.ref(account, "b").ask(Credit(1), timeout=5)  # at once, not after persist_timeout
            store.held.set()
            store.held = None
            outcome = await probe  # the store answers again: the probe succeeds and closes the breaker
            assert runtime.stats().store_available
            assert (await runtime.ref(account, "b").ask(Credit(3))).version == 2
        state, _ = await replayed_account(inner, "a")
        assert (state.balance, outcome.version) == (2, 2)  # the timed-out append was cancelled, unwritten
    unavailable = next(e for e in captured_logs if e["event"] == "store.unavailable")
    assert "PersistTimeoutError" in unavailable["error"]


async def test_a_read_failure_alone_does_not_open_the_breaker(tmp_path: Path) -> None:
    async with SQLiteEventStore.open(tmp_path / "o.db") as inner:
        store = OutageStore(inner)
        async with Runtime(store, [account]) as runtime:
            await runtime.ref(account, "a").ask(OpenAccount("x"))
        store.unreadable = "account-a"
        async with Runtime(store, [account]) as runtime:
            for _ in range(8):  # past max_restarts: reading one stream failing is not the actor's fault either
                with pytest.raises(RecoveryError, match="cannot recover 'account-a'"):
                    await runtime.ref(account, "a").ask(Credit(1))
            assert runtime.stats().store_available  # one stream's read failing must not lock every actor out
            assert (await runtime.ref(account, "b").ask(OpenAccount("y"))).version == 1
            store.unreadable = None
            assert (await runtime.ref(account, "a").ask(Credit(1))).version == 2
            assert runtime.stats().failed_actors == 0


def test_store_failures_are_told_from_data_errors() -> None:
    def caused(error: StoreError, cause: BaseException) -> StoreError:
        error.__cause__ = cause
        return error

    for failure in (
        StoreError("could not write a batch"),
        caused(StoreError("batch failed"), sqlite3.OperationalError("database or disk is full")),
        PersistTimeoutError("did not complete"),
        OutcomeUnknownError("link lost mid-commit"),
        StoreUnavailableError("failing"),
        ConnectionResetError(),
        TimeoutError(),
        OSError(28, "No space left on device"),
    ):
        assert is_store_failure(failure), failure
    for not_failure in (
        caused(StoreError("read failed"), OverflowError("date value out of range")),
        caused(StoreError("read failed"), ValueError("bad value")),
        EventDecodeError("s", 1, "T", "bad json"),
        ForeignDatabaseError("not ours"),
        ReadModelError("read model"),
        AggregateFailedError("failed"),
        RuntimeError("evolve bug"),
        KeyError("x"),
    ):
        assert not is_store_failure(not_failure), not_failure


@pytest.mark.parametrize("options", [{"min_backoff": 0}, {"min_backoff": 2, "max_backoff": 1}, {"jitter": -0.1}])
def test_bad_breaker_policies_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        StoreBreakerPolicy(**options)
