"""Child processes for the PostgreSQL multi-process tests.

python -m tests.postgres_worker append DSN SCHEMA WORKER COUNT ACK_FILE
    COUNT appends of two events each, to random streams, from 20 concurrent tasks;
    each acknowledged append is logged to ACK_FILE as "command_id"; prints "ready", then "acked 20".
python -m tests.postgres_worker credit DSN SCHEMA WORKER COUNT ACK_FILE
    COUNT credits through a Runtime to five shared accounts; logs "account amount" per reply.
"""

from __future__ import annotations

import os
import random
import sys

import anyio

from actorsrc import ANY, NewEvent, Runtime, WriteSettings
from actorsrc.records import Metadata, next_event_id
from actorsrc.store.postgres import PostgresEventStore
from examples.bank import Credit, account


async def append(dsn: str, schema: str, worker: str, count: int, ack_file: str) -> None:
    fd = os.open(ack_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    rng = random.Random(worker)
    counter = iter(range(count))
    acked = [0]
    async with PostgresEventStore.open(dsn, schema=schema) as store:

        async def task() -> None:
            for n in counter:
                command_id = f"{worker}-{n}"
                events = [NewEvent(kind, b"{}", Metadata(next_event_id(), command_id)) for kind in ("First", "Second")]
                await store.append(f"s-{rng.randrange(50)}", events, ANY)
                os.write(fd, f"{command_id}\n".encode())
                acked[0] += 1
                if acked[0] == 20:
                    print("acked 20", flush=True)

        print("ready", flush=True)
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(task)


async def credit(dsn: str, schema: str, worker: str, count: int, ack_file: str) -> None:
    fd = os.open(ack_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    rng = random.Random(worker)
    counter = iter(range(count))
    async with (
        PostgresEventStore.open(dsn, schema=schema) as store,
        Runtime(store, [account], write=WriteSettings(max_conflict_retries=50)) as runtime,
    ):

        async def task() -> None:
            for _ in counter:
                account_id, amount = f"shared-{rng.randrange(5)}", rng.randrange(1, 100)
                await runtime.ref(account, account_id).ask(Credit(amount))
                os.write(fd, f"{account_id} {amount}\n".encode())

        print("ready", flush=True)
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(task)


if __name__ == "__main__":
    mode, dsn, schema, worker, count, ack_file = sys.argv[1:7]
    anyio.run(append if mode == "append" else credit, dsn, schema, worker, int(count), ack_file)
