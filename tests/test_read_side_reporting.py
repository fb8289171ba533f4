"""What the read side tells its users: parked counts that follow retries and discards (and survive a
restart), a batch failure logged even when the event-by-event retry works, and a read-your-writes wait
that fails saying the command itself was carried out."""

from __future__ import annotations

import sqlite3
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest

from actorsrc import CommandOutcome, ConfigurationError, EventEnvelope, FailurePolicy, WaitTimeoutError
from examples.bank import Credit, OpenAccount, account
from tests.read_side_fixtures import read_side
from tests.test_read_side_faults import amount, recorder

QUICK = FailurePolicy(retries=1, backoff=0.001)


async def test_the_parked_count_follows_retries_and_discards_and_survives_a_restart(tmp_path: Path) -> None:
    broken = {13, 14}

    def poison(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
        if amount(envelope) in broken:
            raise ValueError(f"cannot handle {amount(envelope)}")

    counted = recorder("counted", QUICK, poison)
    async with read_side(tmp_path, counted) as (_, _, runtime):
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"))
        await ref.ask(Credit(13))
        last = await ref.ask(Credit(14))
        await runtime.wait_for(counted, last.position, timeout=10)
        assert runtime.handler_statuses()[0].parked == 2
        first, second = await runtime.parked("counted")
        broken.clear()  # the fix is deployed
        await runtime.retry_parked(first.id)
        assert runtime.handler_statuses()[0].parked == 1
    async with read_side(tmp_path, counted) as (_, _, runtime):  # what still waits is counted after a restart
        await runtime.wait_for(counted, last.position, timeout=10)
        assert runtime.handler_statuses()[0].parked == 1
        await runtime.discard_parked(second.id)
        assert runtime.handler_statuses()[0].parked == 0
        assert await runtime.parked() == []


async def test_a_batch_failure_is_logged_even_when_the_event_by_event_retry_works(
    tmp_path: Path, captured_logs: list[MutableMapping[str, Any]]
) -> None:
    failures = iter([RuntimeError("a passing fault")])

    def flaky(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
        if amount(envelope) == 7 and (fault := next(failures, None)) is not None:
            raise fault

    projection = recorder("flaky", QUICK, flaky)
    async with read_side(tmp_path, projection) as (_, _, runtime):
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"))
        credited = await ref.ask(Credit(7))
        await runtime.wait_for(projection, credited.position, timeout=10)
        assert await runtime.parked() == []
    logged = [log for log in captured_logs if log["event"] == "handler.batch_failed"]
    assert len(logged) == 1
    assert "a passing fault" in logged[0]["error"]


async def test_a_read_your_writes_wait_that_fails_says_the_command_was_carried_out(tmp_path: Path) -> None:
    def always(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
        if amount(envelope) == 9:
            raise ValueError("broken projection")

    stopper = recorder("stopper", FailurePolicy(retries=0, then="stop"), always)
    async with read_side(tmp_path, stopper) as (store, _, runtime):
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"), consistency=[stopper])
        with pytest.raises(WaitTimeoutError, match="the command itself was carried out") as caught:
            await ref.ask(Credit(9), consistency=[stopper], timeout=10)
        assert isinstance(caught.value.outcome, CommandOutcome)
        assert caught.value.outcome.version == 2
        assert await store.stream_version("account-a") == 2  # written, as the error says


async def test_a_single_handler_for_consistency_gets_a_short_hint(tmp_path: Path) -> None:
    projection = recorder("short", QUICK)
    async with read_side(tmp_path, projection) as (store, _, runtime):
        with pytest.raises(ConfigurationError) as caught:
            await runtime.ref(account, "a").ask(OpenAccount("ann"), consistency=projection)  # type: ignore[arg-type]
        assert "consistency=[short]" in str(caught.value)
        assert len(str(caught.value)) < 200
        assert await store.stream_version("account-a") == 0
