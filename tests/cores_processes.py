"""Runtimes on cores as OS processes (tests/cores_worker.py): start them, talk to them over stdin/stdout
(JSON lines), kill them. Every wait is bounded and fails with the worker's stderr tail."""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process, TaskGroup
from anyio.streams.buffered import BufferedByteReceiveStream

ROOT = Path(__file__).resolve().parent.parent
Message = dict[str, Any]


@dataclass
class Worker:
    name: str
    process: Process
    log_file: Path
    ack_file: Path
    messages: list[Message] = field(default_factory=list)
    changed: anyio.Event = field(default_factory=anyio.Event)
    exited: bool = False
    part: int = -1

    async def read_forever(self) -> None:
        assert self.process.stdout is not None
        lines = BufferedByteReceiveStream(self.process.stdout)
        try:
            while True:
                self.messages.append(json.loads(await lines.receive_until(b"\n", 1 << 20)))
                self.changed.set()
                self.changed = anyio.Event()
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        finally:
            self.exited = True
            self.changed.set()

    def log_tail(self) -> str:
        return self.log_file.read_text(errors="replace")[-3000:] if self.log_file.exists() else ""

    async def wait_message(self, matches: Callable[[Message], bool], what: str, timeout: float = 60.0) -> Message:
        checked = 0
        with anyio.move_on_after(timeout):
            while True:
                for message in self.messages[checked:]:
                    if matches(message):
                        return message
                checked = len(self.messages)
                if self.exited:
                    raise AssertionError(f"worker {self.name} exited while waiting for {what}:\n{self.log_tail()}")
                await self.changed.wait()
        raise AssertionError(f"worker {self.name} sent no {what} within {timeout} s:\n{self.log_tail()}")

    async def send(self, op: str, **fields: Any) -> str:
        assert self.process.stdin is not None
        request_id = uuid.uuid4().hex[:12]
        await self.process.stdin.send((json.dumps({"op": op, "id": request_id, **fields}) + "\n").encode())
        return request_id

    async def ask(self, account: str, timeout: float = 60.0, **fields: Any) -> Message:
        """Credit (or open) `account` from this worker; the outcome or the error."""
        request_id = await self.send("ask", account=account, timeout=timeout, **fields)
        return await self.wait_message(lambda m: m.get("id") == request_id, "an answer", timeout + 30)

    async def start_load(self, accounts: list[str], tasks: int = 8) -> str:
        load_id = await self.send("load", accounts=accounts, tasks=tasks)
        await self.wait_message(lambda m: m.get("id") == load_id and "started" in m, "a started load")
        return load_id

    async def stop_load(self, load_id: str, timeout: float = 90.0) -> Message:
        await self.send("stop_load", load=load_id)
        return await self.wait_message(lambda m: m.get("id") == load_id and m.get("done") is True, "its load", timeout)

    def acked(self) -> int:
        return len(self.ack_file.read_text().split("\n")) - 1 if self.ack_file.exists() else 0

    async def quit(self) -> None:
        await self.send("quit")
        await self.wait_message(lambda m: m.get("event") == "quit", "its goodbye")
        with anyio.fail_after(30):
            code = await self.process.wait()
        assert code == 0, f"worker {self.name} exited with {code}:\n{self.log_tail()}"

    async def kill(self) -> None:
        """kill -9, and reap it (bounded)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            await self.process.aclose()  # reaps it and closes its pipes


@dataclass
class Workers:
    tasks: TaskGroup
    workdir: Path
    directory: Path
    count: int
    dsn: str | None = None
    schema: str | None = None
    started: list[Worker] = field(default_factory=list)

    async def start(self, name: str) -> Worker:
        """Start a worker and wait until it serves its part."""
        log_file, ack_file = self.workdir / f"{name}.log", self.workdir / f"{name}.acks"
        command = [sys.executable, "-m", "tests.cores_worker", "--dir", str(self.directory)]
        command += ["--count", str(self.count), "--ack-file", str(ack_file)]
        if self.dsn is not None:
            command += ["--dsn", self.dsn, "--schema", str(self.schema)]
        with log_file.open("ab") as log:
            process = await anyio.open_process(
                command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=log
            )
        worker = Worker(name, process, log_file, ack_file)
        self.started.append(worker)
        self.tasks.start_soon(worker.read_forever)
        ready = await worker.wait_message(lambda m: m.get("event") == "ready", "its ready line")
        worker.part = ready["part"]
        return worker


@asynccontextmanager
async def workers(
    workdir: Path, count: int, dsn: str | None = None, schema: str | None = None
) -> AsyncIterator[Workers]:
    """Worker processes over `workdir/parts` split into `count`; all killed on the way out."""
    async with anyio.create_task_group() as tasks:
        found = Workers(tasks, workdir, workdir / "parts", count, dsn, schema)
        try:
            yield found
        finally:
            with anyio.CancelScope(shield=True):
                for worker in found.started:
                    await worker.kill()
            tasks.cancel_scope.cancel()


def read_acks(path: Path) -> list[Message]:
    """The acknowledged commands a worker wrote (whole lines only)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().split("\n")[:-1]]
