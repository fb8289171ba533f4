"""Child process for the crash test: drives wallets until it is killed, logging each acknowledgement.

    python -m tests.crash_worker DB ACK_FILE RUN_ID

Each command writes two events, so a half-written append would show as a lone event. An
acknowledgement is appended to ACK_FILE only after `ask` returned, i.e. after the events are durable.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

import anyio

from actorsrc import Aggregate, Runtime, SQLiteEventStore, WriteSettings


@dataclass(frozen=True, slots=True)
class Deposit:
    amount: int


@dataclass(frozen=True, slots=True)
class Deposited:
    amount: int


@dataclass(frozen=True, slots=True)
class FeeCharged:
    amount: int


@dataclass(frozen=True, slots=True)
class Wallet:
    balance: int = 0
    deposits: int = 0


def decide(state: Wallet, command: Deposit) -> Sequence[Deposited | FeeCharged]:
    return [Deposited(command.amount), FeeCharged(1)]


def evolve(state: Wallet, event: Deposited | FeeCharged) -> Wallet:
    if isinstance(event, Deposited):
        return replace(state, balance=state.balance + event.amount, deposits=state.deposits + 1)
    return replace(state, balance=state.balance - event.amount)


wallet: Aggregate[Wallet, Deposit, Deposited | FeeCharged] = Aggregate(
    name="wallet",
    initial=Wallet(),
    decide=decide,
    evolve=evolve,
    events={"Deposited": Deposited, "FeeCharged": FeeCharged},
    commands=(Deposit,),
    snapshot_every=7,
)
WALLETS = 40


async def drive(db: str, ack_path: str, run_id: str) -> None:
    ack_fd = os.open(ack_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    rng = random.Random(run_id)
    counter = iter(range(10**9))
    async with (
        SQLiteEventStore.open(db) as store,
        Runtime(store, [wallet], write=WriteSettings(max_live_actors=25)) as runtime,
    ):

        async def caller() -> None:
            while True:
                n = next(counter)
                wallet_id, amount = f"w{rng.randrange(WALLETS)}", rng.randrange(1, 100)
                command_id = f"{run_id}-{n}"
                await runtime.ref(wallet, wallet_id).ask(Deposit(amount), command_id=command_id)
                os.write(ack_fd, f"{command_id} {wallet_id} {amount}\n".encode())

        print("ready", flush=True)
        async with anyio.create_task_group() as tg:
            for _ in range(100):
                tg.start_soon(caller)


if __name__ == "__main__":
    db_path, ack_file, run = sys.argv[1:4]
    anyio.run(drive, db_path, ack_file, run)
