"""`actorsrc cluster status`: a running cluster's members, shard leases with tokens, partition leases and
the store's fences; a clear error (exit 2) when NATS is unreachable or has no JetStream."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
import structlog

from actorsrc import EventEnvelope, Projection, Runtime, SQLiteEventStore, SQLiteReadModel
from actorsrc.cli import main
from actorsrc.cluster import Cluster
from actorsrc.cluster.leases import LeaseValue
from actorsrc.cluster.status import read_status
from actorsrc.errors import ClusterUnavailableError
from examples.bank import Credit, OpenAccount, account
from tests.helpers import wait_until
from tests.nats_support import free_port, private_nats_server, require_nats

SHARDS = 8


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    saved: dict[str, Any] = structlog.get_config()  # main() configures structlog process-wide
    yield
    structlog.configure(**saved)


def _name() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


async def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    # main() runs its own event loop: in a thread of its own, beside the test's runtime.
    code = await anyio.to_thread.run_sync(main, argv)
    out, err = capsys.readouterr()
    return code, out, err


async def test_status_lists_a_running_node_with_its_shards_tokens_and_fences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, name, node = require_nats(), _name(), f"n{uuid.uuid4().hex[:8]}"
    db = tmp_path / "events.db"
    cluster = Cluster(nats=url, name=name, node_id=node, lease_ttl=3, shards=SHARDS)
    async with SQLiteEventStore.open(db) as store, Runtime(store, [account], cluster=cluster) as runtime:
        node_state = runtime._cluster
        assert node_state is not None
        await wait_until(lambda: len(node_state.serving) == SHARDS, what="the node serves every shard")
        await runtime.ref(account, "ann").ask(OpenAccount("Ann"))
        await runtime.ref(account, "ann").ask(Credit(5))
        # A read-side partition lease, as the read side writes it, is listed generically.
        assert node_state.link is not None
        await node_state.link.leases.create("part.ledger.0", msgspec.json.encode(LeaseValue(node)))

        code, out, err = await _cli(["cluster", "status", "--nats", url, "--name", name, "--store", str(db)], capsys)
        assert code == 0, out + err
        assert f"cluster {name!r}: 1 member(s), {SHARDS} shard lease(s)" in out
        assert node in out
        tokens = " ".join(f"{s}:{lease.token}" for s, lease in sorted(node_state.serving.items()))
        assert f"  {node}: {tokens}" in out
        assert "part.ledger.0: " + node in out
        assert f"{SHARDS} shard fence(s)" in out
        assert "fenced out" not in out

        code, out, err = await _cli(
            ["cluster", "status", "--nats", url, "--name", name, "--store", str(db), "--json"], capsys
        )
        assert code == 0, err
        found = json.loads(out)
        [member] = found["members"]
        assert (member["node"], member["role"], member["shards_leased"]) == (node, "member", list(range(SHARDS)))
        assert {int(s): h["token"] for s, h in found["shards"].items()} == {
            s: lease.token for s, lease in node_state.serving.items()
        }
        assert {int(s): t for s, t in found["fences"].items()} == {
            s: lease.token for s, lease in node_state.serving.items()
        }
        assert found["partitions"] == [
            {"key": "part.ledger.0", "node": node, "token": found["partitions"][0]["token"], "label": ""}
        ]
        assert found["last_position"] == 2
        assert found["holders_not_members"] == []

    # After a clean leave: no members, no shard leases (the partition lease written by hand stays).
    status = await read_status(Cluster(nats=url, name=name, node_id="status"))
    assert status.found
    assert status.members == []
    assert status.shards == {}


async def test_status_of_a_cluster_that_never_ran(capsys: pytest.CaptureFixture[str]) -> None:
    url, name = require_nats(), _name()
    code, out, _ = await _cli(["cluster", "status", "--nats", url, "--name", name], capsys)
    assert code == 1
    assert f"no cluster {name!r}" in out


async def test_unreachable_nats_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    code, out, err = await _cli(["cluster", "status", "--nats", url, "--name", "bank", "--timeout", "2"], capsys)
    assert code == 2
    assert out == ""
    assert "cluster unavailable: cannot reach NATS at " + url in err
    with pytest.raises(ClusterUnavailableError, match="cannot reach NATS"):
        await read_status(Cluster(nats=url, name="bank", node_id="status"), timeout=2)


async def test_nats_without_jetstream_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with private_nats_server(jetstream=False) as url:
        code, _, err = await _cli(["cluster", "status", "--nats", url, "--name", "bank"], capsys)
    assert code == 2
    assert "has no JetStream (start nats-server with -js)" in err


async def test_bad_arguments_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = await _cli(["cluster", "status", "--nats", "http://x", "--name", "bank"], capsys)
    assert code == 2
    assert "nats= must be nats:// URLs, got 'http://x'" in err
    code, _, err = await _cli(["cluster", "status", "--nats", "nats://127.0.0.1:1", "--name", "a b"], capsys)
    assert code == 2
    assert "name= must be 1-64 letters" in err
    missing = tmp_path / "nope.db"
    code, _, err = await _cli(
        ["cluster", "status", "--nats", "nats://127.0.0.1:1", "--name", "b", "--store", str(missing)], capsys
    )
    assert code == 1
    assert f"no event store at {str(missing)!r}" in err
    assert not missing.exists()


def _count(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
    db.execute("INSERT INTO credits VALUES (?)", (envelope.stream_id,))


ledger = Projection(
    name="ledger",
    handle=_count,
    setup=lambda db: db.execute("CREATE TABLE IF NOT EXISTS credits (stream TEXT)"),
    aggregates=[account],
)


async def test_status_shows_each_partition_with_its_checkpoint_and_lag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, name, node = require_nats(), _name(), f"n{uuid.uuid4().hex[:8]}"
    db, read_db = tmp_path / "events.db", tmp_path / "read.db"
    cluster = Cluster(nats=url, name=name, node_id=node, lease_ttl=3, shards=SHARDS, partitions=2)
    async with (
        SQLiteEventStore.open(db) as store,
        SQLiteReadModel.open(read_db) as read_model,
        Runtime(store, [account], handlers=[ledger], read_model=read_model, cluster=cluster) as runtime,
    ):
        for i in range(6):
            outcome = await runtime.ref(account, f"a{i}").ask(OpenAccount("A"))
            await runtime.wait_for(ledger, outcome.position)
        argv = ["cluster", "status", "--nats", url, "--name", name, "--store", str(db), "--read-model", str(read_db)]
        code, out, err = await _cli(argv, capsys)
        assert code == 0, out + err
        assert "read-side partitions (handler#index: node, checkpoint, lag in events):" in out
        assert f"  ledger#0: {node}, checkpoint 6, lag 0" in out
        assert f"  ledger#1: {node}, checkpoint 6, lag 0" in out
        code, out, err = await _cli([*argv, "--json"], capsys)
        lags = json.loads(out)["partition_lag"]
        assert sorted((lag["handler"], lag["index"], lag["lag"]) for lag in lags) == [
            ("ledger", 0, 0),
            ("ledger", 1, 0),
        ]
