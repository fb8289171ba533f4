"""The read side in a cluster (real NATS + PostgreSQL read model): each projection runs once per cluster,
split into partitions by slices of the log, leased like shards, each with a fenced checkpoint."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from actorsrc import EventEnvelope, ProcessManager, Projection, Runtime, Send, SQLiteEventStore, SQLiteReadModel
from actorsrc.cluster import Cluster
from actorsrc.cluster.partitions import partition_key
from actorsrc.cluster.placement import assignment
from actorsrc.errors import ConfigurationError, WaitTimeoutError
from actorsrc.hashing import slice_of
from actorsrc.readmodel.base import Checkpoint, CheckpointFencedError
from actorsrc.readmodel.postgres import PostgresReadModel
from actorsrc.runtime.subscription_partition import PartitionSpec
from examples.bank import AccountCredited, AccountOpened, Credit, OpenAccount, account
from tests.helpers import wait_until
from tests.nats_support import require_nats
from tests.postgres_support import fresh_schema, require_postgres

PARTITIONS = 4


async def _setup(db: Any) -> None:
    await db.execute("CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, balance BIGINT NOT NULL)")
    await db.execute("CREATE TABLE IF NOT EXISTS seen (position BIGINT NOT NULL, stream TEXT NOT NULL)")


async def _reset(db: Any) -> None:
    await db.execute("DROP TABLE IF EXISTS balances; DROP TABLE IF EXISTS seen")


async def _handle(db: Any, envelope: EventEnvelope[Any]) -> None:
    await db.execute("INSERT INTO seen (position, stream) VALUES ($1, $2)", envelope.position, envelope.stream_id)
    amount = envelope.event.amount if isinstance(envelope.event, AccountCredited) else 0
    await db.execute(
        "INSERT INTO balances (account, balance) VALUES ($1, $2)"
        " ON CONFLICT (account) DO UPDATE SET balance = balances.balance + excluded.balance",
        envelope.stream_id,
        amount,
    )


balances = Projection(name="balances", handle=_handle, setup=_setup, reset=_reset, aggregates=[account], batch_size=7)


def settings(url: str, name: str, node: str) -> Cluster:
    return Cluster(nats=url, name=name, node_id=node, lease_ttl=2.0, shards=16, partitions=PARTITIONS)


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


@pytest.fixture
async def read_model() -> AsyncIterator[PostgresReadModel]:
    dsn = require_postgres()
    async for schema in fresh_schema():
        async with PostgresReadModel.open(dsn, schema=schema) as model:
            yield model


def partition_of(account_id: str) -> int:
    slice_ = slice_of(account.stream_id(account_id))
    return next(p for p in range(PARTITIONS) if PartitionSpec(p, PARTITIONS).slices[1] > slice_)


def active(runtime: Runtime) -> set[int]:
    return {i for i, part in enumerate(runtime._read_side.partitions["balances"]) if part.active}


async def until_split(*runtimes: Runtime) -> None:
    """Every partition running on the node rendezvous hashing gives it to (and nowhere else)."""
    owners = assignment([partition_key("balances", p) for p in range(PARTITIONS)], [node_of(r) for r in runtimes])
    expected = [{int(key.rsplit(".", 1)[1]) for key in owners[node_of(r)]} for r in runtimes]
    await wait_until(
        lambda: [active(r) for r in runtimes] == expected, 20, what="the partitions split between the nodes"
    )


def node_of(runtime: Runtime) -> str:
    assert runtime._cluster is not None
    return runtime._cluster.cluster.node_id


async def seen_once(read_model: PostgresReadModel, store: SQLiteEventStore) -> None:
    """Every event of the log projected exactly once."""
    rows = await read_model.query("SELECT position, count(*) FROM seen GROUP BY position ORDER BY position")
    positions = [record.position for record in await store.read_all(0, 100_000)]
    assert [row[0] for row in rows] == positions
    assert {row[1] for row in rows} == {1}


async def open_and_credit(runtime: Runtime, ids: list[str], amount: int = 5) -> None:
    for account_id in ids:
        await runtime.ref(account, account_id).ask(OpenAccount(owner="x"), timeout=10)
        await runtime.ref(account, account_id).ask(Credit(amount), timeout=10)


async def test_three_nodes_project_each_event_once_and_equal_a_single_process_rebuild(
    nats_url: str, name: str, store: SQLiteEventStore, read_model: PostgresReadModel
) -> None:
    options: dict[str, Any] = {"handlers": [balances], "read_model": read_model}
    async with (
        Runtime(store, [account], cluster=settings(nats_url, name, "a"), **options) as a,
        Runtime(store, [account], cluster=settings(nats_url, name, "b"), **options) as b,
        Runtime(store, [account], cluster=settings(nats_url, name, "c"), **options) as c,
    ):
        await until_split(a, b, c)
        async with anyio.create_task_group() as tg:
            for n, runtime in enumerate((a, b, c)):
                tg.start_soon(open_and_credit, runtime, [f"acct{n}-{i}" for i in range(15)])
        head = await store.last_position()
        for runtime in (a, b, c):
            await runtime.wait_for(balances, head, timeout=20)
        await seen_once(read_model, store)

        statuses = [s for s in a.handler_statuses() if s.name == "balances"]
        assert sorted(str(s.partition) for s in statuses) == [f"{i}/{PARTITIONS}" for i in range(PARTITIONS)]
        assert {s.status for s in statuses} <= {"running", "elsewhere"}

        # ask(consistency=...) from a node that runs none of the partition of the account's stream.
        assert active(a) != set(range(PARTITIONS))
        target = next(f"t{i}" for i in range(1000) if partition_of(f"t{i}") not in active(a))
        await b.ref(account, target).ask(OpenAccount(owner="x"), timeout=10)
        await b.ref(account, target).ask(Credit(5), timeout=10)
        await a.ref(account, target).ask(Credit(1000), consistency=[balances], timeout=20)
        rows = await read_model.query("SELECT balance FROM balances WHERE account = $1", account.stream_id(target))
        assert rows == [(1005,)]
        expected = await read_model.query("SELECT account, balance FROM balances ORDER BY account")

    # The same log projected by one process without a cluster gives the same table.
    async for schema in fresh_schema():
        async with (
            PostgresReadModel.open(require_postgres(), schema=schema) as single,
            Runtime(store, [account], handlers=[balances], read_model=single) as alone,
        ):
            await alone.wait_for(balances, await store.last_position(), timeout=20)
            assert await single.query("SELECT account, balance FROM balances ORDER BY account") == expected


async def test_a_leaving_node_hands_its_partitions_over_and_nothing_is_lost_or_doubled(
    nats_url: str, name: str, store: SQLiteEventStore, read_model: PostgresReadModel
) -> None:
    options: dict[str, Any] = {"handlers": [balances], "read_model": read_model}
    async with Runtime(store, [account], cluster=settings(nats_url, name, "a"), **options) as a:
        b = await Runtime(store, [account], cluster=settings(nats_url, name, "b"), **options).__aenter__()
        try:
            await until_split(a, b)
            assert active(b)
            await open_and_credit(b, [f"x{i}" for i in range(40)])
        except BaseException:
            await b.__aexit__(None, None, None)
            raise
        # b leaves (its partitions finish the batch in hand, then release their leases) while a writes.
        async with anyio.create_task_group() as tg:
            tg.start_soon(open_and_credit, a, [f"y{i}" for i in range(40)])
            tg.start_soon(b.__aexit__, None, None, None)
        assert not active(b)
        await wait_until(lambda: active(a) == set(range(PARTITIONS)), 20, what="a runs every partition")
        await a.wait_for(balances, await store.last_position(), timeout=20)
        await seen_once(read_model, store)
        rows = await read_model.query("SELECT count(*), sum(balance) FROM balances")
        assert rows == [(80, 400)]


async def test_the_checkpoint_fence_refuses_a_stale_partition_owner(
    nats_url: str, name: str, store: SQLiteEventStore, read_model: PostgresReadModel
) -> None:
    options: dict[str, Any] = {"handlers": [balances], "read_model": read_model}
    async with Runtime(store, [account], cluster=settings(nats_url, name, "a"), **options) as a:
        await until_split(a)
        target = "fenced"
        index = partition_of(target)
        part = a._read_side.partitions["balances"][index]
        assert part.fence is not None
        # A newer owner (as after this node paused past its lease) claims the partition's checkpoint.
        await read_model.claim_checkpoint(part.checkpoint_name, part.fence + 1)
        await a.ref(account, target).ask(OpenAccount(owner="x"), timeout=10)
        stale = part.fence
        await wait_until(lambda: part.fence != stale and part.active, 20, what="the partition retaken")
        # The stale owner wrote nothing; the node retakes the lease (a newer token) and projects it once.
        await a.wait_for(balances, await store.last_position(), timeout=20)
        await seen_once(read_model, store)
        with pytest.raises(CheckpointFencedError, match="nothing written"):
            await read_model.claim_checkpoint(part.checkpoint_name, 1)


async def test_wait_for_names_the_partitions_behind_and_rebuild_is_refused_in_a_cluster(
    nats_url: str, name: str, store: SQLiteEventStore, read_model: PostgresReadModel
) -> None:
    options: dict[str, Any] = {"handlers": [balances], "read_model": read_model}
    async with Runtime(store, [account], cluster=settings(nats_url, name, "a"), **options) as a:
        await until_split(a)
        await a.ref(account, "w").ask(OpenAccount(owner="x"), timeout=10)
        with pytest.raises(WaitTimeoutError, match=r"balances#p\d+of4 at \d+"):
            await a.wait_for(balances, 10_000, timeout=0.2)
        with pytest.raises(ConfigurationError, match="rebuilding 'balances' in a cluster is not supported"):
            await a.rebuild(balances)


async def test_a_client_node_waits_on_partitions_it_never_runs(
    nats_url: str, name: str, store: SQLiteEventStore, read_model: PostgresReadModel
) -> None:
    options: dict[str, Any] = {"handlers": [balances], "read_model": read_model}
    client = Cluster(nats=nats_url, name=name, node_id="web", lease_ttl=2.0, shards=16, partitions=4, role="client")
    async with (
        Runtime(store, [account], cluster=settings(nats_url, name, "a"), **options) as a,
        Runtime(store, [account], cluster=client, **options) as web,
    ):
        await until_split(a)
        await web.ref(account, "c1").ask(OpenAccount(owner="x"), timeout=10)
        await web.ref(account, "c1").ask(Credit(7), consistency=[balances], timeout=20)
        assert await read_model.query("SELECT balance FROM balances") == [(7,)]
        assert not active(web)
        assert {s.status for s in web.handler_statuses()} == {"elsewhere"}


def test_partition_lease_keys_are_kv_safe_and_distinct() -> None:
    keys = {partition_key(handler, p) for handler in ("a.b", "a_b", "ünï code/x", "x" * 200) for p in range(3)}
    assert len(keys) == 12
    assert all(
        key.startswith("part.") and key.replace("-", "").replace("_", "").replace(".", "").isalnum() for key in keys
    )


async def test_fenced_checkpoints_on_sqlite(tmp_path: Path) -> None:
    def plain(db: Any, envelope: EventEnvelope[Any]) -> None:
        return None

    projection = Projection(name="p", handle=plain, aggregates=[account])
    async with SQLiteReadModel.open(tmp_path / "read.db") as model:
        assert await model.claim_checkpoint("p#p0of2", 5) == 0
        await model.project(projection, [], Checkpoint("p#p0of2", 3, 0, 5))
        with pytest.raises(CheckpointFencedError):
            await model.project(projection, [], Checkpoint("p#p0of2", 9, 3, 4))
        with pytest.raises(CheckpointFencedError):
            await model.claim_checkpoint("p#p0of2", 4)
        assert await model.claim_checkpoint("p#p0of2", 6) == 3
        assert await model.partition_checkpoints("p") == {"p#p0of2": 3, "p#p0of2#fence": 6}
        await model.reset("p", projection)
        assert await model.checkpoint("p#p0of2") == 0
        assert await model.claim_checkpoint("p#p0of2", 1) == 0  # the fence went with the reset


async def test_a_read_model_that_cannot_fence_is_refused_in_a_cluster(
    nats_url: str, name: str, store: SQLiteEventStore, read_model: PostgresReadModel
) -> None:
    class Unfenced:  # everything a ReadModel has but claim_checkpoint
        def __getattr__(self, attribute: str) -> Any:
            if attribute == "claim_checkpoint":
                raise AttributeError(attribute)
            return getattr(read_model, attribute)

    with pytest.raises(ConfigurationError, match="claim_checkpoint"):
        Runtime(store, [account], handlers=[balances], read_model=Unfenced(), cluster=settings(nats_url, name, "a"))


async def test_a_changed_partition_count_or_leaving_the_cluster_is_refused_until_rebuilt(
    nats_url: str, name: str, store: SQLiteEventStore, read_model: PostgresReadModel
) -> None:
    options: dict[str, Any] = {"handlers": [balances], "read_model": read_model}
    async with Runtime(store, [account], cluster=settings(nats_url, name, "a"), **options) as a:
        await until_split(a)
        await open_and_credit(a, ["l1", "l2"])
        await a.wait_for(balances, await store.last_position(), timeout=20)
    other = Cluster(nats=nats_url, name=f"{name}x", node_id="b", lease_ttl=2.0, shards=16, partitions=2)
    async with Runtime(store, [account], cluster=other, **options) as b:
        await wait_until(lambda: all(s.status == "stopped" for s in b.handler_statuses()), 20, what="refused")
        reason = b.handler_statuses()[0].stop_reason or ""
        assert "another number of partitions" in reason
        assert "balances#p0of4" in reason
    async with Runtime(store, [account], **options) as alone:
        await wait_until(lambda: alone.handler_statuses()[0].status == "stopped", 20, what="refused")
        assert "ran as partitions in a cluster" in (alone.handler_statuses()[0].stop_reason or "")
        await alone.rebuild(balances)  # starts it over here, the partitions' checkpoints gone
        await seen_once(read_model, store)


def _welcome_bonus(state: int, envelope: EventEnvelope[Any]) -> tuple[int, list[Send]]:
    return state + 1, [Send(account, envelope.stream_id.removeprefix("account-"), Credit(5))]


bonus = ProcessManager(
    name="bonus", key=lambda e: e.stream_id, initial=0, react=_welcome_bonus, events={"AccountOpened": AccountOpened}
)


async def test_a_process_manager_runs_as_one_partition_on_one_node(
    nats_url: str, name: str, store: SQLiteEventStore, read_model: PostgresReadModel
) -> None:
    options: dict[str, Any] = {"handlers": [balances, bonus], "read_model": read_model}
    async with (
        Runtime(store, [account], cluster=settings(nats_url, name, "a"), **options) as a,
        Runtime(store, [account], cluster=settings(nats_url, name, "b"), **options) as b,
    ):
        runs = [[part.active for part in r._read_side.partitions["bonus"]] for r in (a, b)]
        await wait_until(
            lambda: sorted(part.active for r in (a, b) for part in r._read_side.partitions["bonus"]) == [False, True],
            20,
            what="the process manager running on one node",
        )
        assert all(len(parts) == 1 for parts in runs)
        ids = [f"pm{i}" for i in range(10)]
        for i, account_id in enumerate(ids):
            opened = await (a, b)[i % 2].ref(account, account_id).ask(OpenAccount(owner="x"), timeout=10)
            await (b, a)[i % 2].wait_for(bonus, opened.position, timeout=20)
        for account_id in ids:
            assert (await a.ref(account, account_id).state()).balance == 5
        assert [s.partition for s in a.handler_statuses() if s.name == "bonus"] == ["0/1"]
