"""The bank web example as users deploy it: `uvicorn --workers 1` against `--workers 2`, with and without
the cluster, under `wrk -t1 -c100 -d8s` posting credits of 1 to 20 hot accounts (issue 12, "Measure").

Configurations (each a fresh database and, with the cluster, a fresh cluster name):

- ``sqlite``: no cluster, one SQLite file shared by the workers (the issue's baseline: with two workers
  both hold the same accounts and fight over the file and the expected versions);
- ``cluster-pg``: the cluster on (NATS), PostgreSQL as the store: each account lives in one worker;
- ``pg``: no cluster, PostgreSQL (what the cluster adds over the same store), with ``--with-pg``.

Rounds are interleaved (every configuration and worker count once per round), and each run is checked:
the sum of balances must be at least the acknowledged (2xx) credits (nothing lost); the excess is credits
applied whose reply wrk never read (in flight when it stopped), at most the connection count.

    python -m benchmarks.http_cluster --rounds 3 --nats nats://127.0.0.1:4222 --pg postgresql://...@127.0.0.1/db
    # or with ACTORSRC_TEST_NATS / ACTORSRC_TEST_POSTGRES set, e.g.:
    bash .ci/with-postgres bash .ci/with-nats .venv/bin/python -m benchmarks.http_cluster

Needs wrk (``apt-get install -y wrk``, done here if missing), the ``web`` and ``cluster`` extras.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from actorsrc.cluster import Cluster
from actorsrc.cluster.status import read_status

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = 20
WRK_SCRIPT = """
local paths = {}
for i = 0, %(accounts)d - 1 do paths[i + 1] = "/accounts/hot" .. i .. "/credits" end
local n = 0
ok = 0
wrk.method = "POST"
wrk.body = '{"amount": 1}'
wrk.headers["Content-Type"] = "application/json"
local threads = {}
setup = function(thread) table.insert(threads, thread) end
request = function()
  n = n + 1
  return wrk.format(nil, paths[(n %% %(accounts)d) + 1])
