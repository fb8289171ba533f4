"""`actorsrc demo`: drive the bank example hard on an SQLite file, then prove nothing was lost.

The driver keeps its own ledger, built only from the outcomes the runtime acknowledged. Afterwards
every account's stream is read back and folded, and then the store and runtime are reopened and each
recovered actor is asked for its balance; all three views must agree.
"""

from __future__ import annotations

import random
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, TypeVar

import anyio

from actorsrc import ActorsrcError, CommandOutcome, Runtime, SQLiteEventStore
from actorsrc.progress import Progress
from actorsrc.recovery import load_state
from examples.bank.domain import (
    AccountCredited,
    AccountDebited,
    ApplyInterest,
    Command,
    Credit,
    Debit,
    Event,
    InsufficientFunds,
    InterestApplied,
    OpenAccount,
    account,
)

T = TypeVar("T")

_MAX_AMOUNT = 10_000  # cents
_MAX_DEBIT = 15_000  # above the typical credit, so that some debits are refused
_MAX_LISTED_PROBLEMS = 20


@dataclass(frozen=True, slots=True)
class DemoOptions:
    db: Path
    accounts: int = 1000
    commands: int = 20  # per account
    concurrency: int = 200
    fresh: bool = False
    seed: int | None = None


@dataclass(slots=True)
class Ledger:
    """What the driver expects the store to hold, from acknowledged outcomes only."""

    balances: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    written: dict[str, list[int]] = field(default_factory=dict)  # stream versions the outcomes report
    accepted: int = 0
    rejected: int = 0
    events: int = 0
    problems: list[str] = field(default_factory=list)

    def record(self, account_id: str, outcome: CommandOutcome[Event]) -> None:
        self.accepted += 1
        self.events += len(outcome.events)
        self.balances[account_id] = self.balances.get(account_id, 0) + sum(map(_delta, outcome.events))
        self.versions[account_id] = self.versions.get(account_id, 0) + len(outcome.events)
        # Concurrent callers may hear back in any order; the versions are checked as a set at the end.
        first = outcome.version - len(outcome.events) + 1
        self.written.setdefault(account_id, []).extend(range(first, outcome.version + 1))

    def check_versions(self, account_id: str) -> None:
        """Every acknowledged event has its own version, and together they run 1..n with no gap."""
        written = sorted(self.written.get(account_id, []))
        if written != list(range(1, len(written) + 1)):
            self.problems.append(f"{account_id}: acknowledged versions are not 1..{len(written)}: {written[:20]}")


@dataclass(slots=True)
class DemoReport:
    options: DemoOptions
    run_id: str
    ledger: Ledger
    opened: int = 0
    command_seconds: float = 0.0
    total_seconds: float = 0.0
    recovered: int = 0

    @property
    def ok(self) -> bool:
        return not self.ledger.problems


def _delta(event: Event) -> int:
    """The balance change of one event; kept apart from `evolve` so the check is independent."""
    match event:
        case AccountCredited(amount) | InterestApplied(_, amount):
            return amount
        case AccountDebited(amount):
            return -amount
    return 0


def run_demo(options: DemoOptions, out: TextIO | None = None) -> bool:
    """Run the demo, print its summary to `out` (stdout) and return whether the check passed."""
    if options.fresh:
        remove_database(options.db)
    report = anyio.run(_demo, options, backend="asyncio")
    print_summary(report, out if out is not None else sys.stdout)
    return report.ok


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def _demo(options: DemoOptions) -> DemoReport:
    # A fresh id prefix per run, so reruns against the same file never collide with old accounts.
    report = DemoReport(options, run_id=secrets.token_hex(4), ledger=Ledger())
    ids = [f"{report.run_id}-{i:06d}" for i in range(options.accounts)]
    started = time.perf_counter()
    async with SQLiteEventStore.open(options.db) as store:
        first_position = await store.last_position()
        async with Runtime(store, [account]) as runtime:
            await _open_accounts(runtime, ids, report)
            await _drive(runtime, ids, report)
        await _verify_streams(store, ids, report.ledger)
        _check_positions(report.ledger, first_position, await store.last_position())
    # A new store and runtime start with no actor in memory: every balance below is recovered.
    async with SQLiteEventStore.open(options.db) as store, Runtime(store, [account]) as runtime:
        report.recovered = await _verify_recovery(runtime, ids, report)
    report.total_seconds = time.perf_counter() - started
    return report


async def _pool(
    items: Iterable[T], concurrency: int, handle: Callable[[T], Awaitable[None]], progress: Progress
) -> None:
    """Run `handle` on every item, `concurrency` at a time."""
    shared: Iterator[T] = iter(items)  # workers pull from one iterator; next() never awaits

    async def worker() -> None:
        for item in shared:
            await handle(item)
            progress.advance()

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)


