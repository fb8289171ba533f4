"""A shop as pure functions: orders, payments and shipments. Amounts are integer cents.

The three aggregates never call each other; the fulfilment saga (`examples.shop.saga`) moves an
order along by reacting to their events. Payment and shipment events carry the order id so the saga
can tell which order they belong to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from actorsrc import Aggregate, DomainError

CAPTURE_LIMIT_CENTS = 1_000_000
"""Captures above this are declined by the (simulated) payment provider."""

# -- order ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderLine:
    sku: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    customer_id: str
    lines: tuple[OrderLine, ...]


@dataclass(frozen=True, slots=True)
class MarkPaid:
    amount_cents: int


@dataclass(frozen=True, slots=True)
class MarkShipped:
    pass


@dataclass(frozen=True, slots=True)
class CancelOrder:
    reason: str


@dataclass(frozen=True, slots=True)
class RequestRefund:
    reason: str


@dataclass(frozen=True, slots=True)
class MarkRefunded:
    amount_cents: int


OrderCommand = PlaceOrder | MarkPaid | MarkShipped | CancelOrder | RequestRefund | MarkRefunded


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    customer_id: str
    amount_cents: int
    lines: tuple[OrderLine, ...]


@dataclass(frozen=True, slots=True)
class OrderPaid:
    amount_cents: int


@dataclass(frozen=True, slots=True)
class OrderShipped:
    pass


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    reason: str


@dataclass(frozen=True, slots=True)
class OrderRefundRequested:
    amount_cents: int
    reason: str


@dataclass(frozen=True, slots=True)
class OrderRefunded:
    amount_cents: int


OrderEvent = OrderPlaced | OrderPaid | OrderShipped | OrderCancelled | OrderRefundRequested | OrderRefunded

OrderStatus = Literal["new", "placed", "paid", "shipped", "cancelled", "refund_requested", "refunded"]


class OrderNotPlaced(DomainError):
    """A command for an order that was never placed."""


class OrderAlreadyPlaced(DomainError):
    """PlaceOrder on an order id that is taken."""


class InvalidOrder(DomainError):
    """No lines, or a line with a quantity or price that is not positive."""


class OrderNotPayable(DomainError):
    """MarkPaid on an order that is not awaiting payment, or for the wrong amount."""


class OrderNotShippable(DomainError):
    """MarkShipped on an unpaid, cancelled or already shipped order."""


class OrderNotCancellable(DomainError):
    """CancelOrder once the order is paid (ask for a refund instead) or already cancelled."""


class RefundNotAllowed(DomainError):
    """RequestRefund on an unpaid order or one already refunded; MarkRefunded without a request."""


@dataclass(frozen=True, slots=True)
class OrderState:
    status: OrderStatus = "new"
    customer_id: str = ""
    amount_cents: int = 0
    shipped: bool = False

    @property
    def paid(self) -> bool:
        return self.status in ("paid", "shipped", "refund_requested", "refunded")


def decide_order(state: OrderState, command: OrderCommand) -> Sequence[OrderEvent]:
    match command:
        case PlaceOrder(customer_id, lines):
            if state.status != "new":
                raise OrderAlreadyPlaced(f"the order is already placed (status {state.status})")
            if not lines:
                raise InvalidOrder("an order needs at least one line")
            for line in lines:
                if line.quantity <= 0 or line.unit_price_cents <= 0:
                    raise InvalidOrder(f"quantity and unit price must be positive: {line!r}")
            amount = sum(line.quantity * line.unit_price_cents for line in lines)
            return [OrderPlaced(customer_id, amount, tuple(lines))]
    if state.status == "new":
        raise OrderNotPlaced(f"{type(command).__name__} needs a placed order")
    match command:
        case MarkPaid(amount_cents):
            if state.status != "placed":
                raise OrderNotPayable(f"the order is {state.status}, not awaiting payment")
            if amount_cents != state.amount_cents:
                raise OrderNotPayable(f"paid {amount_cents} cents for an order of {state.amount_cents}")
            return [OrderPaid(amount_cents)]
        case MarkShipped():
            # A refund may have been requested while the parcel was on its way: it still ships.
            if not state.paid or state.shipped:
                raise OrderNotShippable(f"the order is {state.status}{' and shipped' if state.shipped else ''}")
            return [OrderShipped()]
        case CancelOrder(reason):
            if state.status != "placed":
                raise OrderNotCancellable(f"the order is {state.status}; only an unpaid order can be cancelled")
            return [OrderCancelled(reason)]
        case RequestRefund(reason):
            if state.status not in ("paid", "shipped"):
                raise RefundNotAllowed(f"the order is {state.status}; only a paid order can be refunded")
            return [OrderRefundRequested(state.amount_cents, reason)]
        case MarkRefunded(amount_cents):
            if state.status != "refund_requested":
                raise RefundNotAllowed(f"the order is {state.status}; no refund was requested")
            return [OrderRefunded(amount_cents)]
    raise TypeError(f"unexpected command {command!r}")


def evolve_order(state: OrderState, event: OrderEvent) -> OrderState:
    match event:
        case OrderPlaced(customer_id, amount_cents):
            return replace(state, status="placed", customer_id=customer_id, amount_cents=amount_cents)
        case OrderPaid():
            return replace(state, status="paid")
        case OrderShipped():
            return replace(state, status="shipped" if state.status == "paid" else state.status, shipped=True)
        case OrderCancelled():
            return replace(state, status="cancelled")
        case OrderRefundRequested():
            return replace(state, status="refund_requested")
        case OrderRefunded():
            return replace(state, status="refunded")
    return state


order: Aggregate[OrderState, OrderCommand, OrderEvent] = Aggregate(
    name="order",
    initial=OrderState(),
    decide=decide_order,
    evolve=evolve_order,
    events={
        "OrderPlaced": OrderPlaced,
        "OrderPaid": OrderPaid,
        "OrderShipped": OrderShipped,
        "OrderCancelled": OrderCancelled,
        "OrderRefundRequested": OrderRefundRequested,
        "OrderRefunded": OrderRefunded,
    },
    commands=(PlaceOrder, MarkPaid, MarkShipped, CancelOrder, RequestRefund, MarkRefunded),
)

# -- payment ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CapturePayment:
    order_id: str
    amount_cents: int


@dataclass(frozen=True, slots=True)
class RefundPayment:
    order_id: str


PaymentCommand = CapturePayment | RefundPayment


@dataclass(frozen=True, slots=True)
class PaymentCaptured:
    order_id: str
    amount_cents: int


@dataclass(frozen=True, slots=True)
class PaymentDeclined:
    order_id: str
    amount_cents: int
    reason: str


@dataclass(frozen=True, slots=True)
class PaymentRefunded:
    order_id: str
    amount_cents: int


PaymentEvent = PaymentCaptured | PaymentDeclined | PaymentRefunded

PaymentStatus = Literal["new", "captured", "declined", "refunded"]


class PaymentAlreadyProcessed(DomainError):
    """A second CapturePayment on the same payment."""


class InvalidPaymentAmount(DomainError):
    """A capture of zero or fewer cents."""


class PaymentNotRefundable(DomainError):
    """RefundPayment on a payment that is not captured, already refunded, or for another order."""


@dataclass(frozen=True, slots=True)
class PaymentState:
    status: PaymentStatus = "new"
    order_id: str = ""
    amount_cents: int = 0


def decide_payment(state: PaymentState, command: PaymentCommand) -> Sequence[PaymentEvent]:
    match command:
        case CapturePayment(order_id, amount_cents):
            if state.status != "new":
                raise PaymentAlreadyProcessed(f"the payment for order {state.order_id!r} is {state.status}")
            if amount_cents <= 0:
                raise InvalidPaymentAmount(f"amount must be positive, got {amount_cents}")
            if amount_cents > CAPTURE_LIMIT_CENTS:
                # A decline is a fact the saga reacts to, not an error for whoever asked.
                reason = f"{amount_cents} cents is over the capture limit of {CAPTURE_LIMIT_CENTS}"
                return [PaymentDeclined(order_id, amount_cents, reason)]
            return [PaymentCaptured(order_id, amount_cents)]
        case RefundPayment(order_id):
            if state.status != "captured":
                raise PaymentNotRefundable(f"the payment is {state.status}, not captured")
            if order_id != state.order_id:
                raise PaymentNotRefundable(f"the payment belongs to order {state.order_id!r}, not {order_id!r}")
            return [PaymentRefunded(order_id, state.amount_cents)]
    raise TypeError(f"unexpected command {command!r}")


def evolve_payment(state: PaymentState, event: PaymentEvent) -> PaymentState:
    match event:
        case PaymentCaptured(order_id, amount_cents):
            return PaymentState("captured", order_id, amount_cents)
        case PaymentDeclined(order_id, amount_cents):
            return PaymentState("declined", order_id, amount_cents)
        case PaymentRefunded():
            return replace(state, status="refunded")
    return state


payment: Aggregate[PaymentState, PaymentCommand, PaymentEvent] = Aggregate(
    name="payment",
    initial=PaymentState(),
    decide=decide_payment,
    evolve=evolve_payment,
    events={
        "PaymentCaptured": PaymentCaptured,
        "PaymentDeclined": PaymentDeclined,
        "PaymentRefunded": PaymentRefunded,
    },
    commands=(CapturePayment, RefundPayment),
)

# -- shipment ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DispatchShipment:
    order_id: str


@dataclass(frozen=True, slots=True)
class ShipmentDispatched:
    order_id: str


class AlreadyDispatched(DomainError):
    """A second DispatchShipment: a parcel leaves once."""


@dataclass(frozen=True, slots=True)
class ShipmentState:
    dispatched: bool = False
    order_id: str = ""


def decide_shipment(state: ShipmentState, command: DispatchShipment) -> Sequence[ShipmentDispatched]:
    match command:
        case DispatchShipment(order_id):
            if state.dispatched:
                raise AlreadyDispatched(f"the shipment for order {state.order_id!r} has left already")
            return [ShipmentDispatched(order_id)]
    raise TypeError(f"unexpected command {command!r}")


def evolve_shipment(state: ShipmentState, event: ShipmentDispatched) -> ShipmentState:
    return ShipmentState(dispatched=True, order_id=event.order_id)


shipment: Aggregate[ShipmentState, DispatchShipment, ShipmentDispatched] = Aggregate(
    name="shipment",
    initial=ShipmentState(),
    decide=decide_shipment,
    evolve=evolve_shipment,
    events={"ShipmentDispatched": ShipmentDispatched},
    commands=(DispatchShipment,),
)


def payment_id(order_id: str) -> str:
    """The payment instance that captures an order's money."""
    return f"pay-{order_id}"


def shipment_id(order_id: str) -> str:
    """The shipment instance that carries an order's goods."""
    return f"ship-{order_id}"


def order_id_of(stream_id: str, event: object) -> str | None:
    """The order an event belongs to: order events live in its stream, the others name it."""
    found = getattr(event, "order_id", None)
    if isinstance(found, str):
        return found
    prefix = f"{order.name}-"
    return stream_id[len(prefix) :] if stream_id.startswith(prefix) else None
