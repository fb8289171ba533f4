"""`actorsrc bench write --cluster N`: the write workload across 1..N node processes in one cluster.

Each measurement starts its node processes (a `Runtime` with `cluster=` on the same fresh PostgreSQL
schema and a fresh cluster name), waits until every shard is settled with its rightful owner, then lets
every process drive its share of the aggregates (``t{i}`` with ``i % N == k``) with its share of the
callers: most commands are routed to another node, as they are when any process may get any request.
With ``Plan.local_only`` every node drives just the aggregates whose shard it serves (nothing is routed):
the same store and CPU sharing without the routing, to tell the two costs apart.
Throughput is all commands over the wall time from the common start to the last process's end.

Rounds are interleaved (one process without the cluster, then 1, 2, ... N nodes, and again), and the
report gives each configuration's median with the spread, and per-ask latency split into asks served by
the caller's own node and asks routed to another (both measured under the same full load).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import statistics
import time
import uuid
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import anyio

from actorsrc.bench.children import next_report, running
from actorsrc.bench.stores import drop_schema, fresh_schema
from actorsrc.bench.workloads import Result, write

SHARDS = 64
LEASE_TTL = 5.0
SETTLE_TIMEOUT = 120.0


@dataclass(frozen=True)
class Plan:
    store_url: str
    nats: str
    aggregates: int
    commands: int
    callers: int
    events_per_command: int
    local_only: bool = False  # each node drives only aggregates whose shard it serves: no routing at all


@dataclass(frozen=True)
class NodeReport:
    started: float  # time.time() (the nodes are processes: wall clock, same machine)
    ended: float
    commands: int
    local_ms: list[float]
    routed_ms: list[float]


def _node_main(
    plan: Plan, schema: str, name: str, index: int, nodes: int, go: Event, done: Event, out: Queue[Any]
) -> None:
    """One node process: join, wait for go, drive its share, report, then wait to be told to leave."""
    try:
        out.put(anyio.run(_node, plan, schema, name, index, nodes, go, done, out, backend="asyncio"))
    except BaseException as exc:  # the parent must hear of it rather than wait for a report
        out.put(repr(exc))


async def _node(
    plan: Plan, schema: str, name: str, index: int, nodes: int, go: Event, done: Event, out: Queue[Any]
) -> None:
    from actorsrc import Runtime
    from actorsrc.bench.domain import Add, tally
    from actorsrc.cluster import Cluster
    from actorsrc.hashing import shard_of
    from actorsrc.store.postgres import PostgresEventStore

    cluster = Cluster(nats=plan.nats, name=name, node_id=f"n{index}", shards=SHARDS, lease_ttl=LEASE_TTL)
    async with (
        PostgresEventStore.open(plan.store_url, schema=schema) as store,
        Runtime(store, [tally], cluster=cluster) as runtime,
    ):
        out.put(("joined", index))
        await anyio.to_thread.run_sync(go.wait)
        node = runtime._cluster
        assert node is not None
        if plan.local_only:  # every aggregate goes to the one node that serves its shard
            refs = [runtime.ref(tally, f"t{i}") for i in range(plan.aggregates)]
        else:
            refs = [runtime.ref(tally, f"t{i}") for i in range(index, plan.aggregates, nodes)]
        tagged = [(ref, node.serves_shard(shard_of(tally.stream_id(ref.aggregate_id), SHARDS))) for ref in refs]
        if plan.local_only:
            tagged = [(ref, True) for ref, local in tagged if local]
        command = Add(plan.events_per_command)
        work = iter([pair for _ in range(plan.commands) for pair in tagged])  # shared: each ask goes out once
        local_ms: list[float] = []
        routed_ms: list[float] = []
        clock = time.perf_counter

        async def caller() -> None:
            for ref, is_local in work:
                sent = clock()
                await ref.ask(command)
                (local_ms if is_local else routed_ms).append((clock() - sent) * 1000)

        started = time.time()
        async with anyio.create_task_group() as tg:
            for _ in range(max(1, plan.callers // nodes)):
                tg.start_soon(caller)
        ended = time.time()
        out.put(NodeReport(started, ended, len(local_ms) + len(routed_ms), local_ms, routed_ms))
        await anyio.to_thread.run_sync(done.wait)


async def _settled(nats: str, name: str, nodes: int) -> None:
    """Until every node is a member and each serves exactly the shards it holds leases for (no hand-off left)."""
    from actorsrc.cluster import Cluster
    from actorsrc.cluster.status import read_status

    view = Cluster(nats=nats, name=name, node_id="bench-view", role="client", shards=SHARDS, lease_ttl=LEASE_TTL)
    with anyio.fail_after(SETTLE_TIMEOUT):
        while True:
            status = await read_status(view)
            counted = len(status.members) == nodes and len(status.shards) == SHARDS
            if counted and all(len(status.shards_of(m.node)) == m.shards for m in status.members):
                return
            await anyio.sleep(0.2)


async def measure_nodes(plan: Plan, nodes: int) -> tuple[float, list[float], list[float]]:
    """(commands/s, local ask latencies, routed ask latencies) with `nodes` node processes."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter each: nothing inherited from this loop
    go, done, out = context.Event(), context.Event(), context.Queue()
    schema, name = fresh_schema("bench_cluster"), f"bench{uuid.uuid4().hex[:10]}"
    processes = [
        context.Process(target=_node_main, args=(plan, schema, name, i, nodes, go, done, out), daemon=True)
        for i in range(nodes)
    ]
    wait = SETTLE_TIMEOUT + 600
    try:
        async with running(processes, done):
            for _ in range(nodes):
                await next_report(out, "joining", wait)
            await _settled(plan.nats, name, nodes)
            go.set()
            reports: list[NodeReport] = [await next_report(out, "driving its load", wait) for _ in range(nodes)]
    finally:
        await drop_schema(plan.store_url, schema)
    seconds = max(r.ended for r in reports) - min(r.started for r in reports)
    commands = sum(r.commands for r in reports)
    local = [ms for r in reports for ms in r.local_ms]
    routed = [ms for r in reports for ms in r.routed_ms]
    return commands / seconds, local, routed


