"""Passivation: idle actors leave memory, a cap bounds live actors, nothing queued is dropped."""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from actorsrc import ConfigurationError, MailboxFullError, Runtime, SQLiteEventStore, WriteSettings
from actorsrc.runtime.directory import ActorDirectory
from actorsrc.testing.faults import FaultyStore
from examples.bank import Credit, OpenAccount, account
from tests.helpers import bank, replayed_account, wait_until


@pytest.mark.slow
async def test_ten_thousand_aggregates_through_a_cap_of_one_hundred(tmp_path: Path) -> None:
    peak = 0
    async with bank(tmp_path / "b.db", write=WriteSettings(max_live_actors=100)) as (store, runtime):

        async def drive(n: int) -> None:
            nonlocal peak
            ref = runtime.ref(account, f"acc-{n}")
            await ref.ask(OpenAccount(str(n)))
            peak = max(peak, runtime.live_actors)
            await ref.ask(Credit(n + 1))
            peak = max(peak, runtime.live_actors)

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, runtime.live_actors)
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            async with anyio.create_task_group() as drivers:
                for n in range(10_000):
                    drivers.start_soon(drive, n)
            tg.cancel_scope.cancel()
        assert peak == 100
        assert runtime.stats().passivated >= 9_900
        # A passivated instance comes back from the store with its state.
        assert (await runtime.ref(account, "acc-17").state()).balance == 18
        for n in (0, 4_999, 9_999):
            state, versions = await replayed_account(store, f"acc-{n}")
            assert (state.balance, versions) == (n + 1, [1, 2])


async def test_idle_actors_are_passivated_and_recover_transparently(tmp_path: Path) -> None:
    async with bank(tmp_path / "b.db", write=WriteSettings(passivate_after=0.05)) as (_, runtime):
        for n in range(20):
            await runtime.ref(account, f"a{n}").ask(OpenAccount("x"))
        # On a loaded machine the first ones may already be gone (20 asks can outlast 50 ms): each actor is
        # either still live or was passivated, and none was passivated twice.
        assert runtime.live_actors + runtime.stats().passivated == 20
        await wait_until(lambda: runtime.live_actors == 0, what="every idle actor passivated")
        assert runtime.stats().passivated == 20
        outcome = await runtime.ref(account, "a3").ask(Credit(5))
        assert outcome.version == 2  # recovered from the store
        assert (await runtime.ref(account, "a3").state()).balance == 5


async def test_busy_actors_are_never_evicted_and_new_ones_wait_for_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SQLiteEventStore.open(tmp_path / "b.db") as inner:
        store = FaultyStore(inner)
        async with Runtime(store, [account], write=WriteSettings(max_live_actors=2, passivate_after=0.01)) as runtime:
            sweeps: list[float] = []  # when the idle sweeper ran: the test waits for a sweep, not for time
            evict_idle = ActorDirectory.evict_idle

            def counting_evict_idle(directory: ActorDirectory, now: float) -> int:
                sweeps.append(now)
                return evict_idle(directory, now)

            monkeypatch.setattr(ActorDirectory, "evict_idle", counting_evict_idle)
            for name in ("a", "b", "c"):
                await runtime.ref(account, name).ask(OpenAccount(name))
            store.hold_appends()
            async with anyio.create_task_group() as tg:
                for name in ("a", "b"):
                    for _ in range(10):
                        tg.start_soon(runtime.ref(account, name).ask, Credit(1))
                await store.held(2)  # a and b are busy
                busy_since = anyio.current_time()
                await wait_until(lambda: bool(sweeps) and sweeps[-1] > busy_since + 0.01, what="a sweep past idle")
                assert runtime.live_actors == 2
                assert runtime.stats().running_actors == 2
                with pytest.raises(MailboxFullError, match="live actors are busy"):
                    await runtime.ref(account, "c").ask(Credit(1), wait_for_space=False)
                waiting = anyio.Event()

                async def credit_c() -> None:
                    waiting.set()  # the caller waits for room before this task next yields
                    await runtime.ref(account, "c").ask(Credit(7))

                tg.start_soon(credit_c)
                await waiting.wait()
                assert runtime.live_actors == 2
                assert runtime.mailbox_length(account, "c") == 0  # not let in past the cap
                store.release_appends()
        for name, balance in (("a", 10), ("b", 10), ("c", 7)):
            state, _ = await replayed_account(inner, name)
            assert state.balance == balance


def test_bad_passivation_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="max_live_actors"):
        Runtime(FaultyStore(None), [account], write=WriteSettings(max_live_actors=0))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="passivate_after"):
        Runtime(FaultyStore(None), [account], write=WriteSettings(passivate_after=0))  # type: ignore[arg-type]
