"""The shop wired together: event store, read model, runtime, projections and the fulfilment saga.

Run the demo with ``python -m examples.shop.app [DIRECTORY]``: it places three orders (one ships,
one is declined for its amount, one ships and is refunded), waits for the saga to finish, and prints
each customer's orders and the day's revenue. The databases go to DIRECTORY, or to a temporary one.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path

import anyio

from actorsrc import Runtime, SQLiteEventStore, SQLiteReadModel
from actorsrc.app import App
from examples.shop.domain import OrderLine, PlaceOrder, RequestRefund, order, payment, shipment
from examples.shop.read_models import orders_by_customer, orders_of, revenue_on, revenue_per_day
from examples.shop.saga import fulfilment

AGGREGATES = (order, payment, shipment)
PROJECTIONS = (orders_by_customer, revenue_per_day)
HANDLERS = (*PROJECTIONS, fulfilment)
shop = App(aggregates=AGGREGATES, handlers=HANDLERS, db="shop.db", read_db="shop-read.db")
"""For the command line: ``actorsrc projections --app examples.shop.app:shop list``."""


@asynccontextmanager
async def open_shop(
    db_path: str | PathLike[str], read_path: str | PathLike[str]
) -> AsyncIterator[tuple[SQLiteEventStore, SQLiteReadModel, Runtime]]:
    """The event store, the read model and a running runtime with every aggregate and handler."""
    async with (
        SQLiteEventStore.open(db_path) as store,
        SQLiteReadModel.open(read_path) as read_model,
        Runtime(store, AGGREGATES, handlers=HANDLERS, read_model=read_model) as runtime,
    ):
        yield store, read_model, runtime


async def settle(runtime: Runtime, *, timeout: float = 10.0) -> int:
    """Wait until the saga has nothing left to send and the projections have caught up with it.

    The saga's commands are durable before its checkpoint moves, so once it has handled every event
    and no new one appeared meanwhile, it is done. Returns the log position everything reached.
    """
    with anyio.fail_after(timeout):
        while True:
            target = await runtime.store.last_position()
            await runtime.wait_for(fulfilment, target)
            if await runtime.store.last_position() == target:
                break
        for projection in PROJECTIONS:
            await runtime.wait_for(projection, target)
    return target


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


async def main(directory: str | None = None) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        where = Path(directory or scratch)
        async with open_shop(where / "shop.db", where / "shop-read.db") as (_, read_model, runtime):
            mug, teapot, sofa = (
                OrderLine("mug", 2, 1_250),
                OrderLine("teapot", 1, 3_900),
                OrderLine("sofa", 1, 1_500_000),
            )
            for order_id, customer, lines in (
                ("o-1001", "ann", (mug, teapot)),
                ("o-1002", "bob", (sofa,)),  # over the capture limit: declined, so cancelled
                ("o-1003", "ann", (teapot,)),
            ):
                await runtime.ref(order, order_id).ask(PlaceOrder(customer, lines), consistency=[orders_by_customer])
            await settle(runtime)
            await runtime.ref(order, "o-1003").ask(RequestRefund("chipped spout"))
            await settle(runtime)

            for customer in ("ann", "bob"):
                print(f"orders of {customer}:")
                for summary in await orders_of(read_model, customer):
                    print(f"  {summary.order_id}  {_money(summary.amount_cents):>12}  {summary.status}")
            today = await revenue_on(read_model, datetime.now(UTC).date())
            print(
                f"revenue on {today.day}: {today.orders} orders, captured {_money(today.revenue_cents)},"
                f" refunded {_money(today.refunds_cents)}, net {_money(today.net_cents)}"
            )


if __name__ == "__main__":
    anyio.run(main, sys.argv[1] if len(sys.argv) > 1 else None)
