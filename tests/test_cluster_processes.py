"""The cluster with real OS processes (tests/cluster_node.py), PostgreSQL and NATS JetStream.

Each test runs its own cluster (a unique name) on a fresh schema, checks what callers were told against
what PostgreSQL holds, and kills every process it started, whatever happens.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
import pytest

from actorsrc.hashing import shard_of
from actorsrc.store.postgres import PostgresEventStore
from tests.cluster_node import LEASE_TTL, SHARDS
from tests.cluster_processes import (
    Message,
    NodeProcess,
    NodeProcesses,
    assert_acks_exactly_once,
    examine,
    node_processes,
    poll_until,
    whole_log,
)
from tests.nats_support import require_nats
from tests.postgres_support import fresh_schema, require_postgres

pytestmark = pytest.mark.slow

# A dead node's shards are free once its lease runs out (TTL) and its member key is gone (TTL, seen at
# the survivors' next heartbeat); the rest is for a loaded machine.
TAKEOVER_BOUND = LEASE_TTL + 7.0


def processes(schema: str, tmp_path: Path) -> AbstractAsyncContextManager[NodeProcesses]:
    """The test's node processes (a task group of the test's own task: not a fixture)."""
    return node_processes(tmp_path, require_postgres(), schema, require_nats())


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async for name in fresh_schema():
        yield name


async def open_accounts(nodes: list[NodeProcess], count: int) -> None:
    """Open accounts acct-0 .. acct-{count-1}, each process a slice of them; all must be acknowledged."""
    step = -(-count // len(nodes))
    loads = []
    for i, node in enumerate(nodes):
        lo, hi = i * step, min(count, (i + 1) * step)
        loads.append((node, hi - lo, await node.start_load(open=True, accounts=[lo, hi], tasks=32)))
    for node, expected, load_id in loads:
        done = await node.load_done(load_id, 120.0)
        assert (done["acked"], done["errors"]) == (expected, {}), f"{node.name} opening accounts: {done}"


def acked(nodes: list[NodeProcess]) -> int:
    return sum(len(node.acks()) for node in nodes)


async def wait_acks(nodes: list[NodeProcess], at_least: int, timeout: float, what: str) -> int:
    async def check() -> int | None:
        count = acked(nodes)
        return count if count >= at_least else None

    return await poll_until(check, timeout, what)


async def store_check(schema: str, nodes: list[NodeProcess]) -> tuple[int, Counter[str], list[Message]]:
    """Examine the log (gapless, command ids once) and place every acknowledged command in it; returns
    the log's length, the stored balances and the credits acknowledged."""
    async with PostgresEventStore.open(require_postgres(), schema=schema) as store:
        records = await whole_log(store)
    check = examine(records)
    acks = [ack for node in nodes for ack in node.acks()]
    assert_acks_exactly_once(check, acks)
    return len(records), check.balances, [ack for ack in acks if ack["n"] > 0]


async def test_three_nodes_and_a_client_keep_every_aggregate_in_one_place(schema: str, tmp_path: Path) -> None:
    async with processes(schema, tmp_path) as cluster:
        members = await cluster.start(("n1", "member"), ("n2", "member"), ("n3", "member"))
        (client,) = await cluster.start(("c1", "client"))
        everyone = [*members, client]
        await cluster.settled(members)

        await open_accounts(everyone, 5000)
        loads = [(node, await node.start_load(accounts=[0, 5000], count=1500, tasks=32)) for node in everyone]
        for node, load_id in loads:
            done = await node.load_done(load_id, 120.0)
            assert (done["acked"], done["errors"]) == (1500, {}), f"{node.name}: {done}"

        stats = {node.name: await node.stats() for node in everyone}
        assert {name: (s["conflicts"], s["concurrency_errors"]) for name, s in stats.items()} == {
            node.name: (0, 0) for node in everyone
        }, "an aggregate was live in two places (a conflict retry or a ConcurrencyError)"
        assert stats["c1"]["routed"] > 0
        assert all(stats[n.name]["served"] > 0 for n in members)

        length, balances, credits = await store_check(schema, everyone)
        assert length == 5000 + 4 * 1500
        expected: Counter[str] = Counter()
        for ack in credits:
            expected[ack["a"]] += ack["n"]
        assert balances == expected
        for node in everyone:
            await node.quit()