def _spread(rates: list[float]) -> dict[str, Any]:
    return {"rounds": [round(r) for r in rates], "min": round(min(rates)), "max": round(max(rates))}


async def cluster_write(
    plan: Plan, directory: Path, max_nodes: int, rounds: int
) -> tuple[list[Result], dict[str, float], list[str]]:
    """Interleaved rounds: one process without the cluster, then 1..max_nodes nodes; medians and spreads."""
    single: list[float] = []
    rates: dict[int, list[float]] = {n: [] for n in range(1, max_nodes + 1)}
    unrouted: dict[int, list[float]] = {n: [] for n in rates if n > 1}  # each node drives only its own shards
    local: dict[int, list[float]] = {n: [] for n in rates}
    routed: dict[int, list[float]] = {n: [] for n in rates}
    total = plan.aggregates * plan.commands
    for _ in range(rounds):
        alone, _settings = await write(
            plan.store_url, directory, plan.aggregates, plan.commands, plan.callers, plan.events_per_command
        )
        single.append(alone.rate)
        for nodes in rates:
            rate, local_ms, routed_ms = await measure_nodes(plan, nodes)
            rates[nodes].append(rate)
            local[nodes] += local_ms
            routed[nodes] += routed_ms
            if nodes in unrouted:
                rate, _, _ = await measure_nodes(dataclasses.replace(plan, local_only=True), nodes)
                unrouted[nodes].append(rate)
    base = statistics.median(single)
    results = [Result("write", "1 process, no cluster", total, total / base, extra=_spread(single))]
    ratios: dict[str, float] = {}
    for nodes, found in rates.items():
        median = statistics.median(found)
        results.append(
            Result("write", f"cluster, {nodes} node process(es)", total, total / median, extra=_spread(found))
        )
        ratios[f"{nodes} node(s) / 1 process without cluster"] = median / base
        if unrouted.get(nodes):
            alone_median = statistics.median(unrouted[nodes])
            results.append(
                Result(
                    "write",
                    f"cluster, {nodes} node process(es), nothing routed",
                    total,
                    total / alone_median,
                    extra=_spread(unrouted[nodes]),
                )
            )
            ratios[f"{nodes} node(s), nothing routed / 1 process without cluster"] = alone_median / base
    for nodes in rates:
        for what, latencies in (("served by the caller's node", local[nodes]), ("routed", routed[nodes])):
            if latencies:
                row = Result("write", f"  ask {what}, {nodes} node(s)", 0, 0.0, latencies_ms=latencies)
                row.extra = {"asks": len(latencies)}  # a latency row: no throughput of its own
                results.append(row)
    if rates.get(2) and rates.get(1):
        ratios["2 nodes / 1 node (on this machine's cores)"] = statistics.median(rates[2]) / statistics.median(rates[1])
    notes = [
        f"cluster: {rounds} interleaved rounds; throughput = median (spread in --json), {SHARDS} shards, "
        f"lease_ttl {LEASE_TTL} s; every node process drives aggregates t{{i}} with i % N == its index, "
        f"with callers/N callers, so about (N-1)/N of its asks are routed",
        "ask latency rows: under the same full closed-loop load (queueing included), split by whether the "
        "aggregate's shard was the caller's own",
        "the node processes, PostgreSQL and NATS share this machine's cores",
        "'nothing routed' rows: each node drives only the aggregates whose shard it serves (the store's and the "
        "cores' share of the cost, without routing's)",
    ]
    return results, ratios, notes
