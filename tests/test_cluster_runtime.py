"""Runtimes in one process joined into a cluster over a real NATS server (JetStream): placement,
routing, rejections and state across nodes, hand-offs, lease loss and fencing, and start-up errors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest

from actorsrc import Runtime, SQLiteEventStore
from actorsrc.cluster import Cluster
from actorsrc.cluster.membership import Membership
from actorsrc.cluster.placement import shard_key
from actorsrc.errors import (
    ClusterUnavailableError,
    ConfigurationError,
    FencedAppendError,
    LimitExceededError,
    RuntimeClosedError,
    ShardMovingError,
)
from actorsrc.hashing import shard_of
from actorsrc.records import Metadata, NewEvent
from examples.bank import Credit, OpenAccount, account
from examples.bank.domain import Debit, InsufficientFunds
from tests.helpers import replayed_account, wait_until
from tests.nats_support import free_port, private_nats_server, require_nats

SHARDS = 16


def settings(url: str, name: str, node: str, **options: Any) -> Cluster:
    return Cluster(nats=url, name=name, node_id=node, lease_ttl=options.pop("lease_ttl", 2.0), shards=SHARDS, **options)


@pytest.fixture
def nats_url() -> str:
    return require_nats()


@pytest.fixture
def name() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteEventStore]:
    async with SQLiteEventStore.open(tmp_path / "cluster.db") as opened:
        yield opened


def serving(runtime: Runtime) -> set[int]:
    node = runtime._cluster
    assert node is not None
    return set(node.serving)


async def until_split(*runtimes: Runtime) -> None:
    """Every shard served by exactly one of `runtimes`, each serving some."""

    def split() -> bool:
        sets = [serving(r) for r in runtimes]
        return all(sets) and sum(map(len, sets)) == SHARDS and len(set().union(*sets)) == SHARDS

    await wait_until(split, 20, what="the shards split between the nodes")


async def test_commands_reach_the_owner_from_any_node_and_each_instance_lives_on_one_node(
    nats_url: str, name: str, store: SQLiteEventStore
) -> None:
    async with (
        Runtime(store, [account], cluster=settings(nats_url, name, "a")) as a,
        Runtime(store, [account], cluster=settings(nats_url, name, "b")) as b,
    ):
        await until_split(a, b)
        ids = [f"acct{i}" for i in range(40)]
        for i, account_id in enumerate(ids):
            await (a if i % 2 else b).ref(account, account_id).ask(OpenAccount(owner="x"), timeout=10)
        async with anyio.create_task_group() as tg:
            for account_id in ids:
                for runtime in (a, b):
                    tg.start_soon(runtime.ref(account, account_id).ask, Credit(5))
        for account_id in ids:
            state, versions = await replayed_account(store, account_id)
            assert state.balance == 10
            assert versions == [1, 2, 3]
            shard = shard_of(account.stream_id(account_id), SHARDS)
            owner, other = (a, b) if shard in serving(a) else (b, a)
            assert (account.name, account_id) in owner._directory.actors  # live on its owner only
            assert (account.name, account_id) not in other._directory.actors
            assert (await other.ref(account, account_id).state()).balance == 10  # a routed state query
        assert a._cluster is not None
        assert b._cluster is not None
        assert a._cluster.router is not None
        assert b._cluster.router is not None
        assert a._cluster.router.routed > 0
        assert b._cluster.router.routed > 0


async def test_a_rejection_on_the_owner_reaches_the_caller_as_its_own_class(
    nats_url: str, name: str, store: SQLiteEventStore
) -> None:
    async with (
        Runtime(store, [account], cluster=settings(nats_url, name, "a")) as a,
        Runtime(store, [account], cluster=settings(nats_url, name, "client", role="client")) as client,
    ):
        await wait_until(lambda: len(serving(a)) == SHARDS, 20, what="node a serving every shard")
        assert serving(client) == set()  # a client hosts nothing
        ann = client.ref(account, "ann")
        await ann.ask(OpenAccount(owner="Ann"), timeout=10)
        with pytest.raises(InsufficientFunds):
            await ann.ask(Debit(500), timeout=10)
        outcome = await ann.ask(Credit(7), command_id="pay-1", timeout=10)
        again = await ann.ask(Credit(7), command_id="pay-1", timeout=10)  # a retry with the same id
        assert not outcome.duplicate
        assert again.duplicate
        assert again.version == outcome.version
        state, versions = await replayed_account(store, "ann")
        assert state.balance == 7
        assert versions == [1, 2]


async def test_a_shard_with_no_owner_is_retried_until_the_timeout_then_refused(
    nats_url: str, name: str, store: SQLiteEventStore
) -> None:
    async with Runtime(store, [account], cluster=settings(nats_url, name, "client", role="client")) as client:
        with pytest.raises(ShardMovingError, match="had no owner"):
            await client.ref(account, "ann").ask(OpenAccount(owner="Ann"), timeout=0.5)
        assert client._cluster is not None
        assert client._cluster.router is not None
        assert client._cluster.router.retried > 1  # asked again with backoff, not given up at once
    assert await store.stream_version(account.stream_id("ann")) == 0


async def test_a_joining_node_takes_its_shards_under_load_and_nothing_is_lost_or_run_twice(
    nats_url: str, name: str, store: SQLiteEventStore
) -> None:
    ids = [f"acct{i}" for i in range(30)]
    acknowledged: dict[str, int] = dict.fromkeys(ids, 0)
    async with Runtime(store, [account], cluster=settings(nats_url, name, "a")) as a:
        await wait_until(lambda: len(serving(a)) == SHARDS, 20, what="node a serving every shard")
        for account_id in ids:
            await a.ref(account, account_id).ask(OpenAccount(owner="x"), timeout=10)
        joined = anyio.Event()

        async def credit_until_joined(account_id: str) -> None:
            rounds = 0
            while not joined.is_set() or rounds < 3:
                await a.ref(account, account_id).ask(Credit(1), timeout=20)
                acknowledged[account_id] += 1
                rounds += 1
                if rounds > 10_000:
                    break

        async with anyio.create_task_group() as tg:
            for account_id in ids:
                tg.start_soon(credit_until_joined, account_id)
            async with Runtime(store, [account], cluster=settings(nats_url, name, "b")) as b:
                await until_split(a, b)
                joined.set()
                for account_id in ids:  # the newcomer serves too
                    await b.ref(account, account_id).ask(Credit(1), timeout=20)
                    acknowledged[account_id] += 1
    for account_id in ids:
        state, versions = await replayed_account(store, account_id)
        assert state.balance == acknowledged[account_id]
        assert versions == list(range(1, acknowledged[account_id] + 2))


async def test_a_node_whose_lease_is_taken_stops_serving_and_its_late_append_is_fenced(
    nats_url: str, name: str, store: SQLiteEventStore
) -> None:
    async with Runtime(store, [account], cluster=settings(nats_url, name, "a")) as a:
        await wait_until(lambda: len(serving(a)) == SHARDS, 20, what="node a serving every shard")
        await a.ref(account, "ann").ask(OpenAccount(owner="Ann"), timeout=10)
        node = a._cluster
        assert node is not None
        shard = shard_of(account.stream_id("ann"), SHARDS)
        old_token = node.tokens[shard]
        # Another writer takes the shard's lease over (as a node would after a's lease ran out) and
        # raises the store's fence, then a's renewal is refused.
        client = await nats.connect(nats_url)
        try:
            kv = await client.jetstream().key_value(f"actorsrc_{name}_leases")
            revision = node.token_base + await kv.put(shard_key(shard), b'{"node":"intruder"}')
            await store.raise_fence(shard, revision)
            await wait_until(lambda: shard not in serving(a), 20, what="node a to drop the shard")
            with pytest.raises(FencedAppendError) as refused:  # its late append, with its old token
                await node.actor_store.append(
                    account.stream_id("ann"),
                    [NewEvent("AccountCredited", b'{"amount":1}', Metadata(uuid.uuid4().hex))],
                    1,
                )
            assert refused.value.token == old_token < refused.value.fence == revision
            with pytest.raises(ShardMovingError):  # nobody serves it now: a's own callers are refused too
                await a.ref(account, "ann").ask(Credit(1), timeout=0.5)
            await kv.delete(shard_key(shard))
            await wait_until(lambda: shard in serving(a), 20, what="node a to take the shard back")
            await a.ref(account, "ann").ask(Credit(1), timeout=10)
        finally:
            await client.close()
    state, versions = await replayed_account(store, "ann")
    assert state.balance == 1
    assert versions == [1, 2]


async def test_a_store_that_cannot_fence_is_refused(nats_url: str, name: str, store: SQLiteEventStore) -> None:
    class Unfenced:
        async def append(self, *args: object) -> None: ...

    with pytest.raises(ConfigurationError, match="fences appends"):
        Runtime(Unfenced(), [account], cluster=settings(nats_url, name, "a"))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="must be a Cluster"):
        Runtime(store, [account], cluster="nats://127.0.0.1:4222")  # type: ignore[arg-type]


async def test_an_unreachable_nats_is_a_clear_error_at_start(store: SQLiteEventStore) -> None:
    cluster = Cluster(nats=f"nats://127.0.0.1:{free_port()}", name="bank", connect_timeout=1)
    with pytest.raises(ClusterUnavailableError, match="cannot reach NATS"):
        async with Runtime(store, [account], cluster=cluster):
            pytest.fail("joined a cluster without NATS")


async def test_a_nats_without_jetstream_is_a_clear_error_at_start(store: SQLiteEventStore) -> None:
    require_nats()
    with private_nats_server(jetstream=False) as url, pytest.raises(ClusterUnavailableError, match="has no JetStream"):
        async with Runtime(store, [account], cluster=Cluster(nats=url, name="bank", connect_timeout=2)):
            pytest.fail("joined a cluster without JetStream")


async def test_nodes_that_disagree_on_the_lease_time_are_refused(
    nats_url: str, name: str, store: SQLiteEventStore
) -> None:
    async with Runtime(store, [account], cluster=settings(nats_url, name, "a", lease_ttl=2.0)):
        with pytest.raises(ConfigurationError, match="same lease_ttl"):
            async with Runtime(store, [account], cluster=settings(nats_url, name, "b", lease_ttl=5.0)):
                pytest.fail("joined with another lease time")


async def test_a_recreated_lease_bucket_gives_tokens_above_the_stores_fences(
    nats_url: str, name: str, store: SQLiteEventStore
) -> None:
    # Revisions start again at 1 in a new bucket; the tokens are counted above the store's highest fence.
    for tenure in range(2):
        async with Runtime(store, [account], cluster=settings(nats_url, name, "a")) as runtime:
            await wait_until(lambda: len(serving(runtime)) == SHARDS, 20, what="serving every shard")
            if tenure == 0:
                await runtime.ref(account, "ann").ask(OpenAccount(owner="Ann"), timeout=10)
    before = await store.fences()
    client = await nats.connect(nats_url)
    try:
        await client.jetstream().delete_key_value(f"actorsrc_{name}_leases")
    finally:
        await client.close()
    await anyio.sleep(0.001)
    async with Runtime(store, [account], cluster=settings(nats_url, name, "a")) as runtime:
        await wait_until(lambda: len(serving(runtime)) == SHARDS, 20, what="serving every shard again")
        node = runtime._cluster
        assert node is not None
        assert all(node.tokens[shard] >= before.get(shard, 0) for shard in range(SHARDS))
        await runtime.ref(account, "ann").ask(Credit(5), timeout=10)
    state, _ = await replayed_account(store, "ann")
    assert state.balance == 5


async def test_a_shard_the_store_fences_above_this_clusters_tokens_is_not_served(
    nats_url: str, name: str, store: SQLiteEventStore, captured_logs: list[dict[str, Any]]
) -> None:
    shard = shard_of(account.stream_id("ann"), SHARDS)
    async with Runtime(store, [account], cluster=settings(nats_url, name, "a")) as runtime:
        await wait_until(lambda: len(serving(runtime)) == SHARDS, 20, what="serving every shard")
        node = runtime._cluster
        assert node is not None
        # Another cluster on the same store (another name) fences the shard far above this one's tokens;
        # then this node loses the shard's lease and takes it again with a new token, still below.
        await store.raise_fence(shard, 2**62)
        client = await nats.connect(nats_url)
        try:
            kv = await client.jetstream().key_value(f"actorsrc_{name}_leases")
            await kv.put(shard_key(shard), b'{"node":"intruder"}')
            await wait_until(lambda: shard in node.fenced_out, 20, what="the shard found fenced out")
        finally:
            await client.close()
        assert shard not in serving(runtime)
        with pytest.raises(ShardMovingError):
            await runtime.ref(account, "ann").ask(OpenAccount(owner="Ann"), timeout=0.5)
    [logged] = [line for line in captured_logs if line["event"] == "cluster.fenced_out"]  # once, not per retry
    assert logged["shard"] == shard
    assert logged["fence"] == 2**62
    assert "shared with another cluster" in logged["hint"]


async def test_a_routed_ask_ends_when_its_runtime_closes(nats_url: str, name: str, store: SQLiteEventStore) -> None:
    async with Runtime(store, [account], cluster=settings(nats_url, name, "client", role="client")) as client:
        node = client._cluster
        assert node is not None
        assert node.router is not None
        router = node.router
        pending = asyncio.ensure_future(client.ref(account, "ann").ask(Credit(1), timeout=60))
        await wait_until(lambda: router.retried > 2, 10, what="the ask retrying a shard with no owner")
    await wait_until(pending.done, 10, what="the ask to end once the runtime closed")
    assert isinstance(pending.exception(), RuntimeClosedError)


async def test_an_oversize_routed_command_is_a_clear_error(nats_url: str, name: str, store: SQLiteEventStore) -> None:
    async with (
        Runtime(store, [account], cluster=settings(nats_url, name, "m")) as member,
        Runtime(store, [account], cluster=settings(nats_url, name, "c", role="client")) as client,
    ):
        await wait_until(lambda: len(serving(member)) == SHARDS, 20, what="serving every shard")
        with pytest.raises(LimitExceededError, match="max_payload") as refused:
            await client.ref(account, "ann").ask(OpenAccount(owner="x" * 1_100_000), timeout=10)
        assert refused.value.what == "routed command"
        assert refused.value.size > refused.value.limit


async def test_a_failing_member_announcement_does_not_cost_the_leases(
    nats_url: str, name: str, store: SQLiteEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Runtime(store, [account], cluster=settings(nats_url, name, "a")) as runtime:
        node = runtime._cluster
        assert node is not None
        await wait_until(lambda: len(serving(runtime)) == SHARDS, 20, what="serving every shard")

        async def refuse(self: Membership, shards: int, partitions: int) -> None:
            raise TimeoutError("the members bucket is slow")

        monkeypatch.setattr(Membership, "announce", refuse)
        renewed_at = node.book.held["shard.0"].revision
        await wait_until(
            lambda: "shard.0" not in node.book.held or node.book.held["shard.0"].revision > renewed_at + 3,
            20,
            what="three more renewals, or the lease lost",
        )
        assert len(serving(runtime)) == SHARDS  # renewed although every announcement failed


async def test_commands_asked_together_share_messages_and_each_caller_gets_its_own_answer(
    nats_url: str, name: str, store: SQLiteEventStore
) -> None:
    async with (
        Runtime(store, [account], cluster=settings(nats_url, name, "m")) as member,
        Runtime(store, [account], cluster=settings(nats_url, name, "c", role="client")) as client,
    ):
        await wait_until(lambda: len(serving(member)) == SHARDS, 20, what="serving every shard")
        ann = client.ref(account, "ann")
        await ann.ask(OpenAccount(owner="Ann"), timeout=10)
        node = client._cluster
        assert node is not None
        assert node.router is not None
        batcher = node.router.batcher
        sent_before = batcher.messages
        results: dict[int, object] = {}

        async def one(i: int) -> None:
            try:
                results[i] = await ann.ask(Debit(10_000) if i == 7 else Credit(1), timeout=10)
            except InsufficientFunds as exc:
                results[i] = exc

        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(one, i)
        assert isinstance(results.pop(7), InsufficientFunds)  # its own rejection, in a shared message
        versions = sorted(outcome.version for outcome in results.values())  # type: ignore[attr-defined]
        assert versions == list(range(2, 51))
        assert batcher.messages - sent_before < 50  # some commands shared a message
    state, _ = await replayed_account(store, "ann")
    assert state.balance == 49
