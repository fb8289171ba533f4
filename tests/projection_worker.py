"""Child process for the projection crash test: catches the `balances` projection up, until killed.

python -m tests.projection_worker EVENTS_DB READ_DB
"""

from __future__ import annotations

import sys

import anyio

from actorsrc import Runtime, SQLiteEventStore, SQLiteReadModel
from examples.bank import account
from tests.read_side_fixtures import balances


async def catch_up(events_db: str, read_db: str) -> None:
    async with (
        SQLiteEventStore.open(events_db) as store,
        SQLiteReadModel.open(read_db) as read_model,
        Runtime(store, [account], handlers=[balances], read_model=read_model),
    ):
        print("ready", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(catch_up, sys.argv[1], sys.argv[2])
