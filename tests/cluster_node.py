"""One cluster node as an OS process, for the multi-process cluster tests (tests/cluster_processes.py).

python -m tests.cluster_node --dsn DSN --schema SCHEMA --nats URL --cluster NAME --node-id ID
                             [--role member|client] --ack-file PATH

Opens `PostgresEventStore(DSN, schema=SCHEMA)` and runs the bank's `account` aggregate in a clustered
`Runtime` (lease_ttl=3, shards=64). Prints ``{"event": "ready", ...}`` on stdout once joined, then obeys
JSON lines on stdin, answering each with a JSON line on stdout that carries the request's "id":

- ``load``: commands from `tasks` concurrent tasks; ``open`` opens accounts ``prefix0 .. prefix{n-1}``
  of the range ``[lo, hi)``, else ``count`` credits of random amounts to random accounts of the range.
  Answers ``started`` at once and ``done`` (acked, errors by type) when finished or stopped. Every
  acknowledged command is appended to the ack file as one JSON line (one write, so it survives kill -9):
  ``{"a": account, "n": amount (0: opened), "v": version, "c": command id, "d": duplicate}``.
- ``stop_load``: stop issuing new commands of a load (its ``done`` follows once those in flight end).
- ``stats``: conflicts logged ("actor.conflict"), ConcurrencyErrors that reached a caller, the router's
  routed/retried counts, the shards served now, the tokens remembered, the shards whose lease was lost.
- ``stale_append``: append to a stream of `shard` through the node's fenced store view, which carries
  the token this node last held the shard with; answers the error type (or the version written).
- ``quit``: leave the cluster cleanly (shards handed off) and exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import uuid
from collections import Counter
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

from actorsrc import ANY, ConcurrencyError, NewEvent, Runtime
from actorsrc.cluster import Cluster
from actorsrc.hashing import shard_of
from actorsrc.records import Metadata, next_event_id
from actorsrc.recovery import codec_for
from actorsrc.store.postgres import PostgresEventStore
from examples.bank import AccountCredited, Credit, OpenAccount, account

LEASE_TTL = 3.0
SHARDS = 64

# Structlog events counted by name (the processor below), and the shards named by "cluster.lease_lost".
logged: Counter[str] = Counter()
lost_shards: set[int] = set()


def count_events(_logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    name = str(event_dict.get("event"))
    logged[name] += 1
    if name == "cluster.lease_lost":
        lost_shards.update(event_dict.get("shards", ()))
    if name.startswith("actor.") and method in ("debug", "info"):
        raise structlog.DropEvent  # counted; one line per actor's life would only cost CPU
    return event_dict


def configure_logging() -> None:
    # Counted first; then every line to stderr (the test keeps it in a file, for a failure's story).
    structlog.configure(
        processors=[count_events, structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class Load:
    """One `load` command: bounded concurrency, each acknowledged command written to the ack file."""

    def __init__(self, node: Node, request: dict[str, Any]) -> None:
        self.node = node
        self.id = str(request["id"])
        self.prefix = str(request.get("prefix", "acct-"))
        lo, hi = request["accounts"]
        self.lo, self.hi = int(lo), int(hi)
        self.open = bool(request.get("open", False))
        self.count = self.hi - self.lo if self.open else int(request.get("count", 0))
        self.tasks = int(request.get("tasks", 16))
        self.timeout = float(request.get("timeout", 20.0))
        self.rng = random.Random(f"{node.node_id}-{self.id}")
        self.issued = 0
        self.stopped = False
        self.acked = 0
        self.errors: Counter[str] = Counter()

    def next_command(self) -> tuple[str, OpenAccount | Credit, int] | None:
        if self.stopped or self.issued >= self.count:
            return None
        n = self.issued
        self.issued += 1
        if self.open:
            return f"{self.prefix}{self.lo + n}", OpenAccount("owner"), 0
        amount = self.rng.randrange(1, 100)
        return f"{self.prefix}{self.rng.randrange(self.lo, self.hi)}", Credit(amount), amount

    async def worker(self) -> None:
        runtime = self.node.runtime
        while (command := self.next_command()) is not None:
            account_id, body, amount = command
            command_id = f"{self.node.node_id}.{self.id}.{uuid.uuid4().hex[:12]}"
            try:
                outcome = await runtime.ref(account, account_id).ask(body, timeout=self.timeout, command_id=command_id)
            except Exception as exc:
                self.errors[type(exc).__name__] += 1
                if isinstance(exc, ConcurrencyError):
                    self.node.concurrency_errors += 1
                continue
            line = json.dumps({"a": account_id, "n": amount, "v": outcome.version, "c": command_id})
            os.write(self.node.ack_fd, (line + "\n").encode())  # one write: whole lines survive kill -9
            self.acked += 1

    async def run(self) -> None:
        await asyncio.gather(*(self.worker() for _ in range(self.tasks)))
        say({"id": self.id, "done": True, "acked": self.acked, "errors": dict(self.errors)})


class Node:
    def __init__(self, runtime: Runtime, node_id: str, ack_fd: int) -> None:
        self.runtime = runtime
        self.node_id = node_id
        self.ack_fd = ack_fd
        self.concurrency_errors = 0
        self.loads: dict[str, Load] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def obey(self, request: dict[str, Any]) -> bool:
        """Carry out one request; False after `quit`."""
        op = request.get("op")
        handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "load": self.load,
            "stop_load": self.stop_load,
            "stats": self.stats,
            "stale_append": self.stale_append,
        }
        if op == "quit":
            return False
        handler = handlers.get(str(op))
        if handler is None:
            say({"id": request.get("id"), "error": f"unknown op {op!r}"})
            return True
        result = handler(request)
        if asyncio.iscoroutine(result):
            result = await result
        say({"id": request.get("id"), **result})
        return True

    def load(self, request: dict[str, Any]) -> dict[str, Any]:
        load = self.loads[str(request["id"])] = Load(self, request)
        self.spawn(load.run())
        return {"started": True}

    def stop_load(self, request: dict[str, Any]) -> dict[str, Any]:
        load = self.loads[str(request["load"])]
        load.stopped = True
        return {"stopping": True, "acked": load.acked}

    def stats(self, _request: dict[str, Any]) -> dict[str, Any]:
        cluster = self.runtime._cluster
        assert cluster is not None
        assert cluster.router is not None
        assert cluster.server is not None
        serving = sorted(shard for shard in cluster.serving if cluster.serves_shard(shard))
        return {
            "conflicts": logged["actor.conflict"],
            "concurrency_errors": self.concurrency_errors,
            "routed": cluster.router.routed,
            "retried": cluster.router.retried,
            "served": cluster.server.served,
            "serving": len(serving),
            "serving_shards": serving,
            "desired": sorted(cluster._desired),
            "tokens": {str(shard): token for shard, token in cluster.tokens.items()},
            "lost_shards": sorted(lost_shards),
            "hosts": cluster.hosts,
            "acked": sum(load.acked for load in self.loads.values()),
            "errors": dict(sum((load.errors for load in self.loads.values()), Counter())),
            "logged": dict(logged),
        }

    async def stale_append(self, request: dict[str, Any]) -> dict[str, Any]:
        cluster = self.runtime._cluster
        assert cluster is not None
        shard = int(request["shard"])
        account_id = next(f"zombie-{i}" for i in range(100_000) if shard_of(f"account-zombie-{i}", SHARDS) == shard)
        stream_id = account.stream_id(account_id)
        _, token = cluster.fence_of(stream_id)
        serving = cluster.serves_shard(shard)
        kind, schema_version, data = codec_for(account).encode(AccountCredited(1))
        event = NewEvent(kind, data, Metadata(next_event_id(), f"stale-{uuid.uuid4().hex}"), schema_version)
        try:
            result = await cluster.actor_store.append(stream_id, [event], ANY)
        except Exception as exc:
            return {"error_type": type(exc).__name__, "message": str(exc), "token": token, "serving": serving}
        return {"error_type": None, "version": result.last_version, "token": token, "serving": serving}


async def read_requests() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def main(args: argparse.Namespace) -> None:
    configure_logging()
    ack_fd = os.open(args.ack_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    cluster = Cluster(
        nats=args.nats, name=args.cluster, node_id=args.node_id, role=args.role, lease_ttl=LEASE_TTL, shards=SHARDS
    )
    async with (
        PostgresEventStore.open(args.dsn, schema=args.schema) as store,
        Runtime(store, [account], cluster=cluster) as runtime,
    ):
        node = Node(runtime, args.node_id, ack_fd)
        say({"event": "ready", "node": args.node_id, "pid": os.getpid()})
        reader = await read_requests()
        while line := await reader.readline():  # EOF (the test went away) leaves as `quit` does
            if not await node.obey(json.loads(line)):
                break
        for load in node.loads.values():
            load.stopped = True
        await asyncio.gather(*node.tasks, return_exceptions=True)
    say({"event": "quit", "node": args.node_id})


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tests.cluster_node")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--nats", required=True)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--role", choices=("member", "client"), default="member")
    parser.add_argument("--ack-file", required=True)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
