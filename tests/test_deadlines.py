"""The asks' shared deadline timers: an unanswered ask fails with `AskTimeoutError` at (never before) its
timeout, an answered one leaves its bucket at once, and one timer serves every ask due in the same tick."""

from __future__ import annotations

import asyncio

import pytest

from actorsrc import Runtime, SQLiteEventStore
from actorsrc.errors import AskTimeoutError
from actorsrc.runtime.deadlines import TICK, Deadlines
from examples.bank import Credit, OpenAccount, account


async def test_an_unanswered_reply_fails_no_earlier_than_its_limit() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    reply: asyncio.Future[None] = loop.create_future()
    started = loop.time()
    deadlines.add(reply, 0.05, "account", "a", Credit(1))
    with pytest.raises(AskTimeoutError, match=r"account 'a' did not reply to Credit within 0.05 s"):
        await reply
    assert loop.time() - started >= 0.05 - 1e-6  # never early (late by at most a tick and the loop's delay)
    assert deadlines.buckets == {}


async def test_asks_due_in_one_tick_share_a_bucket_and_an_answered_one_leaves_it() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    replies = [loop.create_future() for _ in range(3)]
    buckets = {id(deadlines.add(reply, 60.0, "account", str(n), Credit(1))) for n, reply in enumerate(replies)}
    scheduled = sum(len(bucket) for bucket in deadlines.buckets.values())
    assert scheduled == 3
    assert len(buckets) <= 2  # within one tick, give or take its edge
    bucket = next(iter(deadlines.buckets.values()))
    answered = next(iter(bucket))
    bucket.pop(answered)
    answered.set_result(None)
    assert sum(len(bucket) for bucket in deadlines.buckets.values()) == 2
    for reply in replies:
        reply.cancel()


async def test_answered_asks_leave_nothing_behind() -> None:
    async with SQLiteEventStore.open(":memory:") as store, Runtime(store, [account]) as runtime:
        ref = runtime.ref(account, "a")
        await ref.ask(OpenAccount("ann"), timeout=30)
        for _ in range(50):
            await ref.ask(Credit(1), timeout=30)
        deadlines = runtime._sender._deadlines
        assert deadlines is not None
        assert sum(len(bucket) for bucket in deadlines.buckets.values()) == 0


def test_the_tick_is_small_next_to_any_sensible_timeout() -> None:
    assert 0 < TICK <= 0.01
