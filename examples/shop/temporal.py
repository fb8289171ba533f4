"""A temporal query: "what was the average order value last Tuesday?".

The live read models hold today's picture. For a question about a past day, a projection of placed
orders is replayed from the start of the log up to the end of that day into a scratch, in-memory read
model, and queried there; the live read models are never touched.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from actorsrc import EventEnvelope, EventStore, Projection, SQLiteReadModel
from actorsrc.timetravel import replay_projection
from examples.shop.domain import OrderPlaced, order


def _setup(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS orders_placed (order_stream TEXT PRIMARY KEY, day TEXT, amount_cents INT)")


def _handle(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
    if isinstance(envelope.event, OrderPlaced):
        day = envelope.recorded_at.astimezone(UTC).date().isoformat()
        db.execute("INSERT INTO orders_placed VALUES (?, ?, ?)", (envelope.stream_id, day, envelope.event.amount_cents))


orders_placed = Projection(name="orders_placed", handle=_handle, setup=_setup, aggregates=[order])


def last_weekday(weekday: int, today: date) -> date:
    """The most recent `weekday` (Monday = 0) strictly before `today`: "last Tuesday" is last_weekday(1, today)."""
    return today - timedelta(days=(today.weekday() - weekday - 1) % 7 + 1)


async def average_order_value_on(store: EventStore, day: date) -> float | None:
    """The mean amount (cents) of the orders placed on `day` (UTC), as the log stood at that day's end."""
    end_of_day = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC) - timedelta(microseconds=1)
    async with SQLiteReadModel.open(":memory:") as scratch:
        await replay_projection(store, orders_placed, scratch, until=end_of_day)
        rows = await scratch.query("SELECT avg(amount_cents) FROM orders_placed WHERE day = ?", (day.isoformat(),))
    value = rows[0][0]
    return None if value is None else float(value)
