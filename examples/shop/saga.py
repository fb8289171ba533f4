"""The fulfilment saga: one instance per order, moving it from placed to paid to shipped, or to
cancelled when the payment is declined, and through a refund when one is asked for.

It only ever reacts to events and sends commands; the aggregates decide. The runtime gives each
command an id derived from the triggering event, so a replayed saga (`runtime.rebuild(fulfilment)`)
re-sends the same commands and the aggregates recognise them as duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from actorsrc import EventEnvelope, ProcessManager, Send
from examples.shop.domain import (
    CancelOrder,
    CapturePayment,
    DispatchShipment,
    MarkPaid,
    MarkRefunded,
    MarkShipped,
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    OrderRefundRequested,
    PaymentCaptured,
    PaymentDeclined,
    PaymentRefunded,
    RefundPayment,
    ShipmentDispatched,
    order,
    order_id_of,
    payment,
    payment_id,
    shipment,
    shipment_id,
)

Stage = Literal["new", "awaiting_payment", "captured", "dispatching", "shipped", "cancelled", "refunding", "refunded"]


@dataclass(frozen=True, slots=True)
class FulfilmentState:
    stage: Stage = "new"
    amount_cents: int = 0
    captured: bool = False  # apart from `stage`: money can arrive after the order was cancelled


def fulfilment_key(envelope: EventEnvelope[Any]) -> str | None:
    return order_id_of(envelope.stream_id, envelope.event)


def react(state: FulfilmentState, envelope: EventEnvelope[Any]) -> tuple[FulfilmentState, Sequence[Send]]:
    order_id = fulfilment_key(envelope)
    assert order_id is not None  # the runner only calls react for events with a key
    match envelope.event:
        case OrderPlaced(_, amount_cents):
            if state.stage != "new":
                return state, ()
            capture = CapturePayment(order_id, amount_cents)
            return FulfilmentState("awaiting_payment", amount_cents), [Send(payment, payment_id(order_id), capture)]
        case PaymentCaptured():
            state = replace(state, captured=True)
            if state.stage == "cancelled":  # the customer cancelled while the capture was in flight
                return state, [Send(payment, payment_id(order_id), RefundPayment(order_id))]
            return replace(state, stage="captured"), [Send(order, order_id, MarkPaid(state.amount_cents))]
        case OrderPaid():
            # Dispatch only once the order accepted the payment: until then it could still be cancelled.
            dispatch = Send(shipment, shipment_id(order_id), DispatchShipment(order_id))
            return replace(state, stage="dispatching"), [dispatch]
        case ShipmentDispatched():
            # A refund requested while the parcel travelled keeps its stage; the order records the shipment.
            stage: Stage = "shipped" if state.stage == "dispatching" else state.stage
            return replace(state, stage=stage), [Send(order, order_id, MarkShipped())]
        case PaymentDeclined(_, _, reason):
            cancel = CancelOrder(f"payment declined: {reason}")
            return replace(state, stage="cancelled"), [Send(order, order_id, cancel)]
        case OrderCancelled():
            cancelled = replace(state, stage="cancelled")
            if state.captured:  # cancelled by the customer after the money was taken: give it back
                return cancelled, [Send(payment, payment_id(order_id), RefundPayment(order_id))]
            return cancelled, ()
        case OrderRefundRequested():
            if not state.captured:
                return state, ()
            return replace(state, stage="refunding"), [Send(payment, payment_id(order_id), RefundPayment(order_id))]
        case PaymentRefunded(_, amount_cents):
            if state.stage != "refunding":  # the refund of a cancelled order: the order is closed already
                return state, ()
            return replace(state, stage="refunded"), [Send(order, order_id, MarkRefunded(amount_cents))]
    return state, ()


fulfilment: ProcessManager[FulfilmentState] = ProcessManager(
    name="fulfilment",
    key=fulfilment_key,
    initial=FulfilmentState(),
    react=react,
    events={
        "OrderPlaced": OrderPlaced,
        "OrderPaid": OrderPaid,
        "OrderCancelled": OrderCancelled,
        "OrderRefundRequested": OrderRefundRequested,
        "PaymentCaptured": PaymentCaptured,
        "PaymentDeclined": PaymentDeclined,
        "PaymentRefunded": PaymentRefunded,
        "ShipmentDispatched": ShipmentDispatched,
    },
)
