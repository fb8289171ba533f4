"""The shop's read models: SQL tables the projections keep up to date, and the queries over them.

Each handler runs inside the transaction that moves its projection's checkpoint, so every event is
applied exactly once and plain INSERT/UPDATE statements are enough.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, date
from typing import Any

from actorsrc import EventEnvelope, Projection, SQLiteReadModel
from examples.shop.domain import (
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    OrderRefunded,
    OrderRefundRequested,
    OrderShipped,
    PaymentCaptured,
    PaymentRefunded,
    order,
    order_id_of,
)

# -- orders by customer -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderSummary:
    order_id: str
    customer_id: str
    amount_cents: int
    status: str  # the order's status: placed, paid, shipped, cancelled, refund_requested, refunded


def _setup_orders(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS orders_by_customer ("
        " customer_id TEXT NOT NULL, order_id TEXT PRIMARY KEY, amount_cents INTEGER NOT NULL, status TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX IF NOT EXISTS orders_by_customer_customer ON orders_by_customer (customer_id)")


def _reset_orders(db: sqlite3.Connection) -> None:
    db.execute("DROP TABLE IF EXISTS orders_by_customer")


def _handle_order(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
    order_id = order_id_of(envelope.stream_id, envelope.event)

    def set_status(status: str, *, only_from: str | None = None) -> None:
        guard = " AND status = ?" if only_from is not None else ""
        params = (status, order_id) if only_from is None else (status, order_id, only_from)
        db.execute(f"UPDATE orders_by_customer SET status = ? WHERE order_id = ?{guard}", params)

    match envelope.event:
        case OrderPlaced(customer_id, amount_cents):
            db.execute(
                "INSERT INTO orders_by_customer (customer_id, order_id, amount_cents, status)"
                " VALUES (?, ?, ?, 'placed')",
                (customer_id, order_id, amount_cents),
            )
        case OrderPaid():
            set_status("paid")
        case OrderShipped():
            set_status("shipped", only_from="paid")  # a pending or finished refund stays the status shown
        case OrderCancelled():
            set_status("cancelled")
        case OrderRefundRequested():
            set_status("refund_requested")
        case OrderRefunded():
            set_status("refunded")


orders_by_customer = Projection(
    name="orders_by_customer",
    handle=_handle_order,
    setup=_setup_orders,
    reset=_reset_orders,
    aggregates=[order],
)


async def orders_of(read_model: SQLiteReadModel, customer_id: str) -> list[OrderSummary]:
    """A customer's orders, in the order they were placed."""
    rows = await read_model.query(
        "SELECT order_id, customer_id, amount_cents, status FROM orders_by_customer"
        " WHERE customer_id = ? ORDER BY rowid",
        (customer_id,),
    )
    return [OrderSummary(*row) for row in rows]


# -- revenue per day --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DailyRevenue:
    day: date
    orders: int
    revenue_cents: int
    refunds_cents: int

    @property
    def net_cents(self) -> int:
        return self.revenue_cents - self.refunds_cents


def _setup_revenue(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS revenue_per_day ("
        " day TEXT PRIMARY KEY, orders INTEGER NOT NULL, revenue_cents INTEGER NOT NULL,"
        " refunds_cents INTEGER NOT NULL)"
    )


def _reset_revenue(db: sqlite3.Connection) -> None:
    db.execute("DROP TABLE IF EXISTS revenue_per_day")


def _handle_revenue(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
    match envelope.event:
        case OrderPlaced():
            delta = (1, 0, 0)
        case PaymentCaptured(_, amount_cents):
            delta = (0, amount_cents, 0)
        case PaymentRefunded(_, amount_cents):
            delta = (0, 0, amount_cents)
        case _:
            return
    # The day the money moved, as the store recorded it (UTC): replaying gives the same days.
    day = envelope.recorded_at.astimezone(UTC).date().isoformat()
    db.execute(
        "INSERT INTO revenue_per_day (day, orders, revenue_cents, refunds_cents) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (day) DO UPDATE SET orders = orders + excluded.orders,"
        " revenue_cents = revenue_cents + excluded.revenue_cents,"
        " refunds_cents = refunds_cents + excluded.refunds_cents",
        (day, *delta),
    )


revenue_per_day = Projection(
    name="revenue_per_day",
    handle=_handle_revenue,
    setup=_setup_revenue,
    reset=_reset_revenue,
    events={"OrderPlaced": OrderPlaced, "PaymentCaptured": PaymentCaptured, "PaymentRefunded": PaymentRefunded},
)


async def revenue_on(read_model: SQLiteReadModel, day: date) -> DailyRevenue:
    """The orders placed, money captured and money refunded on `day` (UTC); zeros for a quiet day."""
    rows = await read_model.query(
        "SELECT orders, revenue_cents, refunds_cents FROM revenue_per_day WHERE day = ?", (day.isoformat(),)
    )
    orders, revenue, refunds = rows[0] if rows else (0, 0, 0)
    return DailyRevenue(day, orders, revenue, refunds)
