"""`decide` returning something other than a sequence of its events (issue 10, bad input).

The caller of that command gets an `InvalidDecisionError` naming the aggregate and the command (it used
to be a bare TypeError from deep inside the runtime); nothing is written and the actor keeps serving.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from actorsrc import Aggregate, InvalidDecisionError, Runtime, SQLiteEventStore
from examples.bank import AccountCredited, AccountState, Credit, OpenAccount, account


@dataclass(frozen=True)
class Stray:
    note: str


RETURNED: dict[int, Any] = {
    1: None,
    2: "AccountCredited",
    3: AccountCredited(3),  # one event, not in a list
    4: (e for e in [AccountCredited(4)]),  # a generator is not a sequence
    5: {"amount": 5},
    6: [Stray("not an event")],
    7: [AccountCredited(7), "AccountCredited"],
}


def _decide(state: AccountState, command: Any) -> Sequence[object]:
    if isinstance(command, Credit) and command.amount in RETURNED:
        returned: Sequence[object] = RETURNED[command.amount]
        return returned
    return account.decide(state, command)


careless: Aggregate[AccountState, Any, Any] = Aggregate(
    name="account",
    initial=AccountState(),
    decide=_decide,
    evolve=account.evolve,
    events=account.events,
    commands=account.commands,
)

NOT_A_SEQUENCE = "; return a list of events \\(an empty list to change nothing\\)$"


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (1, r"^account\.decide returned None for Credit" + NOT_A_SEQUENCE),
        (2, r"^account\.decide returned 'AccountCredited' for Credit" + NOT_A_SEQUENCE),
        (3, r"^account\.decide returned AccountCredited\(amount=3\) for Credit" + NOT_A_SEQUENCE),
        (4, r"^account\.decide returned <generator object .*> for Credit" + NOT_A_SEQUENCE),
        (5, r"^account\.decide returned \{'amount': 5\} for Credit" + NOT_A_SEQUENCE),
        (6, r"^account\.decide returned an object that is not one of its events for Credit: Stray is not a registered"),
        (7, r"^account\.decide returned an object that is not one of its events for Credit: str is not a registered"),
    ],
)
async def test_decide_returning_no_sequence_of_events_names_the_aggregate_and_command(
    tmp_path: Path, amount: int, message: str
) -> None:
    async with SQLiteEventStore.open(tmp_path / "d.db") as store, Runtime(store, [careless]) as runtime:
        ref = runtime.ref(careless, "a")
        await ref.ask(OpenAccount("ann"))
        with pytest.raises(InvalidDecisionError, match=message):
            await ref.ask(Credit(amount))
        assert await store.last_position() == 1
        assert (await ref.ask(Credit(100))).version == 2  # the actor keeps serving


async def test_only_the_caller_of_that_command_hears_of_it(tmp_path: Path) -> None:
    async with SQLiteEventStore.open(tmp_path / "d.db") as store, Runtime(store, [careless]) as runtime:
        ref = runtime.ref(careless, "b")
        await ref.ask(OpenAccount("ann"))
        versions: list[int] = []
        failures: list[BaseException] = []

        async def send(amount: int) -> None:
            try:
                versions.append((await ref.ask(Credit(amount))).version)
            except InvalidDecisionError as exc:
                failures.append(exc)

        async with anyio.create_task_group() as tg:  # likely decided in one batch with the good ones
            for amount in (10, 1, 11, 6, 12):
                tg.start_soon(send, amount)
        assert sorted(versions) == [2, 3, 4]
        assert len(failures) == 2
        assert [r.version for r in await store.read_stream("account-b")] == [1, 2, 3, 4]
