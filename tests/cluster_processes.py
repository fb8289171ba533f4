"""Cluster nodes as OS processes (tests/cluster_node.py) for the multi-process cluster tests, and the
checks those tests make on the PostgreSQL log afterwards.

`node_processes(...)` starts nodes on demand and kills every one of them on the way out, whatever
happened; `NodeProcess` talks to one node over its stdin/stdout (JSON lines) and sends it signals.
Every wait is bounded: a node that exits or stays silent fails the test with its stderr's tail.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
from anyio.abc import Process, TaskGroup
from anyio.streams.buffered import BufferedByteReceiveStream

from actorsrc.records import RecordedEvent
from actorsrc.recovery import codec_for
from actorsrc.store.postgres import PostgresEventStore
from examples.bank import AccountCredited, account
from tests.cluster_node import SHARDS

ROOT = Path(__file__).resolve().parent.parent
Message = dict[str, Any]
T = TypeVar("T")


class NodeExited(AssertionError):
    """The node's process ended (or closed its stdout) while the test waited for it."""


@dataclass
class NodeProcess:
    name: str
    role: str
    process: Process
    ack_file: Path
    log_file: Path
    messages: list[Message] = field(default_factory=list)
    changed: anyio.Event = field(default_factory=anyio.Event)
    exited: bool = False
    stopped: bool = False  # SIGSTOPped by the test (sent SIGCONT before a kill)

    async def read_forever(self) -> None:
        assert self.process.stdout is not None
        lines = BufferedByteReceiveStream(self.process.stdout)
        try:
            while True:
                line = await lines.receive_until(b"\n", 1 << 20)
                self.messages.append(json.loads(line))
                self.changed.set()
                self.changed = anyio.Event()
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        finally:
            self.exited = True
            self.changed.set()

    def log_tail(self, chars: int = 3000) -> str:
        text = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        return text[-chars:]

    async def wait_message(self, matches: Callable[[Message], bool], timeout: float, what: str) -> Message:
        """The first message (since the start) that `matches`; fails after `timeout` seconds."""
        checked = 0
        with anyio.move_on_after(timeout):
            while True:
                for message in self.messages[checked:]:
                    if matches(message):
                        return message
                checked = len(self.messages)
                if self.exited:
                    raise NodeExited(f"node {self.name} exited while the test waited for {what}:\n{self.log_tail()}")
                await self.changed.wait()
        raise AssertionError(f"node {self.name} sent no {what} within {timeout} s:\n{self.log_tail()}")

    async def send(self, op: str, **fields: Any) -> str:
        assert self.process.stdin is not None
        request_id = uuid.uuid4().hex[:12]
        line = json.dumps({"op": op, "id": request_id, **fields}) + "\n"
        await self.process.stdin.send(line.encode())
        return request_id

    async def request(self, op: str, timeout: float = 30.0, **fields: Any) -> Message:
        """Send `op` and return its (immediate) answer."""
        request_id = await self.send(op, **fields)
        return await self.wait_message(
            lambda m: m.get("id") == request_id and "done" not in m, timeout, f"an answer to {op}"
        )

    async def stats(self) -> Message:
        return await self.request("stats", timeout=20.0)

    async def start_load(self, **fields: Any) -> str:
        request_id = await self.send("load", **fields)
        await self.wait_message(lambda m: m.get("id") == request_id and "started" in m, 20.0, "a started load")
        return request_id

    async def load_done(self, load_id: str, timeout: float) -> Message:
        return await self.wait_message(
            lambda m: m.get("id") == load_id and m.get("done") is True, timeout, "a finished load"
        )

    async def stop_load(self, load_id: str, timeout: float) -> Message:
        await self.request("stop_load", load=load_id)
        return await self.load_done(load_id, timeout)

    async def quit(self, timeout: float = 30.0) -> None:
        """Leave the cluster cleanly and exit 0."""
        await self.send("quit")
        await self.wait_message(lambda m: m.get("event") == "quit", timeout, "its goodbye")
        with anyio.fail_after(timeout):
            code = await self.process.wait()
        assert code == 0, f"node {self.name} exited with {code}:\n{self.log_tail()}"

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)
        if sig == signal.SIGSTOP:
            self.stopped = True
        elif sig == signal.SIGCONT:
            self.stopped = False

    async def kill(self) -> None:
        """kill -9 (after SIGCONT if stopped, so it dies at once), and reap it (bounded)."""
        if self.process.returncode is None:
            if self.stopped:
                self.signal(signal.SIGCONT)
            self.process.kill()
        # Shielded from the test's own cancellation, but bounded: the time limit is inside the shield.
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            await self.process.wait()

    def acks(self) -> list[Message]:
        return read_acks(self.ack_file)


