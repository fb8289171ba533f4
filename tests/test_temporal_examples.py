"""The README's temporal queries: a balance on a past day, the average order value of a past day."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from examples.bank import Credit, Debit, OpenAccount, account
from examples.bank.queries import balance_on
from examples.shop.app import open_shop, settle
from examples.shop.domain import OrderLine, PlaceOrder, order
from examples.shop.temporal import average_order_value_on, last_weekday
from tests.helpers import bank

JULY_3, JULY_4 = date(2026, 7, 3), date(2026, 7, 4)


def _move_to(db: Path, stream_prefix: str, moments: list[datetime]) -> None:
    """Pretend the events were recorded on other days (their time is the only thing changed)."""
    conn = sqlite3.connect(db)
    with conn:
        positions = [
            row[0]
            for row in conn.execute(
                "SELECT e.position FROM events e JOIN streams s ON s.key = e.stream_key WHERE s.name LIKE ?"
                " ORDER BY e.position",
                (f"{stream_prefix}%",),
            )
        ]
        for position, moment in zip(positions, moments, strict=False):
            conn.execute(
                "UPDATE events SET recorded_at = ? WHERE position = ?", (int(moment.timestamp() * 1_000_000), position)
            )
    conn.close()


async def test_balance_on_a_past_day(tmp_path: Path) -> None:
    db = tmp_path / "bank.db"
    async with bank(db) as (_, runtime):
        ref = runtime.ref(account, "x")
        for command in (OpenAccount("ann"), Credit(100), Credit(50), Debit(30)):
            await ref.ask(command)
    july = [
        datetime(2026, 7, 3, 9, tzinfo=UTC),
        datetime(2026, 7, 3, 17, tzinfo=UTC),
        datetime(2026, 7, 4, 10, tzinfo=UTC),
        datetime(2026, 7, 5, 8, tzinfo=UTC),
    ]
    _move_to(db, "account-x", july)
    async with bank(db) as (store, _):
        assert await balance_on(store, "x", date(2026, 7, 2)) == 0
        assert await balance_on(store, "x", JULY_3) == 100
        assert await balance_on(store, "x", JULY_4) == 150
        assert await balance_on(store, "x", date(2026, 7, 5)) == 120


async def test_average_order_value_last_tuesday(tmp_path: Path) -> None:
    db, read_db = tmp_path / "shop.db", tmp_path / "shop-read.db"
    async with open_shop(db, read_db) as (_, _, runtime):
        for n, cents in enumerate((1000, 3000, 5000, 7000)):
            await runtime.ref(order, f"o{n}").ask(PlaceOrder(f"c{n}", (OrderLine("sku", 1, cents),)))
        await settle(runtime)
    tuesday = last_weekday(1, date(2026, 7, 9))  # a Thursday
    assert tuesday == date(2026, 7, 7)
    assert last_weekday(1, date(2026, 7, 7)) == date(2026, 6, 30)  # "last Tuesday" on a Tuesday is a week ago
    at = datetime(2026, 7, 7, 12, tzinfo=UTC)
    conn = sqlite3.connect(db)
    with conn:  # o0 and o1 were placed on Tuesday, o2 and o3 on Wednesday
        for name, moment in (
            ("order-o0", at),
            ("order-o1", at),
            ("order-o2", at + timedelta(days=1)),
            ("order-o3", at + timedelta(days=1)),
        ):
            conn.execute(
                "UPDATE events SET recorded_at = ? WHERE version = 1 AND stream_key = "
                "(SELECT key FROM streams WHERE name = ?)",
                (int(moment.timestamp() * 1_000_000), name),
            )
    conn.close()
    async with open_shop(db, read_db) as (store, _, _):
        assert await average_order_value_on(store, tuesday) == 2000.0
        assert await average_order_value_on(store, tuesday + timedelta(days=1)) == 6000.0
        assert await average_order_value_on(store, tuesday - timedelta(days=1)) is None
