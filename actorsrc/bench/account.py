"""The account of the replay and project workloads: opened once, then credited.

The bank example's account (examples/bank) cut down to what the workloads use, with the same aggregate
name, event names and fold, so the figures match those of the repository's longer studies; it ships
with the package, so `actorsrc bench` runs from an installed wheel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from actorsrc import Aggregate, DomainError


@dataclass(frozen=True, slots=True)
class OpenAccount:
    owner: str
    overdraft_limit: int = 0


@dataclass(frozen=True, slots=True)
class Credit:
    amount: int


@dataclass(frozen=True, slots=True)
class AccountOpened:
    owner: str
    overdraft_limit: int


@dataclass(frozen=True, slots=True)
class AccountCredited:
    amount: int


Command = OpenAccount | Credit
Event = AccountOpened | AccountCredited


class NotOpen(DomainError):
    """A credit before the account was opened, or a second opening."""


@dataclass(frozen=True, slots=True)
class AccountState:
    opened: bool = False
    closed: bool = False
    owner: str = ""
    balance: int = 0
    overdraft_limit: int = 0


def _decide(state: AccountState, command: Command) -> Sequence[Event]:
    match command:
        case OpenAccount(owner, overdraft_limit):
            if state.opened:
                raise NotOpen(f"account of {state.owner} is already open")
            return [AccountOpened(owner, overdraft_limit)]
        case Credit(amount):
            if not state.opened:
                raise NotOpen("Credit needs an open account")
            return [AccountCredited(amount)]
    raise TypeError(f"unexpected command {command!r}")


def _evolve(state: AccountState, event: Event) -> AccountState:
    match event:  # as the bank's: a direct constructor call on the hot path
        case AccountCredited(amount):
            return AccountState(state.opened, state.closed, state.owner, state.balance + amount, state.overdraft_limit)
        case AccountOpened(owner, overdraft_limit):
            return replace(state, opened=True, owner=owner, overdraft_limit=overdraft_limit)
    return state


account: Aggregate[AccountState, Command, Event] = Aggregate(
    name="account",
    initial=AccountState(),
    decide=_decide,
    evolve=_evolve,
    events={"AccountOpened": AccountOpened, "AccountCredited": AccountCredited},
    commands=(OpenAccount, Credit),
)
