"""An append the store refuses while validating it (over a size limit) fails that command only: nothing
was written, the actor's state never moved, so the actor neither crashes nor spends a restart."""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest

from actorsrc import LimitExceededError, Runtime, SQLiteEventStore, StoreLimits
from actorsrc.testing.faults import FaultyStore
from examples.bank import Credit, OpenAccount, account

SMALL = StoreLimits(max_event_bytes=1024)


@pytest.mark.parametrize("inline", [True, False], ids=["task-free path", "task path"])
async def test_an_event_over_the_size_limit_fails_its_command_and_the_actor_serves_on(
    tmp_path: Path, inline: bool, captured_logs: list[MutableMapping[str, Any]]
) -> None:
    async with SQLiteEventStore.open(tmp_path / "events.db", limits=SMALL) as inner:
        store = FaultyStore(inner, inline=inline)
        async with Runtime(store, [account]) as runtime:
            ann = runtime.ref(account, "ann")
            await ann.ask(OpenAccount(owner="Ann"), timeout=10)
            bob = runtime.ref(account, "bob")
            with pytest.raises(LimitExceededError) as refused:
                await bob.ask(OpenAccount(owner="B" * 2000), timeout=10)
            assert refused.value.what == "max_event_bytes"
            assert refused.value.limit == 1024
            assert refused.value.size > 2000
            # Nothing written, and the next command is served at once: no crash, no restart backoff.
            assert await inner.stream_version(account.stream_id("bob")) == 0
            outcome = await bob.ask(OpenAccount(owner="Bob"), timeout=10)
            assert outcome.version == 1
            credited = await bob.ask(Credit(5), timeout=10)
            assert credited.version == 2
            assert runtime.stats().failed_actors == 0
    crashes = [log for log in captured_logs if log["event"] in ("actor.crashed", "actor.gave_up")]
    assert crashes == []