async def test_a_killed_node_s_shards_are_taken_over_and_nothing_acknowledged_is_lost(
    schema: str, tmp_path: Path
) -> None:
    async with processes(schema, tmp_path) as cluster:
        members = await cluster.start(("n1", "member"), ("n2", "member"), ("n3", "member"))
        (client,) = await cluster.start(("c1", "client"))
        n1, n2, n3 = members
        everyone = [*members, client]
        await cluster.settled(members)
        await open_accounts(everyone, 600)
        opened = acked(everyone)

        positions: list[int] = []
        tailing = anyio.Event()

        async def tail(store: PostgresEventStore) -> None:
            """A subscriber's view: read_all in position order while the nodes write (and one dies)."""
            while not tailing.is_set() or positions[-1:] != [await store.last_position()]:
                chunk = await store.read_all(positions[-1] if positions else 0, 500)
                positions.extend(record.position for record in chunk)
                if not chunk:
                    await anyio.sleep(0.02)

        async with (
            PostgresEventStore.open(require_postgres(), schema=schema) as store,
            anyio.create_task_group() as tasks,
        ):
            tasks.start_soon(tail, store)
            loads = {
                node.name: await node.start_load(accounts=[0, 600], count=10**6, tasks=8, timeout=8)
                for node in everyone
            }
            await wait_acks([n3], opened // 4 + 100, 60.0, "n3 acknowledging credits")
            before = await n3.stats()
            await n3.kill()

            after = await cluster.settled([n1, n2], timeout=TAKEOVER_BOUND)
            taken = set(after["n1"]["serving_shards"]) | set(after["n2"]["serving_shards"])
            assert set(before["serving_shards"]) <= taken
            survivors = [n1, n2, client]
            progress = acked(survivors)
            await wait_acks(survivors, progress + 300, 60.0, "credits acknowledged after the takeover")

            for node in survivors:
                done = await node.stop_load(loads[node.name], 60.0)
                # Only commands in flight to n3 when it died may fail, as timeouts (the router waits for
                # the whole ask timeout on a request already sent, see test_..._in_flight_to_a_killed_node).
                assert set(done["errors"]) <= {"AskTimeoutError"}, f"{node.name}: {done}"
                assert sum(done["errors"].values()) <= 8, f"{node.name}: {done}"
            tailing.set()

        assert positions == list(range(1, len(positions) + 1)), "the subscriber saw a gap or a reordering"
        length, _, _ = await store_check(schema, everyone)  # n3's acks too: what it acknowledged is kept
        assert len(positions) == length
        for node in survivors:
            await node.quit()


async def test_a_node_paused_past_its_lease_stops_serving_and_its_late_append_is_fenced(
    schema: str, tmp_path: Path
) -> None:
    async with processes(schema, tmp_path) as cluster:
        members = await cluster.start(("n1", "member"), ("n2", "member"), ("n3", "member"))
        n1, n2, n3 = members
        await cluster.settled(members)
        # No load while n3 is stopped: a node stopped inside a transaction would hold the log-head lock,
        # and every writer (the takeover's fence too) would wait for it (see the report / README).
        await open_accounts([n1], 300)
        before = await n3.stats()
        shard = before["serving_shards"][0]
        token = before["tokens"][str(shard)]

        n3.signal(signal.SIGSTOP)
        await poll_until(
            lambda: _serves_all(n1, n2),
            TAKEOVER_BOUND + LEASE_TTL,  # n3's member key must expire too before the others want its shards
            "n1 and n2 serving n3's shards",
        )
        # Queued while n3 is stopped, so it is the first thing n3 does when it runs again: its loop has
        # not yet taken any shard back (that needs n1 and n2 to hand them off first).
        stale = await n3.send("stale_append", shard=shard)
        n3.signal(signal.SIGCONT)
        answer = await n3.wait_message(lambda m: m.get("id") == stale, 20.0, "the stale append's answer")
        assert answer["token"] == token, "n3 took the shard back before its late append: the test did not test it"
        assert (answer["error_type"], answer["serving"]) == ("FencedAppendError", False), answer

        lost = await poll_until(lambda: _lost(n3, before["serving_shards"]), 20.0, "n3 logging its lost leases")
        assert set(before["serving_shards"]) <= set(lost)
        async with PostgresEventStore.open(require_postgres(), schema=schema) as store:
            assert not [r for r in await whole_log(store) if r.stream_id.startswith("account-zombie-")]
        # n3 is a member again: it takes its shards back (a new token) and everyone leaves cleanly.
        again = await cluster.settled(members)
        assert again["n3"]["tokens"][str(shard)] > token
        for node in members:
            await node.quit()


async def _serves_all(*nodes: NodeProcess) -> bool | None:
    served = [shard for node in nodes for shard in (await node.stats())["serving_shards"]]
    return True if sorted(served) == list(range(SHARDS)) else None


async def _lost(node: NodeProcess, shards: list[int]) -> list[int] | None:
    lost: list[int] = (await node.stats())["lost_shards"]
    return lost if set(shards) <= set(lost) else None


async def test_a_node_joining_under_load_takes_shards_without_losing_or_repeating_a_command(
    schema: str, tmp_path: Path
) -> None:
    async with processes(schema, tmp_path) as cluster:
        n1, n2 = await cluster.start(("n1", "member"), ("n2", "member"))
        (client,) = await cluster.start(("c1", "client"))
        await cluster.settled([n1, n2])
        await open_accounts([n1, n2, client], 600)
        writers = [n1, n2, client]
        loads = {
            node.name: await node.start_load(accounts=[0, 600], count=10**6, tasks=8, timeout=20) for node in writers
        }
        await wait_acks(writers, acked(writers) + 300, 60.0, "credits acknowledged before the join")
        before = {node.name: (await node.stats())["serving_shards"] for node in (n1, n2)}

        (n3,) = await cluster.start(("n3", "member"))
        after = await cluster.settled([n1, n2, n3])
        assert after["n3"]["serving"] > 0
        assert set(after["n3"]["serving_shards"]) <= set(before["n1"]) | set(before["n2"])
        await wait_acks(writers, acked(writers) + 300, 60.0, "credits acknowledged after the join")

        for node in writers:
            done = await node.stop_load(loads[node.name], 60.0)
            assert done["errors"] == {}, f"{node.name}: {done}"
        stats = {node.name: await node.stats() for node in (n1, n2, n3, client)}
        assert all(s["concurrency_errors"] == 0 for s in stats.values()), stats
        assert any(s["retried"] > 0 for s in stats.values()), "no command met a moving shard: nothing was tested"
        await store_check(schema, [n1, n2, n3, client])
        for node in (n1, n2, n3, client):
            await node.quit()


async def test_a_command_in_flight_to_a_node_that_stops_answering_is_carried_out_by_the_new_owner(
    schema: str, tmp_path: Path
) -> None:
    async with processes(schema, tmp_path) as cluster:
        n1, n2 = await cluster.start(("n1", "member"), ("n2", "member"))
        settled = await cluster.settled([n1, n2])
        n2_shards = set(settled["n2"]["serving_shards"])
        i = next(i for i in range(10_000) if shard_of(f"account-inflight-{i}", SHARDS) in n2_shards)
        opening = await n1.start_load(open=True, prefix="inflight-", accounts=[i, i + 1], tasks=1)
        assert (await n1.load_done(opening, 30.0))["acked"] == 1

        n2.signal(signal.SIGSTOP)  # the request below reaches n2 alone: n1 takes the shard >= 3 s later
        credit = await n1.start_load(prefix="inflight-", accounts=[i, i + 1], count=1, tasks=1, timeout=15)
        await poll_until(lambda: _serves_all(n1), TAKEOVER_BOUND + LEASE_TTL, "n1 serving n2's shards")
        done = await n1.load_done(credit, 30.0)
        # n1 owns the shard within seconds; the caller could be answered long before its 15 s are up
        # by asking again (its command id makes that safe) instead of waiting on the silent n2.
        assert (done["acked"], done["errors"]) == (1, {}), done