async def _send(runtime: Runtime, ledger: Ledger, account_id: str, command: Command) -> bool:
    """Send one command and book its outcome; True when it was accepted."""
    try:
        outcome = await runtime.ref(account, account_id).ask(command)
    except InsufficientFunds:
        ledger.rejected += 1  # expected: debits are drawn larger than most balances
        return False
    except ActorsrcError as exc:
        ledger.problems.append(f"{account_id}: {type(command).__name__} failed: {exc!r}")
        return False
    ledger.record(account_id, outcome)
    return True


async def _open_accounts(runtime: Runtime, ids: list[str], report: DemoReport) -> None:
    async def open_one(account_id: str) -> None:
        if await _send(runtime, report.ledger, account_id, OpenAccount(owner=f"owner of {account_id}")):
            report.opened += 1

    with Progress(len(ids), "opening accounts") as progress:
        await _pool(ids, report.options.concurrency, open_one, progress)


def _random_commands(ids: list[str], count: int, rng: random.Random) -> Iterator[tuple[str, Command]]:
    for _ in range(count):
        roll = rng.random()
        command: Command
        if roll < 0.50:
            command = Credit(rng.randint(1, _MAX_AMOUNT))
        elif roll < 0.95:
            command = Debit(rng.randint(1, _MAX_DEBIT))
        else:
            command = ApplyInterest(rate_bp=rng.randint(1, 500))
        yield rng.choice(ids), command


async def _drive(runtime: Runtime, ids: list[str], report: DemoReport) -> None:
    options = report.options
    total = options.accounts * options.commands
    work = _random_commands(ids, total, random.Random(options.seed))

    async def send(item: tuple[str, Command]) -> None:
        await _send(runtime, report.ledger, *item)

    started = time.perf_counter()
    with Progress(total, "commands") as progress:
        await _pool(work, options.concurrency, send, progress)
    report.command_seconds = time.perf_counter() - started


async def _verify_streams(store: SQLiteEventStore, ids: list[str], ledger: Ledger) -> None:
    """Fold each account's stored events and compare with the ledger."""
    with Progress(len(ids), "reading streams") as progress:
        for account_id in ids:
            ledger.check_versions(account_id)
            loaded = await load_state(store, account, account_id)
            expected = ledger.balances.get(account_id, 0)
            if loaded.state.balance != expected:
                ledger.problems.append(
                    f"{account_id}: stored events fold to {loaded.state.balance}, expected {expected}"
                )
            if loaded.version != ledger.versions.get(account_id, 0):
                ledger.problems.append(
                    f"{account_id}: {loaded.version} events stored, {ledger.versions.get(account_id, 0)} acknowledged"
                )
            progress.advance()


def _check_positions(ledger: Ledger, before: int, after: int) -> None:
    # Assumes nothing else writes to the file while the demo runs.
    if after - before != ledger.events:
        ledger.problems.append(f"the global log grew by {after - before} events, but {ledger.events} were acknowledged")


async def _verify_recovery(runtime: Runtime, ids: list[str], report: DemoReport) -> int:
    """Ask each freshly recovered actor for its state and compare its balance with the ledger."""
    ledger = report.ledger
    recovered = 0

    async def check(account_id: str) -> None:
        nonlocal recovered
        try:
            state = await runtime.ref(account, account_id).state()
        except ActorsrcError as exc:
            ledger.problems.append(f"{account_id}: recovery failed: {exc!r}")
            return
        expected = ledger.balances.get(account_id, 0)
        if state.balance != expected:
            ledger.problems.append(f"{account_id}: recovered actor holds {state.balance}, expected {expected}")
        else:
            recovered += 1

    with Progress(len(ids), "recovering") as progress:
        await _pool(ids, report.options.concurrency, check, progress)
    return recovered


def print_summary(report: DemoReport, out: TextIO) -> None:
    options, ledger = report.options, report.ledger
    commands = options.accounts * options.commands
    rate = commands / report.command_seconds if report.command_seconds > 0 else 0.0
    lines = [
        f"actorsrc demo  db={options.db}  run={report.run_id}",
        f"  accounts opened    {report.opened:,} of {options.accounts:,}",
        f"  commands           {commands:,} (concurrency {options.concurrency})",
        f"  accepted           {ledger.accepted - report.opened:,}",
        f"  rejected           {ledger.rejected:,} (InsufficientFunds)",
        f"  events written     {ledger.events:,} (opens included)",
        f"  elapsed            {report.command_seconds:.2f} s for commands, {report.total_seconds:.2f} s in all",
        f"  commands/s         {rate:,.0f}",
        f"  recovered          {report.recovered:,} of {options.accounts:,} accounts",
    ]
    if report.ok:
        lines.append("check: OK")
    else:
        lines.append(f"check: FAILED ({len(ledger.problems)} problems)")
        lines += [f"  - {problem}" for problem in ledger.problems[:_MAX_LISTED_PROBLEMS]]
        if len(ledger.problems) > _MAX_LISTED_PROBLEMS:
            lines.append(f"  ... and {len(ledger.problems) - _MAX_LISTED_PROBLEMS} more")
    print("\n".join(lines), file=out)
