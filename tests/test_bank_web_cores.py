"""The bank web example on one machine's cores: `uvicorn --workers 2` with ``BANK_CORES`` set.

Each worker claims a part of the directory and owns the accounts placed on it (in the part's own SQLite
file); a request that reaches the other worker is routed to the owner over its Unix socket. Under
concurrent HTTP load for many accounts, every acknowledged deposit is in the balances, once.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from actorsrc import SQLiteEventStore
from actorsrc.cores import Cores, part_of
from actorsrc.errors import ConfigurationError, NoFreePartError
from examples.bank import account
from examples.bank.web import cores_from_env, create_app
from tests.nats_support import free_port

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 2
ACCOUNTS = 40
CREDITS = 800
CONCURRENCY = 40  # requests in flight at once


@contextmanager
def serve(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    args = [sys.executable, "-m", "uvicorn", "--factory", "examples.bank.web:app_from_env"]
    args += ["--workers", str(WORKERS), "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()  # uvicorn's parent stops the workers; their lifespans release their parts
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _wait_for_workers(cores: Cores, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until every part is served (its socket is up) and HTTP answers."""
    with anyio.fail_after(60):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"uvicorn exited:\n{await anyio.Path(log).read_text()}")
                if all(cores.socket_path(part).exists() for part in range(cores.count)):
                    try:
                        if (await client.get("/accounts/nobody")).status_code == 404:
                            return
                    except httpx.TransportError:
                        pass
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


async def test_two_uvicorn_workers_on_cores_keep_every_acknowledged_deposit(tmp_path: Path) -> None:
    cores = Cores(tmp_path / "cores", WORKERS)
    port, log = free_port(), tmp_path / "uvicorn.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BANK_CORES": str(cores.directory),
        "BANK_CORES_COUNT": str(WORKERS),
        "BANK_LOG": "info",
    }
    env.pop("WEB_CONCURRENCY", None)
    accounts = [f"acc{i}" for i in range(ACCOUNTS)]
    assert {part_of(account.stream_id(a), WORKERS) for a in accounts} == set(range(WORKERS))
    credited = dict.fromkeys(accounts, 0)
    counts = dict.fromkeys(accounts, 0)
    keys: set[str] = set()
    rng = random.Random(13)
    with serve(env, port, log) as process:
        await _wait_for_workers(cores, port, process, log)
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:
            for account_id in accounts:
                code = await _request(client, "POST", f"/accounts/{account_id}", f"open-{account_id}", {"owner": "x"})
                assert code == 201

            semaphore = asyncio.Semaphore(CONCURRENCY)

            async def credit(n: int) -> None:
                account_id, amount, key = rng.choice(accounts), rng.randint(1, 100), f"c{n}-{uuid.uuid4().hex}"
                async with semaphore:
                    path = f"/accounts/{account_id}/credits"
                    assert await _request(client, "POST", path, key, {"amount": amount}) == 200
                credited[account_id] += amount
                counts[account_id] += 1
                keys.add(key)

            await asyncio.gather(*(credit(n) for n in range(CREDITS)))
            for account_id in accounts:  # any worker reads any account
                response = await client.get(f"/accounts/{account_id}")
                assert response.status_code == 200
                found = response.json()
                assert (found["balance"], found["version"]) == (credited[account_id], 1 + counts[account_id])
    output = log.read_text()
    started = [line for line in output.splitlines() if "cores.part_started" in line]
    assert sorted(line.split("part=")[1].split()[0] for line in started) == ["0", "1"], output
    assert "cores.connected" in output, output  # requests reached a worker that does not own their account
    # From the part files: each account's events only in its own part's, each credit once, versions gapless.
    seen: list[str] = []
    for part in range(WORKERS):
        async with SQLiteEventStore.open(cores.database_path(part)) as store:
            for account_id in accounts:
                events = await store.read_stream(account.stream_id(account_id))
                if part_of(account.stream_id(account_id), WORKERS) != part:
                    assert events == []
                    continue
                assert [e.version for e in events] == list(range(1, len(events) + 1))
                seen += [e.metadata.command_id or "" for e in events if e.type == "AccountCredited"]
    assert len(seen) == CREDITS
    assert set(seen) == keys