@dataclass
class NodeProcesses:
    """The test's node processes: start them, find them, and (on the way out) kill them all."""

    tasks: TaskGroup
    workdir: Path
    dsn: str
    schema: str
    nats: str
    cluster: str
    nodes: dict[str, NodeProcess] = field(default_factory=dict)

    async def spawn(self, name: str, role: str = "member") -> NodeProcess:
        """Start a node; it is not ready yet (see `ready`)."""
        ack_file, log_file = self.workdir / f"{name}.acks", self.workdir / f"{name}.log"
        command = [sys.executable, "-m", "tests.cluster_node", "--dsn", self.dsn, "--schema", self.schema]
        command += ["--nats", self.nats, "--cluster", self.cluster, "--node-id", name, "--role", role]
        command += ["--ack-file", str(ack_file)]
        with log_file.open("ab") as log:
            process = await anyio.open_process(
                command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=log
            )
        node = self.nodes[name] = NodeProcess(name, role, process, ack_file, log_file)
        self.tasks.start_soon(node.read_forever)
        return node

    async def start(self, *specs: tuple[str, str], timeout: float = 60.0) -> list[NodeProcess]:
        """Start nodes (name, role) side by side and wait until every one has joined."""
        started = [await self.spawn(name, role) for name, role in specs]
        for node in started:
            await node.wait_message(lambda m: m.get("event") == "ready", timeout, "its ready line")
        return started

    def members(self) -> list[NodeProcess]:
        return [node for node in self.nodes.values() if node.role == "member" and not node.exited]

    async def settled(self, members: Iterable[NodeProcess], timeout: float = 60.0) -> dict[str, Message]:
        """Wait until `members` (all of the cluster's live hosts) see each other, each serves exactly the
        shards it wants, and together they serve every shard once; returns their stats."""
        members = list(members)
        names = sorted(node.name for node in members)

        async def check() -> dict[str, Message] | None:
            stats = {node.name: await node.stats() for node in members}
            served = [shard for s in stats.values() for shard in s["serving_shards"]]
            if sorted(served) != list(range(SHARDS)):
                return None
            if any(s["hosts"] != names or s["serving_shards"] != s["desired"] for s in stats.values()):
                return None
            return stats

        return await poll_until(check, timeout, f"the shards settled on {names}")

    async def kill_all(self) -> None:
        with anyio.CancelScope(shield=True):
            for node in self.nodes.values():
                await node.kill()


@asynccontextmanager
async def node_processes(workdir: Path, dsn: str, schema: str, nats: str) -> AsyncIterator[NodeProcesses]:
    """Node processes of a cluster of the test's own (a unique name); all killed on the way out."""
    cluster = f"t{uuid.uuid4().hex[:10]}"
    async with anyio.create_task_group() as tasks:
        processes = NodeProcesses(tasks, workdir, dsn, schema, nats, cluster)
        try:
            yield processes
        finally:
            await processes.kill_all()
            tasks.cancel_scope.cancel()


async def poll_until(check: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    """`check()`'s first result that is not None, asked again every 0.1 s; fails after `timeout` seconds."""
    deadline = anyio.current_time() + timeout
    while True:
        found = await check()
        if found is not None:
            return found
        if anyio.current_time() >= deadline:
            raise AssertionError(f"{what}: still not true after {timeout} s")
        await anyio.sleep(0.1)


def read_acks(path: Path) -> list[Message]:
    """The acknowledged commands a node wrote; only whole lines (a kill -9 may cut none, but be sure)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().split("\n")[:-1]]


async def whole_log(store: PostgresEventStore) -> list[RecordedEvent]:
    records: list[RecordedEvent] = []
    while chunk := await store.read_all(records[-1].position if records else 0, 5000):
        records.extend(chunk)
    return records


@dataclass
class LogCheck:
    """What the stored log says, per account stream."""

    balances: Counter[str]  # account id -> sum of AccountCredited amounts
    at: dict[tuple[str, int], RecordedEvent]  # (account id, version) -> the event there
    commands: Counter[tuple[str, str]]  # (stream, command id) -> events carrying it


def examine(records: list[RecordedEvent]) -> LogCheck:
    """Positions gapless from 1, each stream's versions gapless from 1; the balances and command ids."""
    assert [r.position for r in records] == list(range(1, len(records) + 1)), "a gap in the global log"
    codec = codec_for(account)
    versions: dict[str, list[int]] = defaultdict(list)
    check = LogCheck(Counter(), {}, Counter())
    for record in records:
        versions[record.stream_id].append(record.version)
        account_id = record.stream_id.removeprefix("account-")
        check.at[(account_id, record.version)] = record
        if record.metadata.command_id is not None:
            check.commands[(record.stream_id, record.metadata.command_id)] += 1
        event = codec.decode_stored(record.stream_id, record.version, record.type, record.schema_version, record.data)
        if isinstance(event, AccountCredited):
            check.balances[account_id] += event.amount
    gapped = {s: v for s, v in versions.items() if v != list(range(1, len(v) + 1))}
    assert not gapped, f"streams with gaps in their versions: {dict(list(gapped.items())[:5])}"
    twice = [key for key, n in check.commands.items() if n > 1]
    assert not twice, f"command ids that ran twice: {twice[:5]}"
    return check


def assert_acks_exactly_once(check: LogCheck, acks: list[Message]) -> None:
    """Every acknowledged command is in the log exactly once, at the version its caller was told."""
    missing = []
    for ack in acks:
        record = check.at.get((ack["a"], ack["v"]))
        if record is None or record.metadata.command_id != ack["c"]:
            missing.append(ack)
        assert check.commands[(f"account-{ack['a']}", ack["c"])] == 1, f"acknowledged {ack} is not there once"
    assert not missing, f"{len(missing)} acknowledged commands are not where their callers were told: {missing[:5]}"
    assert len({ack["c"] for ack in acks}) == len(acks), "a command acknowledged twice"
