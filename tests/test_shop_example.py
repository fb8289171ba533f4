"""The shop example end to end: the fulfilment saga, its read models, rebuilds and correlation."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from actorsrc import RecordedEvent, Runtime, Send, SQLiteEventStore, SQLiteReadModel
from actorsrc.testing import given, given_process, on, project
from examples.shop import (
    CAPTURE_LIMIT_CENTS,
    AlreadyDispatched,
    CancelOrder,
    CapturePayment,
    DispatchShipment,
    InvalidOrder,
    MarkPaid,
    MarkRefunded,
    MarkShipped,
    OrderCancelled,
    OrderLine,
    OrderNotCancellable,
    OrderNotPayable,
    OrderPaid,
    OrderPlaced,
    OrderRefundRequested,
    OrderShipped,
    OrderState,
    OrderSummary,
    PaymentCaptured,
    PaymentDeclined,
    PaymentNotRefundable,
    PaymentRefunded,
    PlaceOrder,
    RefundNotAllowed,
    RefundPayment,
    RequestRefund,
    ShipmentDispatched,
    fulfilment,
    order,
    orders_by_customer,
    orders_of,
    payment,
    revenue_on,
    revenue_per_day,
    shipment,
)
from examples.shop.app import main, open_shop, settle
from examples.shop.saga import FulfilmentState

Shop = tuple[SQLiteEventStore, SQLiteReadModel, Runtime]

MUG = OrderLine("mug", 2, 1_250)
TEAPOT = OrderLine("teapot", 1, 3_900)
SOFA = OrderLine("sofa", 1, CAPTURE_LIMIT_CENTS + 1)


@asynccontextmanager
async def shop(tmp_path: Path) -> AsyncIterator[Shop]:
    with anyio.fail_after(10):  # a saga that stalls fails the test instead of hanging it
        async with open_shop(tmp_path / "shop.db", tmp_path / "shop-read.db") as opened:
            yield opened


async def place(runtime: Runtime, order_id: str, customer: str, *lines: OrderLine, **options: Any) -> int:
    outcome = await runtime.ref(order, order_id).ask(
        PlaceOrder(customer, lines), consistency=[orders_by_customer], **options
    )
    return outcome.position


async def types_in(store: SQLiteEventStore, stream_id: str) -> list[str]:
    return [record.type for record in await store.read_stream(stream_id)]


async def table(read_model: SQLiteReadModel, name: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in await read_model.query(f"SELECT * FROM {name} ORDER BY 1, 2")]


async def saga_states(read_model: SQLiteReadModel) -> list[tuple[Any, ...]]:
    rows = await read_model.query(
        "SELECT key, state FROM actorsrc_process_state WHERE manager = ? ORDER BY key", (fulfilment.name,)
    )
    return [tuple(row) for row in rows]


# -- end to end -----------------------------------------------------------------------------------


async def test_placed_order_is_paid_and_shipped_by_the_saga(tmp_path: Path) -> None:
    async with shop(tmp_path) as (store, read_model, runtime):
        position = await place(runtime, "o-1", "ann", MUG, TEAPOT)
        # Read-your-writes: the row exists at once; the saga may already have moved it along.
        (placed,) = await orders_of(read_model, "ann")
        assert (placed.order_id, placed.amount_cents) == ("o-1", 6_400)
        assert placed.status in ("placed", "paid", "shipped")

        await runtime.wait_for(fulfilment, position)
        assert await types_in(store, "payment-pay-o-1") == ["PaymentCaptured"]  # sent for OrderPlaced
        await settle(runtime)

        assert await orders_of(read_model, "ann") == [OrderSummary("o-1", "ann", 6_400, "shipped")]
        assert await types_in(store, "order-o-1") == ["OrderPlaced", "OrderPaid", "OrderShipped"]
        assert await types_in(store, "shipment-ship-o-1") == ["ShipmentDispatched"]
        assert (await runtime.ref(order, "o-1").state()).status == "shipped"
        assert await runtime.parked() == []


async def test_declined_payment_cancels_the_order_and_ships_nothing(tmp_path: Path) -> None:
    async with shop(tmp_path) as (store, read_model, runtime):
        await place(runtime, "o-2", "bob", SOFA)
        await settle(runtime)

        assert await orders_of(read_model, "bob") == [OrderSummary("o-2", "bob", SOFA.unit_price_cents, "cancelled")]
        assert await types_in(store, "payment-pay-o-2") == ["PaymentDeclined"]
        assert await types_in(store, "order-o-2") == ["OrderPlaced", "OrderCancelled"]
        assert await types_in(store, "shipment-ship-o-2") == []
        (cancelled,) = [r for r in await store.read_stream("order-o-2") if r.type == "OrderCancelled"]
        assert b"over the capture limit" in cancelled.data


async def test_refund_after_shipping_refunds_the_payment_and_the_order(tmp_path: Path) -> None:
    async with shop(tmp_path) as (store, read_model, runtime):
        await place(runtime, "o-3", "ann", TEAPOT)
        await settle(runtime)
        await runtime.ref(order, "o-3").ask(RequestRefund("chipped spout"))
        await settle(runtime)

        assert await orders_of(read_model, "ann") == [OrderSummary("o-3", "ann", 3_900, "refunded")]
        assert await types_in(store, "payment-pay-o-3") == ["PaymentCaptured", "PaymentRefunded"]
        assert await types_in(store, "order-o-3") == [
            "OrderPlaced",
            "OrderPaid",
            "OrderShipped",
            "OrderRefundRequested",
            "OrderRefunded",
        ]
        with pytest.raises(RefundNotAllowed):
            await runtime.ref(order, "o-3").ask(RequestRefund("again"))


async def test_revenue_per_day_adds_captures_and_refunds_on_the_day_they_were_recorded(tmp_path: Path) -> None:
    async with shop(tmp_path) as (store, read_model, runtime):
        await place(runtime, "o-1", "ann", MUG, TEAPOT)
        await place(runtime, "o-2", "bob", SOFA)
        await place(runtime, "o-3", "ann", TEAPOT)
        await settle(runtime)
        await runtime.ref(order, "o-3").ask(RequestRefund("chipped spout"))
        await settle(runtime)

        # Expected figures straight from the log, so a run across midnight UTC still adds up.
        expected: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
        for record in await store.read_all(0, 10_000):
            day = record.recorded_at.astimezone(UTC).date()
            column = {"OrderPlaced": 0, "PaymentCaptured": 1, "PaymentRefunded": 2}.get(record.type)
            if column is not None:
                expected[day][column] += 1 if column == 0 else msgspec.json.decode(record.data)["amount_cents"]
        for day, (orders, revenue, refunds) in expected.items():
            figures = await revenue_on(read_model, day)
            assert (figures.orders, figures.revenue_cents, figures.refunds_cents) == (orders, revenue, refunds)
        totals = [sum(figures[i] for figures in expected.values()) for i in range(3)]
        assert totals == [3, 6_400 + 3_900, 3_900]  # the declined sofa earns nothing

        quiet = await revenue_on(read_model, date(2000, 1, 1))
        assert (quiet.orders, quiet.revenue_cents, quiet.refunds_cents, quiet.net_cents) == (0, 0, 0, 0)


async def test_rebuilt_read_models_equal_the_live_ones(tmp_path: Path) -> None:
    async with shop(tmp_path) as (_, read_model, runtime):
        await place(runtime, "o-1", "ann", MUG)
        await place(runtime, "o-2", "bob", SOFA)
        await place(runtime, "o-3", "ann", TEAPOT)
        await settle(runtime)
        await runtime.ref(order, "o-3").ask(RequestRefund("changed my mind"))
        await settle(runtime)
        orders_before = await table(read_model, "orders_by_customer")
        revenue_before = await table(read_model, "revenue_per_day")
        assert len(orders_before) == 3

        await runtime.rebuild(orders_by_customer)
        await runtime.rebuild(revenue_per_day)

        assert await table(read_model, "orders_by_customer") == orders_before
        assert await table(read_model, "revenue_per_day") == revenue_before
        assert [o.order_id for o in await orders_of(read_model, "ann")] == ["o-1", "o-3"]  # placement order kept


async def test_replaying_the_saga_from_the_start_sends_nothing_new(tmp_path: Path) -> None:
    async with shop(tmp_path) as (store, read_model, runtime):
        await place(runtime, "o-1", "ann", MUG)
        await place(runtime, "o-2", "bob", SOFA)
        await place(runtime, "o-3", "ann", TEAPOT)
        await settle(runtime)
        await runtime.ref(order, "o-3").ask(RequestRefund("changed my mind"))
        before = await settle(runtime)
        states = await saga_states(read_model)
        assert before == await store.last_position()

        assert await runtime.rebuild(fulfilment) == before
        await settle(runtime)

        # Every command went out again with its original id and was recognised as a duplicate.
        assert await store.last_position() == before
        assert await saga_states(read_model) == states
        assert await runtime.parked() == []


async def test_saga_commands_carry_the_correlation_and_causation_of_the_order(tmp_path: Path) -> None:
    async with shop(tmp_path) as (store, _, runtime):
        await place(runtime, "o-1", "ann", MUG, correlation_id="checkout-42")
        await settle(runtime)
        await runtime.ref(order, "o-1").ask(RequestRefund("wrong colour"), correlation_id="refund-7")
        await settle(runtime)

        records = await store.read_all(0, 10_000)
        by_type: dict[str, RecordedEvent] = {record.type: record for record in records}
        assert len(by_type) == len(records)  # one order: each type once
        placed = by_type["OrderPlaced"]
        assert placed.metadata.correlation_id == "checkout-42"
        refund = by_type["OrderRefundRequested"]
        assert refund.metadata.correlation_id == "refund-7"
        caused_by = {
            "PaymentCaptured": placed,
            "OrderPaid": by_type["PaymentCaptured"],
            "ShipmentDispatched": by_type["OrderPaid"],
            "OrderShipped": by_type["ShipmentDispatched"],
            "PaymentRefunded": refund,
            "OrderRefunded": by_type["PaymentRefunded"],
        }
        for type_name, trigger in caused_by.items():
            metadata = by_type[type_name].metadata
            assert metadata.causation_id == trigger.metadata.event_id, type_name
            assert metadata.correlation_id == trigger.metadata.correlation_id, type_name
            assert metadata.command_id == f"fulfilment:{trigger.metadata.event_id}:0", type_name
        assert by_type["OrderShipped"].metadata.correlation_id == "checkout-42"
        assert by_type["OrderRefunded"].metadata.correlation_id == "refund-7"


async def test_demo_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with anyio.fail_after(10):
        await main(str(tmp_path))
    out = capsys.readouterr().out
    assert "o-1001         64.00  shipped" in out
    assert "o-1002      15000.00  cancelled" in out
    assert "o-1003         39.00  refunded" in out
    assert "3 orders, captured 103.00, refunded 39.00, net 64.00" in out


# -- pure domain and saga decisions --------------------------------------------------------------


def test_order_rules() -> None:
    given(order).when(PlaceOrder("ann", ())).then_rejected(InvalidOrder, match="at least one line")
    given(order).when(PlaceOrder("ann", (OrderLine("mug", 0, 100),))).then_rejected(InvalidOrder, match="positive")
    placed = OrderPlaced("ann", 6_400, (MUG, TEAPOT))
    given(order).when(PlaceOrder("ann", (MUG, TEAPOT))).then(placed)
    given(order, placed).when(MarkPaid(1)).then_rejected(OrderNotPayable, match="paid 1 cents for an order of 6400")
    given(order, placed).when(RequestRefund("unpaid")).then_rejected(RefundNotAllowed)
    paid = given(order, placed).when(MarkPaid(6_400)).then(OrderPaid(6_400))
    paid.when(CancelOrder("too late")).then_rejected(OrderNotCancellable)
    paid.when(MarkRefunded(6_400)).then_rejected(RefundNotAllowed, match="no refund was requested")
    # A refund asked for while the parcel travels: it still ships, and the refund stays the status.
    refunding = paid.when(RequestRefund("late")).then(OrderRefundRequested(6_400, "late"))
    refunding.when(MarkShipped()).then(OrderShipped()).then_state(
        OrderState("refund_requested", "ann", 6_400, shipped=True)
    )


def test_payment_and_shipment_rules() -> None:
    given(payment).when(CapturePayment("o-1", 500)).then(PaymentCaptured("o-1", 500))
    over = CAPTURE_LIMIT_CENTS + 1
    given(payment).when(CapturePayment("o-1", over)).then(
        PaymentDeclined("o-1", over, f"{over} cents is over the capture limit of {CAPTURE_LIMIT_CENTS}")
    )
    given(payment, PaymentCaptured("o-1", 500)).when(RefundPayment("o-1")).then(PaymentRefunded("o-1", 500))
    given(payment, PaymentCaptured("o-1", 500)).when(RefundPayment("o-2")).then_rejected(PaymentNotRefundable)
    given(shipment).when(DispatchShipment("o-1")).then(ShipmentDispatched("o-1")).when(
        DispatchShipment("o-1")
    ).then_rejected(AlreadyDispatched)


async def test_orders_by_customer_keeps_a_pending_refund_as_the_status_when_the_parcel_ships() -> None:
    tables = await project(
        orders_by_customer,
        on(order, "o-1", OrderPlaced("ann", 3_900, (TEAPOT,)), OrderPaid(3_900)),
        on(order, "o-2", OrderPlaced("ann", 2_500, (MUG,)), OrderPaid(2_500), OrderRefundRequested(2_500, "late")),
        on(order, "o-1", OrderShipped()),
        on(order, "o-2", OrderShipped()),
    )
    tables.then_rows("orders_by_customer", ("ann", "o-1", 3_900, "shipped"), ("ann", "o-2", 2_500, "refund_requested"))


PLACED = on(order, "o-1", OrderPlaced("ann", 500, (OrderLine("mug", 1, 500),)))
CAPTURE = Send(payment, "pay-o-1", CapturePayment("o-1", 500))
REFUND = Send(payment, "pay-o-1", RefundPayment("o-1"))


def test_saga_refunds_money_captured_for_an_order_cancelled_meanwhile() -> None:
    # The customer cancelled before the capture landed: the capture is given back, nothing ships, and the
    # refund of a closed order marks nothing on it.
    given_process(
        fulfilment,
        PLACED,
        on(order, "o-1", OrderCancelled("changed my mind")),
        on(payment, "pay-o-1", PaymentCaptured("o-1", 500), PaymentRefunded("o-1", 500)),
    ).then_sends(CAPTURE, REFUND).then_state("o-1", stage="cancelled", captured=True)
    # The other way round: captured first, then cancelled.
    given_process(
        fulfilment,
        PLACED,
        on(payment, "pay-o-1", PaymentCaptured("o-1", 500)),
        on(order, "o-1", OrderCancelled("changed my mind")),
    ).then_sends(CAPTURE, Send(order, "o-1", MarkPaid(500)), REFUND).then_state("o-1", stage="cancelled")


def test_saga_marks_a_shipment_that_left_during_a_refund_without_losing_the_refund_stage() -> None:
    given_process(
        fulfilment,
        PLACED,
        on(payment, "pay-o-1", PaymentCaptured("o-1", 500)),
        on(order, "o-1", OrderPaid(500), OrderRefundRequested(500, "late")),
        on(shipment, "ship-o-1", ShipmentDispatched("o-1")),
    ).then_sends(
        CAPTURE,
        Send(order, "o-1", MarkPaid(500)),
        Send(shipment, "ship-o-1", DispatchShipment("o-1")),
        REFUND,
        Send(order, "o-1", MarkShipped()),
    ).then_state("o-1", FulfilmentState("refunding", 500, captured=True))
