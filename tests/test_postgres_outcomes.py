"""PostgreSQL: a link that fails around COMMIT never turns a committed append into "not written".

A proxy between the store and the server (tests/postgres_proxy.py) fails the link exactly around a
COMMIT: after the server committed but before its reply arrives, before the COMMIT reaches the server,
or by going silent without closing. Every append is then either settled (its `AppendResult`, written
exactly once) or reported as `OutcomeUnknownError`; a retry with the same command id writes nothing twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import pytest

from actorsrc import ANY, NO_STREAM, NewEvent, RecordedEvent, Runtime
from actorsrc.errors import ConcurrencyError, ConfigurationError, OutcomeUnknownError, StoreError
from actorsrc.records import AppendResult, Metadata, Snapshot, next_event_id
from actorsrc.store.postgres import PostgresEventStore
from examples.bank import AccountCredited, Credit, OpenAccount, account
from tests.postgres_proxy import Cut, PgProxy, pg_proxy
from tests.postgres_support import fresh_schema, require_postgres


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async for name in fresh_schema():
        yield name


@pytest.fixture
async def proxy() -> AsyncIterator[PgProxy]:
    async with pg_proxy(require_postgres()) as running:
        yield running


def _proxied(proxy: PgProxy, schema: str, **options: Any) -> AbstractAsyncContextManager[PostgresEventStore]:
    options = {"listen": False, "retries": 30, "retry_delay": 0.001, **options}
    return PostgresEventStore.open(proxy.dsn(require_postgres()), schema=schema, **options)


def _direct(schema: str) -> AbstractAsyncContextManager[PostgresEventStore]:
    return PostgresEventStore.open(require_postgres(), schema=schema, listen=False)


def _event(command_id: str | None = None) -> NewEvent:
    return NewEvent("Happened", b"{}", Metadata(next_event_id(), command_id))


async def _whole_log(store: PostgresEventStore) -> list[RecordedEvent]:
    records: list[RecordedEvent] = []
    while chunk := await store.read_all(records[-1].position if records else 0, 5000):
        records.extend(chunk)
    return records


def _stored(records: list[RecordedEvent], event: NewEvent) -> list[RecordedEvent]:
    return [r for r in records if r.metadata.event_id == event.metadata.event_id]


async def test_a_batch_whose_commit_reply_is_lost_is_settled_as_written_after_an_outage(
    proxy: PgProxy, schema: str
) -> None:
    async with _proxied(proxy, schema) as store, _direct(schema) as reader:
        await store.append("existing", [_event()], NO_STREAM)
        proxy.cut_at_commit(Cut.REPLY_LOST, outage=True)
        fresh, existing, anywhere, refused = [_event(), _event()], [_event()], [_event()], [_event()]
        futures = [  # queued together: one batch, one transaction
            store.submit_append("fresh", fresh, NO_STREAM),
            store.submit_append("existing", existing, 1),
            store.submit_append("anywhere", anywhere, ANY),
            store.submit_append("existing", refused, 0),
        ]
        with anyio.fail_after(30):
            await proxy.until(lambda: proxy.refused >= 3)  # the server is down for a few attempts
            proxy.restore()
            outcomes = await asyncio.gather(*futures, return_exceptions=True)
        records = await _whole_log(reader)
    assert isinstance(outcomes[3], ConcurrencyError)
    results = outcomes[:3]
    assert all(isinstance(r, AppendResult) for r in results), outcomes
    assert [(r.stream_id, r.first_version, r.last_version) for r in results if isinstance(r, AppendResult)] == [
        ("fresh", 1, 2),
        ("existing", 2, 2),
        ("anywhere", 1, 1),
    ]
    assert Counter(r.metadata.event_id for r in records).most_common(1)[0][1] == 1  # nothing written twice
    assert [r.position for r in records] == list(range(1, 6))
    for result, events in zip(results, [fresh, existing, anywhere], strict=True):
        assert isinstance(result, AppendResult)
        stored = [r for event in events for r in _stored(records, event)]
        assert [r.position for r in stored] == list(range(result.first_position, result.last_position + 1))
    assert not _stored(records, refused[0])


async def test_an_outage_that_outlasts_the_retries_gives_outcome_unknown_never_not_written(
    proxy: PgProxy, schema: str
) -> None:
    async with _proxied(proxy, schema, retries=3) as store, _direct(schema) as reader:
        await store.append("existing", [_event()], NO_STREAM)
        proxy.cut_at_commit(Cut.REPLY_LOST, outage=True)  # the server commits; settling finds it down
        mine = _event()
        with anyio.fail_after(30):
            outcomes = await asyncio.gather(
                store.submit_append("fresh", [mine], NO_STREAM),
                store.submit_append("existing", [_event()], 0),
                return_exceptions=True,
            )
        assert proxy.refused >= 1  # settling was tried, and found the server down
        unknown, refused = outcomes
        assert isinstance(unknown, OutcomeUnknownError), outcomes
        assert "outcome unknown" in str(unknown)
        assert "retry with the same command id" in str(unknown)
        assert isinstance(refused, ConcurrencyError)  # refused inside that transaction: not written either way
        proxy.restore()
        assert len(_stored(await _whole_log(reader), mine)) == 1  # it had committed
        with pytest.raises(ConcurrencyError):  # the caller's retry of the same append: not written twice
            await store.append("fresh", [mine], NO_STREAM)
        assert len(_stored(await _whole_log(reader), mine)) == 1


async def test_settling_finds_an_any_append_however_far_its_stream_moved_on(proxy: PgProxy, schema: str) -> None:
    async with _proxied(proxy, schema) as store, _direct(schema) as other:
        await store.append("busy", [_event()], ANY)
        proxy.cut_at_commit(Cut.REPLY_LOST, outage=True)
        mine = _event()
        future = store.submit_append("busy", [mine], ANY)
        with anyio.fail_after(30):
            await proxy.until(lambda: proxy.cuts_done == 1)
            await other.append("busy", [_event() for _ in range(1500)], ANY)  # another process goes on
            proxy.restore()
            result = await future
        stored = _stored(await other.read_stream("busy"), mine)
    assert [(r.version, r.position) for r in stored] == [(2, 2)]  # once, where the lost commit put it
    assert (result.first_version, result.first_position) == (2, 2)


@pytest.mark.parametrize("restored", [True, False], ids=["settled", "unsettled"])
async def test_a_snapshot_sharing_a_lost_commit_is_saved_or_reported_unsaved(
    proxy: PgProxy, schema: str, restored: bool
) -> None:
    async with _proxied(proxy, schema, retries=30 if restored else 2) as store:
        first = await store.append("s", [_event()], NO_STREAM)
        proxy.cut_at_commit(Cut.REPLY_LOST, outage=True)
        snapshot = Snapshot("s", 1, first.last_position, 1, b"{}")
        saving = asyncio.ensure_future(store.save_snapshot(snapshot))  # queued first: it joins the next batch
        appending = store.submit_append("s", [_event()], 1)
        with anyio.fail_after(30):
            if restored:
                await proxy.until(lambda: proxy.refused >= 1)
                proxy.restore()
            saved, appended = await asyncio.gather(saving, appending, return_exceptions=True)
        if restored:
            assert saved is None
            assert isinstance(appended, AppendResult)
            loaded = await store.load_snapshot("s")
            assert loaded is not None
            assert (loaded.version, loaded.position, loaded.data) == (1, first.last_position, b"{}")
        else:
            assert isinstance(appended, OutcomeUnknownError)
            assert isinstance(saved, StoreError)
            assert "outcome unknown" in str(saved)


@pytest.mark.parametrize(
    "cuts",
    [
        [Cut.COMMIT_LOST],  # nothing committed: written by the retry
        [Cut.COMMIT_LOST, Cut.REPLY_LOST],  # settled as not written, then the retry's own reply is lost
        [Cut.REPLY_LOST, Cut.REPLY_LOST],  # settled as written, then the settling transaction's reply is lost
    ],
    ids=lambda cuts: "-then-".join(cut.name.lower() for cut in cuts),
)
async def test_successive_lost_commits_leave_one_copy_and_the_true_result(
    proxy: PgProxy, schema: str, cuts: list[Cut]
) -> None:
    async with _proxied(proxy, schema) as store, _direct(schema) as reader:
        await store.append("s", [_event()], NO_STREAM)
        for cut in cuts:
            proxy.cut_at_commit(cut)
        mine = [_event(), _event()]
        with anyio.fail_after(30):
            result = await store.append("s", mine, 1)
        assert proxy.cuts_done == len(cuts)
        records = await _whole_log(reader)
    assert (result.first_version, result.last_version, result.first_position) == (2, 3, 2)
    assert [r.position for r in _stored(records, mine[0]) + _stored(records, mine[1])] == [2, 3]
    assert len(records) == 3


@pytest.mark.parametrize("cut", [Cut.HANG_AFTER_COMMIT, Cut.HANG_BEFORE_COMMIT])
async def test_a_silent_link_cannot_block_the_committer(proxy: PgProxy, schema: str, cut: Cut) -> None:
    # After the commit, the client's command_timeout ends the wait and the retry settles it; before, the
    # silent session holds the log-head lock until the server's idle-in-transaction timeout ends it.
    async with _proxied(proxy, schema, command_timeout=0.5) as store, _direct(schema) as reader:
        await store.append("s", [_event()], NO_STREAM)
        proxy.cut_at_commit(cut)
        mine = _event()
        with anyio.fail_after(20):
            result = await store.append("s", [mine], 1)
            after = await reader.append("s", [_event()], 2)  # and other writers are not locked out
        assert proxy.cuts_done == 1
        assert len(_stored(await _whole_log(reader), mine)) == 1
    assert (result.first_version, result.first_position) == (2, 2)
    assert after.first_version == 3


async def test_a_runtime_retry_with_the_same_command_id_after_outcome_unknown_writes_once(
    proxy: PgProxy, schema: str
) -> None:
    async with _proxied(proxy, schema, retries=2) as store, Runtime(store, [account]) as runtime:
        ref = runtime.ref(account, "a1")
        await ref.ask(OpenAccount("Ada"))
        proxy.cut_at_commit(Cut.REPLY_LOST, outage=True)
        with anyio.fail_after(30):
            with pytest.raises(OutcomeUnknownError):
                await ref.ask(Credit(10), command_id="credit-1")
            proxy.restore()
            outcome = await ref.ask(Credit(10), command_id="credit-1")
        assert outcome.duplicate
        records = await store.read_stream("account-a1")
    assert [type(event) for event in outcome.events] == [AccountCredited]
    assert [r.type for r in records].count("AccountCredited") == 1


async def test_timeouts_reach_the_server_unless_turned_off(schema: str) -> None:
    dsn = require_postgres()
    async with PostgresEventStore.open(dsn, schema=schema, listen=False, command_timeout=1.5) as store:
        assert await store._fetch("SHOW statement_timeout") == [("1500ms",)]
        assert await store._fetch("SHOW idle_in_transaction_session_timeout") == [("1500ms",)]
    async with PostgresEventStore.open(dsn, schema=schema, listen=False, server_timeouts=False) as store:
        assert await store._fetch("SHOW statement_timeout") == [("0",)]
    # Without a statement limit, a session left mid-transaction by a vanished client still ends.
    async with PostgresEventStore.open(dsn, schema=schema, listen=False, command_timeout=None) as store:
        assert await store._fetch("SHOW statement_timeout") == [("0",)]
        assert await store._fetch("SHOW idle_in_transaction_session_timeout") == [("1min",)]


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "30"])
def test_bad_command_timeouts_are_refused(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="command_timeout"):
        PostgresEventStore("postgresql://127.0.0.1/x", command_timeout=bad)  # type: ignore[arg-type]