end
response = function(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 end
end
done = function(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("ok") end
  io.write(string.format("OK2XX %%d\\n", total))
end
"""


@dataclass
class Run:
    config: str
    workers: int
    rate: float
    acknowledged: int
    non_2xx: int
    balances: int

    @property
    def lost(self) -> int:
        return max(0, self.acknowledged - self.balances)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed and apt-get could not install it")
    return found


@contextmanager
def uvicorn(env: dict[str, str], workers: int, port: int) -> Iterator[subprocess.Popen[bytes]]:
    args = [sys.executable, "-m", "uvicorn", "--factory", "examples.bank.web:app_from_env", "--workers", str(workers)]
    args += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]
    process = subprocess.Popen(args, cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)})
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_ready(port: int, process: subprocess.Popen[bytes], cluster: Cluster | None, workers: int) -> None:
    """Until HTTP answers and, with the cluster, every worker is a member and the shards are settled."""
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        while True:
            if process.poll() is not None:
                raise SystemExit("uvicorn exited early")
            if time.monotonic() > deadline:
                raise SystemExit("the app did not become ready within 90 s")
            try:
                ready = (await client.get("/accounts/none")).status_code == 404
            except httpx.TransportError:
                ready = False
            if ready and cluster is not None:
                status = await read_status(cluster)
                served = sum(m.shards for m in status.members)
                ready = len(status.members) == workers and served == cluster.shards == len(status.shards)
                ready = ready and all(len(status.shards_of(m.node)) == m.shards for m in status.members)
            if ready:
                return
            await asyncio.sleep(0.2)


async def open_accounts(port: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for i in range(ACCOUNTS):
            for _ in range(5):  # a 503/504 is retried under the same key: opened once whatever happened
                headers = {"Idempotency-Key": f"open-hot{i}"}
                response = await client.post(f"/accounts/hot{i}", json={"owner": "bench"}, headers=headers)
                if response.status_code < 500:
                    break
                print(f"opening hot{i}: {response.status_code} {response.text}; retrying", file=sys.stderr)
            if response.status_code != 201:
                raise SystemExit(f"opening hot{i}: {response.status_code} {response.text}")


async def sum_balances(port: int) -> int:
    total = 0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for i in range(ACCOUNTS):
            response = await client.get(f"/accounts/hot{i}")
            response.raise_for_status()
            total += int(response.json()["balance"])
    return total


def run_wrk(wrk: str, script: Path, port: int, connections: int, seconds: int) -> tuple[float, int, int]:
    """(requests/s, 2xx count, non-2xx count)."""
    args = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), f"http://127.0.0.1:{port}"]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    ok = re.search(r"OK2XX (\d+)", out)
    if rate is None or ok is None:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return float(rate.group(1)), int(ok.group(1)), int(bad.group(1)) if bad else 0


async def drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def one_run(args: argparse.Namespace, wrk: str, script: Path, tmp: Path, config: str, workers: int) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANK_")}
    cluster = None
    schema = f"http_{uuid.uuid4().hex[:10]}"
    if config == "sqlite":
        env["BANK_DB"] = str(tmp / f"{uuid.uuid4().hex[:8]}.db")
    else:
        env.update(BANK_PG=args.pg, BANK_PG_SCHEMA=schema)
    if config.startswith("cluster"):
        name = f"http{uuid.uuid4().hex[:8]}"
        env.update(BANK_NATS=args.nats, BANK_CLUSTER=name, BANK_SHARDS=str(args.shards))
        cluster = Cluster(nats=args.nats, name=name, node_id="bench-view", role="client", shards=args.shards)
    port = free_port()
    try:
        with uvicorn(env, workers, port) as process:
            asyncio.run(wait_ready(port, process, cluster, workers))
            asyncio.run(open_accounts(port))
            rate, ok, bad = run_wrk(wrk, script, port, args.connections, args.seconds)
            balances = asyncio.run(sum_balances(port))
    finally:
        if config != "sqlite":
            asyncio.run(drop_schema(args.pg, schema))
    return Run(config, workers, rate, ok, bad, balances)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nats", default=os.environ.get("ACTORSRC_TEST_NATS"), help="default: $ACTORSRC_TEST_NATS")
    parser.add_argument(
        "--pg", default=os.environ.get("ACTORSRC_TEST_POSTGRES"), help="default: $ACTORSRC_TEST_POSTGRES"
    )
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--shards", type=int, default=256)
    parser.add_argument("--with-pg", action="store_true", help="also PostgreSQL without the cluster")
    args = parser.parse_args()
    if not args.nats or not args.pg:
        parser.error("needs a NATS URL (--nats or ACTORSRC_TEST_NATS) and PostgreSQL (--pg or ACTORSRC_TEST_POSTGRES)")
    wrk = ensure_wrk()
    configs = ["sqlite", "cluster-pg", *(["pg"] if args.with_pg else [])]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="actorsrc-http-") as directory:
        tmp = Path(directory)
        script = tmp / "credits.lua"
        script.write_text(WRK_SCRIPT % {"accounts": ACCOUNTS})
        for round_ in range(1, args.rounds + 1):
            for config in configs:
                for workers in (1, 2):
                    run = one_run(args, wrk, script, tmp, config, workers)
                    runs.append(run)
                    print(
                        f"round {round_} {config:10} workers={workers} {run.rate:8,.0f} req/s  2xx={run.acknowledged}"
                        f" non-2xx={run.non_2xx} sum of balances={run.balances} lost={run.lost}",
                        file=sys.stderr,
                        flush=True,
                    )
    return report(runs, configs, args.connections)


def report(runs: list[Run], configs: list[str], connections: int) -> int:
    print(f"{'config':12} {'workers':>7} {'median req/s':>13} {'min':>8} {'max':>8}   2-vs-1 (median; per round)")
    for config in configs:
        rates = {w: [r.rate for r in runs if r.config == config and r.workers == w] for w in (1, 2)}
        per_round = [two / one for one, two in zip(rates[1], rates[2], strict=True)]
        for workers in (1, 2):
            found = rates[workers]
            line = (
                f"{config:12} {workers:>7} {statistics.median(found):>13,.0f} {min(found):>8,.0f} {max(found):>8,.0f}"
            )
            if workers == 2:
                ratio = statistics.median(rates[2]) / statistics.median(rates[1])
                line += f"   {ratio:.2f}x; " + ", ".join(f"{r:.2f}" for r in per_round)
            print(line)
    lost = sum(r.lost for r in runs)
    excess = max(r.balances - r.acknowledged for r in runs)
    print(
        f"nothing lost: {'yes' if lost == 0 else f'NO ({lost} acknowledged credits missing)'};"
        f" most credits applied without a reply read (in flight when wrk stopped): {excess} (<= {connections})"
    )
    return 0 if lost == 0 and excess <= connections else 1


if __name__ == "__main__":
    sys.exit(main())
