"""The store breaker's probe is one actor's command; if that actor fails for a reason of its own (its
stored events do not decode), the probe passes to the next command at once, rather than wait out that
actor's restart backoff."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from actorsrc import (
    NO_STREAM,
    Metadata,
    NewEvent,
    RecoveryError,
    Runtime,
    SQLiteEventStore,
    StoreError,
    SupervisorPolicy,
)
from actorsrc.testing.faults import FaultyStore
from examples.bank import Credit, OpenAccount, account


class GatedReads(SQLiteEventStore):
    """Reads of p's stream wait at a gate, so a test can queue more mail while p is recovering."""

    gate: anyio.Event | None = None
    reading: anyio.Event | None = None

    async def read_stream(self, stream_id: str, from_version: int = 1, to_version: int | None = None) -> Any:
        if stream_id == "account-p" and self.gate is not None and self.reading is not None:
            self.reading.set()
            await self.gate.wait()
        return await super().read_stream(stream_id, from_version, to_version)

    async def read_stream_payloads(self, stream_id: str, from_version: int = 1, to_version: int | None = None) -> Any:
        if stream_id == "account-p" and self.gate is not None and self.reading is not None:
            self.reading.set()
            await self.gate.wait()
        return await super().read_stream_payloads(stream_id, from_version, to_version)


async def test_a_probe_that_fails_for_its_own_reason_lets_the_next_command_probe(tmp_path: Path) -> None:
    slow_restarts = SupervisorPolicy(min_backoff=3.0, max_backoff=3.0, jitter=0.0)
    async with GatedReads.open(tmp_path / "events.db") as inner:
        store = FaultyStore(inner)
        async with Runtime(store, [account], supervisor=slow_restarts) as runtime:
            for name in ("a", "b"):
                await runtime.ref(account, name).ask(OpenAccount(name), timeout=10)
            # p's only event does not decode (no owner): p cannot recover, which is its own failure.
            await inner.append("account-p", [NewEvent("AccountOpened", b"{}", Metadata("broken-1"))], NO_STREAM)
            store.fail_at_random(1.0)
            with pytest.raises(StoreError):
                await runtime.ref(account, "a").ask(Credit(1), timeout=10)
            assert not runtime.stats().store_available
            store.fail_at_random(0.0)  # the store works again; the breaker learns it from a probe

            # p takes the probe, and cannot recover: p restarts only after 3 s, with a command still queued.
            outcomes: list[Any] = []
            first_answered = anyio.Event()

            async def send(amount: int) -> None:
                try:
                    outcomes.append(await runtime.ref(account, "p").ask(Credit(amount), timeout=10))
                except Exception as exc:
                    outcomes.append(exc)
                first_answered.set()

            inner.gate, inner.reading = anyio.Event(), anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(send, 2)
                with anyio.fail_after(10):
                    await inner.reading.wait()  # p is the probe and is recovering: queue more mail behind it
                tg.start_soon(send, 1)
                await anyio.wait_all_tasks_blocked()
                inner.gate.set()
                with anyio.fail_after(10):
                    await first_answered.wait()
                assert isinstance(outcomes[0], RecoveryError)  # p's own failure: its event does not decode
                # The next command probes at once (not after p's 3 s backoff), succeeds and closes the breaker.
                credited = await runtime.ref(account, "b").ask(Credit(5), timeout=2)
                assert credited.version == 2
                assert runtime.stats().store_available
            assert len(outcomes) == 2
