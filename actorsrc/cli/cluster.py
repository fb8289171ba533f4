"""`actorsrc cluster status`: members, shard leases with their fencing tokens, the read side's partition
leases, (with --store) the store's fences, and (with --read-model too) each partition's checkpoint and lag."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from actorsrc.errors import ClusterUnavailableError, ConfigurationError
from actorsrc.store.base import EventStore

if TYPE_CHECKING:  # nats-py (the cluster extra) is imported only when the command runs
    from actorsrc.cluster.status import ClusterStatus
    from actorsrc.readmodel.base import FencedCheckpoints

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNAVAILABLE = 2


def add_cluster(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("cluster", help="inspect a cluster of runtimes over NATS JetStream")
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    status = actions.add_parser("status", help="members, shards per member, leases with tokens, fences")
    status.add_argument("--nats", required=True, help="a NATS server of the cluster, nats://host:port")
    status.add_argument("--name", required=True, help="the cluster's name (Cluster(name=...))")
    status.add_argument("--store", default=None, help="the event store (postgresql://... or an SQLite file): fences")
    status.add_argument("--schema", default="actorsrc", help="the PostgreSQL store's schema (default: %(default)s)")
    status.add_argument(
        "--read-model", default=None, help="the read model (postgresql://... or an SQLite file): partitions' lag"
    )
    status.add_argument(
        "--read-schema", default="actorsrc_read", help="the PostgreSQL read model's schema (default: %(default)s)"
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--timeout", type=float, default=5.0, help="seconds to reach NATS (default: %(default)s)")
    status.set_defaults(handler=run_status)


@asynccontextmanager
async def _open_store(location: str, schema: str) -> AsyncIterator[EventStore]:
    if location.startswith(("postgresql://", "postgres://")):
        from actorsrc.store.postgres import PostgresEventStore

        async with PostgresEventStore.open(location, schema=schema, min_connections=1, max_connections=2) as pg:
            yield pg
        return
    from actorsrc import SQLiteEventStore

    async with SQLiteEventStore.open(location) as sqlite:
        yield sqlite


@asynccontextmanager
async def _open_read_model(location: str, schema: str) -> AsyncIterator[FencedCheckpoints]:
    if location.startswith(("postgresql://", "postgres://")):
        from actorsrc.readmodel.postgres import PostgresReadModel

        async with PostgresReadModel.open(location, schema=schema) as pg:
            yield pg
        return
    from actorsrc import SQLiteReadModel

    async with SQLiteReadModel.open(location) as sqlite:
        yield sqlite


def run_status(args: argparse.Namespace) -> int:
    from actorsrc.cluster.settings import Cluster
    from actorsrc.cluster.status import read_status

    if args.store is not None and "://" not in args.store and not Path(args.store).exists():
        print(f"actorsrc: no event store at {args.store!r} (opening it would create an empty one)", file=sys.stderr)
        return EXIT_FAILED
    try:
        cluster = Cluster(nats=args.nats, name=args.name, node_id="status", role="client")
    except ConfigurationError as exc:
        print(f"actorsrc: error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE

    if args.read_model is not None and "://" not in args.read_model and not Path(args.read_model).exists():
        print(f"actorsrc: no read model at {args.read_model!r}", file=sys.stderr)
        return EXIT_FAILED

    async def go() -> ClusterStatus:
        async with AsyncExitStack() as stack:
            store = (
                None if args.store is None else await stack.enter_async_context(_open_store(args.store, args.schema))
            )
            read_model = (
                None
                if args.read_model is None
                else await stack.enter_async_context(_open_read_model(args.read_model, args.read_schema))
            )
            return await read_status(cluster, store, args.timeout, read_model)

    try:
        status = anyio.run(go, backend="asyncio")
    except ClusterUnavailableError as exc:
        print(f"actorsrc: cluster unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.json:
        print(json.dumps(status.as_dict(), indent=2))
    else:
        print(render(status, args.nats))
    return EXIT_OK if status.found else EXIT_FAILED


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def render(status: ClusterStatus, where: str) -> str:
    if not status.found:
        return f"no cluster {status.name!r} on NATS at {where} (its buckets do not exist: no node ever joined)"
    shards = status.shards
    lines = [f"cluster {status.name!r}: {len(status.members)} member(s), {len(shards)} shard lease(s)"]
    lines.append(f"{'node':36} {'role':7} {'pid':>7} {'host':20} {'up':>8} {'served':>7} {'leased':>7} {'parts':>6}")
    now = time.time()
    for m in status.members:
        up = f"{max(0.0, now - m.started):.0f}s"
        leased = len(status.shards_of(m.node))
        lines.append(
            f"{m.node:36} {m.role:7} {m.pid:>7} {m.host[:20]:20} {up:>8} {m.shards:>7} {leased:>7} {m.partitions:>6}"
        )
    gone = status.unowned_holders()
    if gone:
        lines.append(f"leases held by nodes that are not members (they expire with the lease TTL): {', '.join(gone)}")
    lines.append("shard leases (shard:token):")
    for node in sorted({h.node for h in shards.values()}):
        pairs = " ".join(f"{s}:{shards[s].token}" for s in status.shards_of(node))
        lines.append(f"  {node}: {pairs}")
    if status.lags:
        lines.append("read-side partitions (handler#index: node, checkpoint, lag in events):")
        lines += [
            f"  {lag.handler}#{lag.index}: {lag.node}, checkpoint {_or_dash(lag.checkpoint)}, lag {_or_dash(lag.lag)}"
            for lag in status.lags
        ]
    elif status.partitions:
        lines.append("read-side partition leases:")
        lines += [f"  {h.label or h.key}: {h.node} (token {h.token})" for h in status.partitions]
    else:
        lines.append("read-side partition leases: none")
    if status.other_leases:
        lines.append("other leases: " + ", ".join(f"{h.key}={h.node}:{h.token}" for h in status.other_leases))
    if status.fences is not None:
        lines.append(f"store: last position {status.last_position}, {len(status.fences)} shard fence(s)")
        # A fence above the holder's token means that holder can no longer write (a newer lease existed).
        ahead = [s for s, fence in sorted(status.fences.items()) if s in shards and fence > shards[s].token]
        behind = [s for s in sorted(shards) if status.fences.get(s, 0) < shards[s].token]
        if ahead:
            lines.append(f"  fence above the lease's token (its holder is fenced out): shards {ahead}")
        if behind:
            lines.append(f"  fence not yet raised to the lease's token (being taken): shards {behind}")
    return "\n".join(lines)