# -- in one process: the app's lifespan on a part, reads across parts, settings --------------------------


@asynccontextmanager
async def bank_on(cores: Cores, tmp_path: Path, **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(tmp_path / "unused.db", cores=cores, **options)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bank") as client,
    ):
        yield client


async def test_a_worker_routes_commands_and_reads_accounts_of_the_other_part(tmp_path: Path) -> None:
    cores = Cores(tmp_path / "cores", 2)
    theirs = next(f"a{i}" for i in range(1000) if part_of(account.stream_id(f"a{i}"), 2) == 1)
    async with bank_on(cores, tmp_path) as zero, bank_on(cores, tmp_path) as one:
        # The first app claimed part 0 (the first free one); `theirs` lives on part 1, in the other app.
        assert (await zero.post(f"/accounts/{theirs}", json={"owner": "Ada"})).status_code == 201
        assert (await zero.post(f"/accounts/{theirs}/credits", json={"amount": 70})).status_code == 200
        for client in (zero, one):
            response = await client.get(f"/accounts/{theirs}")
            assert response.status_code == 200
            assert (response.json()["balance"], response.json()["version"]) == (70, 2)
        response = await zero.post(f"/accounts/{theirs}/debits", json={"amount": 100})
        assert response.status_code == 409  # the owner's domain error, rebuilt on this side
        assert response.json()["error"] == "InsufficientFunds"
    async with SQLiteEventStore.open(cores.database_path(1)) as store:
        assert len(await store.read_stream(account.stream_id(theirs))) == 2
    async with SQLiteEventStore.open(cores.database_path(0)) as store:
        assert await store.read_stream(account.stream_id(theirs)) == []


async def test_on_a_shared_postgres_store_any_worker_reads_any_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.postgres_support import fresh_schema, require_postgres

    dsn = require_postgres()
    cores = Cores(tmp_path / "cores", 2)
    theirs = next(f"a{i}" for i in range(1000) if part_of(account.stream_id(f"a{i}"), 2) == 1)
    async for schema in fresh_schema():
        monkeypatch.setenv("BANK_PG_SCHEMA", schema)
        async with bank_on(cores, tmp_path, postgres=dsn) as zero, bank_on(cores, tmp_path, postgres=dsn) as one:
            assert (await zero.post(f"/accounts/{theirs}", json={"owner": "Ada"})).status_code == 201
            assert (await zero.post(f"/accounts/{theirs}/credits", json={"amount": 70})).status_code == 200
            for client in (zero, one):
                response = await client.get(f"/accounts/{theirs}")
                assert (response.json()["balance"], response.json()["version"]) == (70, 2)
        assert not list((tmp_path / "cores").glob("part-*-of-*.db"))  # one database, no part files


async def test_a_worker_beyond_the_part_count_does_not_start(tmp_path: Path) -> None:
    cores = Cores(tmp_path / "cores", 1)
    async with bank_on(cores, tmp_path):
        with pytest.raises(NoFreePartError, match="all 1 parts"):
            async with bank_on(cores, tmp_path):
                pass


def test_the_environment_sets_the_directory_and_count(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BANK_CORES", raising=False)
    assert cores_from_env() is None
    monkeypatch.setenv("BANK_CORES", str(tmp_path))
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.delenv("BANK_CORES_COUNT", raising=False)
    assert cores_from_env() == Cores(tmp_path, 3)  # as many parts as uvicorn starts workers
    monkeypatch.setenv("BANK_CORES_COUNT", "2")
    assert cores_from_env() == Cores(tmp_path, 2)
    monkeypatch.setenv("BANK_CORES_COUNT", "two")
    with pytest.raises(ConfigurationError, match=r"BANK_CORES_COUNT .* got 'two'"):
        cores_from_env()
    monkeypatch.setenv("BANK_CORES_COUNT", "0")
    with pytest.raises(ConfigurationError, match="got 0"):
        cores_from_env()


def test_cores_and_a_cluster_together_are_refused(tmp_path: Path) -> None:
    from actorsrc.cluster import Cluster

    with pytest.raises(ConfigurationError, match="cluster or on cores, not both"):
        create_app(tmp_path / "bank.db", cluster=Cluster(nats="nats://127.0.0.1:1", name="b"), cores=Cores(tmp_path))
