"""A temporal query on the bank: "what was the balance of account X on 4 July?"."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from actorsrc import EventStore, load_state
from examples.bank.domain import account


async def balance_on(store: EventStore, account_id: str, day: date) -> int:
    """The balance at the end of `day` (UTC): the account's events folded up to that moment."""
    end_of_day = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC) - timedelta(microseconds=1)
    return (await load_state(store, account, account_id, at=end_of_day)).state.balance
