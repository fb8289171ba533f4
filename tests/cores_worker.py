"""One runtime on cores as an OS process, for the multi-process tests (tests/test_cores_processes.py).

python -m tests.cores_worker --dir DIR --count N [--dsn DSN --schema SCHEMA] [--ack-file PATH]

Runs the bank's `account` in `Runtime.for_cores(Cores(DIR, N), ...)` (on a shared PostgreSQL store with
--dsn). Prints ``{"event": "ready", "part": k}`` once it serves its part, then obeys JSON lines on stdin,
answering each with a JSON line that carries the request's "id":

- ``ask``: ``Credit(amount)`` to ``account`` (``open``: `OpenAccount`), with ``command_id`` and ``timeout``
  when given; answers the outcome (version, position, duplicate) or the error's type and message.
- ``load``: ``tasks`` concurrent tasks credit the accounts named (each opened first, with command id
  ``open-<account>``) round robin with fresh command ids until stopped; answers ``started`` at once and
  ``done`` (acked, errors by type) when stopped. Every acknowledged credit is appended to the ack file as
  one JSON line (one write: it survives kill -9): ``{"a": account, "v": version, "c": command id}``.
- ``stop_load``: stop a load's tasks (its ``done`` follows once those in flight end).
- ``quit``: close the runtime cleanly and exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from typing import Any

from actorsrc import Runtime
from actorsrc.cores import Cores
from actorsrc.store.base import EventStore
from examples.bank import Credit, OpenAccount, account


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class Worker:
    def __init__(self, runtime: Runtime, ack_file: str | None) -> None:
        self.runtime = runtime
        self.ack_fd = os.open(ack_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600) if ack_file else -1
        self.loads: dict[str, asyncio.Event] = {}
        self.tasks: set[asyncio.Task[Any]] = set()

    async def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        ref = self.runtime.ref(account, request["account"])
        command = OpenAccount("test") if request.get("open") else Credit(request.get("amount", 1))
        try:
            outcome = await ref.ask(command, command_id=request.get("command_id"), timeout=request.get("timeout"))
        except Exception as exc:
            return {"error": type(exc).__name__, "message": str(exc)}
        return {"version": outcome.version, "position": outcome.position, "duplicate": outcome.duplicate}

    async def load(self, load_id: str, accounts: list[str], tasks: int) -> None:
        stop = self.loads[load_id] = asyncio.Event()
        acked, errors = 0, Counter[str]()
        for name in accounts:
            await self.runtime.ref(account, name).ask(OpenAccount("test"), command_id=f"open-{name}", timeout=60)
        say({"id": load_id, "started": True})
        turn = iter(range(1 << 62))

        async def one_task() -> None:
            nonlocal acked
            while not stop.is_set():
                name = accounts[next(turn) % len(accounts)]
                command_id = uuid.uuid4().hex
                try:
                    outcome = await self.runtime.ref(account, name).ask(Credit(1), command_id=command_id, timeout=60)
                except Exception as exc:
                    errors[type(exc).__name__] += 1
                    continue
                acked += 1
                os.write(self.ack_fd, (json.dumps({"a": name, "v": outcome.version, "c": command_id}) + "\n").encode())

        await asyncio.gather(*(one_task() for _ in range(tasks)))
        say({"id": load_id, "done": True, "acked": acked, "errors": dict(errors)})

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def obey(self) -> None:
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            request = json.loads(line)
            op, request_id = request["op"], request.get("id")
            if op == "quit":
                for stop in self.loads.values():
                    stop.set()
                await asyncio.gather(*self.tasks)
                return
            if op == "ask":

                async def answer(request: dict[str, Any] = request, request_id: Any = request_id) -> None:
                    say({"id": request_id, **await self.ask(request)})

                self.spawn(answer())
            elif op == "load":
                self.spawn(self.load(request_id, request["accounts"], request.get("tasks", 8)))
            elif op == "stop_load":
                self.loads[request["load"]].set()
                say({"id": request_id, "stopping": True})


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--dsn")
    parser.add_argument("--schema")
    parser.add_argument("--ack-file")
    args = parser.parse_args()
    async with AsyncExitStack() as stack:
        store: EventStore | None = None
        if args.dsn:
            from actorsrc.store.postgres import PostgresEventStore

            store = await stack.enter_async_context(PostgresEventStore.open(args.dsn, schema=args.schema))
        runtime = await stack.enter_async_context(
            Runtime.for_cores(Cores(args.dir, args.count), [account], store=store)
        )
        say({"event": "ready", "part": runtime.cores_part, "pid": os.getpid()})
        await Worker(runtime, args.ack_file).obey()
    say({"event": "quit"})


if __name__ == "__main__":
    asyncio.run(main())
