"""The bank web example as users deploy it: `uvicorn --workers 3` with the cluster on (PostgreSQL, NATS).

Every worker is a node; each account lives in one of them and the others route its commands there.
Under concurrent HTTP load nothing acknowledged is lost, nothing is applied twice, and no worker ever
meets a version conflict (which is what two workers holding the same account would produce).
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from actorsrc.cluster import Cluster
from actorsrc.cluster.status import read_status
from actorsrc.store.postgres import PostgresEventStore
from examples.bank import account
from tests.nats_support import free_port, require_nats
from tests.postgres_support import fresh_schema, require_postgres

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 3
SHARDS = 32
ACCOUNTS = 20
CREDITS = 600
CONCURRENCY = 40  # requests in flight at once


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    async for name in fresh_schema():
        yield name


@contextmanager
def serve(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    args = [sys.executable, "-m", "uvicorn", "--factory", "examples.bank.web:app_from_env"]
    args += ["--workers", str(WORKERS), "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()  # uvicorn's parent stops the workers; their lifespans hand the shards off
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _wait_for_cluster(cluster: Cluster, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until every worker is a member and every shard is leased by its rightful owner (no hand-off left)."""
    with anyio.fail_after(60):
        while True:
            if process.poll() is not None:
                raise AssertionError(f"uvicorn exited:\n{await anyio.Path(log).read_text()}")
            status = await read_status(cluster)
            served = sum(member.shards for member in status.members)
            if len(status.members) == WORKERS and len(status.shards) == SHARDS and served == SHARDS:
                settled = all(len(status.shards_of(m.node)) == m.shards for m in status.members)
                if settled:
                    return
            await anyio.sleep(0.1)


async def _request(client: httpx.AsyncClient, method: str, path: str, key: str, body: dict[str, object]) -> int:
    """Send until acknowledged: a 503 or 504 is retried with the same key, so it is applied at most once."""
    for _ in range(50):
        try:
            response = await client.request(method, path, json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError:
            continue
        if response.status_code < 500:
            return response.status_code
        await anyio.sleep(0.05)
    raise AssertionError(f"{method} {path} never acknowledged")


async def test_three_workers_share_the_accounts_and_lose_nothing(tmp_path: Path, schema: str) -> None:
    nats, dsn = require_nats(), require_postgres()
    name = f"t{uuid.uuid4().hex[:10]}"
    port, log = free_port(), tmp_path / "uvicorn.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BANK_NATS": nats,
        "BANK_CLUSTER": name,
        "BANK_PG": dsn,
        "BANK_PG_SCHEMA": schema,
        "BANK_LOG": "info",
    }
    env["BANK_SHARDS"] = str(SHARDS)
    cluster = Cluster(nats=nats, name=name, node_id="test-view", role="client")  # only to read its status
    accounts = [f"acc{i}" for i in range(ACCOUNTS)]
    credited = dict.fromkeys(accounts, 0)
    counts = dict.fromkeys(accounts, 0)
    keys: set[str] = set()
    rng = random.Random(12)
    with serve(env, port, log) as process:
        await _wait_for_cluster(cluster, process, log)
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:
            for account_id in accounts:
                code = await _request(client, "POST", f"/accounts/{account_id}", f"open-{account_id}", {"owner": "x"})
                assert code == 201

            semaphore = asyncio.Semaphore(CONCURRENCY)

            async def credit(n: int) -> None:
                account_id, amount, key = rng.choice(accounts), rng.randint(1, 100), f"c{n}-{uuid.uuid4().hex}"
                async with semaphore:
                    assert (
                        await _request(client, "POST", f"/accounts/{account_id}/credits", key, {"amount": amount})
                        == 200
                    )
                credited[account_id] += amount
                counts[account_id] += 1
                keys.add(key)

            await asyncio.gather(*(credit(n) for n in range(CREDITS)))
            for account_id in accounts:
                response = await client.get(f"/accounts/{account_id}")
                assert response.status_code == 200
                found = response.json()
                assert (found["balance"], found["version"]) == (credited[account_id], 1 + counts[account_id])
    output = log.read_text()
    assert output.count("cluster.joined") == WORKERS, output
    assert "actor.conflict" not in output, output
    # From the store: each credit applied exactly once (its key is its command id), versions gapless.
    async with PostgresEventStore.open(dsn, schema=schema) as store:
        seen: list[str] = []
        for account_id in accounts:
            events = await store.read_stream(account.stream_id(account_id))
            assert [e.version for e in events] == list(range(1, len(events) + 1))
            seen += [e.metadata.command_id or "" for e in events if e.type == "AccountCredited"]
    assert len(seen) == CREDITS
    assert set(seen) == keys
