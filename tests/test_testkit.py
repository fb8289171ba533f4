"""The testing helpers of `actorsrc.testing`: they pass on a right expectation and fail readably on a wrong one."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from actorsrc import (
    Aggregate,
    CodecError,
    EventEnvelope,
    FailurePolicy,
    InvalidDecisionError,
    ProcessManager,
    Projection,
    Send,
    UnknownCommandError,
    UnregisteredEventError,
)
from actorsrc.testing import given, given_process, on, project, projected
from examples.bank import (
    AccountCredited,
    AccountDebited,
    AccountOpened,
    AccountState,
    Credit,
    Debit,
    InsufficientFunds,
    NotOpen,
    OpenAccount,
    account,
)
from examples.shop import (
    CapturePayment,
    MarkPaid,
    MarkShipped,
    OrderLine,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    OrderSummary,
    PaymentCaptured,
    PaymentDeclined,
    fulfilment,
    order,
    orders_by_customer,
    orders_of,
    payment,
    revenue_per_day,
)

MUG = OrderLine("mug", 2, 1_250)
OPENED = AccountOpened("ann", 50)

# -- aggregates, pure ---------------------------------------------------------------------------


def test_then_passes_on_the_events_and_state_decided() -> None:
    decision = given(account, OPENED, AccountCredited(100)).when(Debit(30)).then(AccountDebited(30))
    decision.then_state(balance=70, owner="ann").then_state(AccountState(True, False, "ann", 70, 50))
    assert decision.events == (AccountDebited(30),)
    # Checks chain, and `when` continues from the state after the decision.
    decision.when(Debit(120)).then(AccountDebited(120)).then_state(balance=-50)


def test_a_wrong_list_of_events_fails_with_both_lists_and_a_diff() -> None:
    with pytest.raises(AssertionError) as failure:
        given(account, OPENED).when(Credit(5)).then(AccountCredited(6), AccountDebited(1))
    assert str(failure.value) == (
        "account: given 1 event(s) (AccountOpened), when Credit(amount=5): the events decided: expected 2, got 1\n"
        "  expected:\n"
        "    AccountCredited(amount=6)\n"
        "    AccountDebited(amount=1)\n"
        "  actual:\n"
        "    AccountCredited(amount=5)\n"
        "  diff (- expected, + actual):\n"
        "    - AccountCredited(amount=6)\n"
        "    + AccountCredited(amount=5)\n"
        "    - AccountDebited(amount=1)"
    )


def test_expecting_events_from_a_rejected_command_names_the_rejection() -> None:
    with pytest.raises(AssertionError, match=r"but the command was rejected with NotOpen: Credit needs an open") as e:
        given(account).when(Credit(1)).then(AccountCredited(1))
    assert isinstance(e.value.__cause__, NotOpen)
    with pytest.raises(AssertionError, match="expected a new state, but the command was rejected with NotOpen"):
        given(account).when(Credit(1)).then_state(balance=1)


def test_then_rejected_checks_the_type_and_message_and_returns_the_error() -> None:
    error = given(account, OPENED).when(Debit(51)).then_rejected(InsufficientFunds, match="below the overdraft")
    assert isinstance(error, InsufficientFunds)
    given(account).when(Credit(1)).then_rejected()  # any DomainError
    with pytest.raises(AssertionError) as accepted:
        given(account, OPENED).when(Debit(50)).then_rejected(InsufficientFunds)
    assert str(accepted.value) == (
        "account: given 1 event(s) (AccountOpened), when Debit(amount=50): expected a rejection with "
        "InsufficientFunds, but the command was accepted; events:\n    AccountDebited(amount=50)"
    )
    with pytest.raises(AssertionError, match="expected a rejection with InsufficientFunds, but the command was rej"):
        given(account).when(Debit(1)).then_rejected(InsufficientFunds)
    with pytest.raises(AssertionError, match=r"rejected with NotOpen as expected, but its message 'Debit needs an "):
        given(account).when(Debit(1)).then_rejected(NotOpen, match="closed")


def test_a_wrong_state_fails_with_the_fields_that_differ() -> None:
    with pytest.raises(AssertionError) as fields:
        given(account, OPENED).when(Credit(5)).then_state(balance=6, owner="ann", colour="red")
    assert str(fields.value) == (
        "account: given 1 event(s) (AccountOpened), when Credit(amount=5): the state after differs\n"
        "  balance: expected 6, got 5\n"
        "  colour: expected 'red', got '<no such attribute>'"
    )
    with pytest.raises(AssertionError, match=r"(?s)the state after:\n  expected: AccountState\(.*balance=6.*actual:"):
        given(account, OPENED).when(Credit(5)).then_state(AccountState(True, False, "ann", 6, 50))


def test_a_command_the_aggregate_does_not_declare_is_refused_at_once() -> None:
    with pytest.raises(UnknownCommandError, match=r"MarkPaid is not a command of aggregate 'account' \(accepted: Open"):
        given(account).when(MarkPaid(1))  # type: ignore[arg-type]
    with pytest.raises(UnknownCommandError, match=r"got the class Credit; pass an instance"):
        given(account).when(Credit)  # type: ignore[arg-type]


# A tiny aggregate whose decide returns whatever the command carries, to test what the codec refuses.


@dataclass(frozen=True)
class Counted:
    amount: int


@dataclass(frozen=True)
class Tagged:
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Emit:
    produced: Any


@dataclass(frozen=True)
class Stray:
    pass


def _emit(state: int, command: Emit) -> Sequence[object]:
    produced: Sequence[object] = command.produced
    return produced


def _count(state: int, event: object) -> int:
    return state + 1


echo: Aggregate[int, Emit, object] = Aggregate(
    name="echo", initial=0, decide=_emit, evolve=_count, events={"Counted": Counted, "Tagged": Tagged}, commands=(Emit,)
)


def test_an_event_the_strict_codec_refuses_is_the_commands_rejection() -> None:
    given(echo).when(Emit([Counted(1)])).then(Counted(1)).then_state(1)
    error = given(echo).when(Emit([Counted(1.5)])).then_rejected(CodecError)  # type: ignore[arg-type]
    assert "amount" in str(error)
    with pytest.raises(
        AssertionError, match=r"expected events Counted\(amount=1.5\), but the command was rejected with"
    ):
        given(echo).when(Emit([Counted(1.5)])).then(Counted(1.5))  # type: ignore[arg-type]


def test_a_decision_that_is_not_a_list_of_registered_events_is_refused() -> None:
    given(echo).when(Emit([Stray()])).then_rejected(InvalidDecisionError, match="not one of its events")
    given(echo).when(Emit(Counted(1))).then_rejected(InvalidDecisionError, match="return a list of events")


def test_an_event_that_reads_back_as_another_value_fails_the_test() -> None:
    # JSON has no tuples: a list in a tuple field is stored, but replay would read a tuple back.
    with pytest.raises(AssertionError, match=r"Tagged does not read back from its stored bytes as an equal value"):
        given(echo).when(Emit([Tagged(["a"])]))  # type: ignore[arg-type]
    given(echo).when(Emit([Tagged(("a",))])).then(Tagged(("a",)))


def test_given_events_must_be_storable() -> None:
    with pytest.raises(UnregisteredEventError, match="Stray is not a registered event"):
        given(echo, Stray())
    with pytest.raises(CodecError):
        given(echo, Counted(0.5))  # type: ignore[arg-type]


def _evolve_to_text(state: int, event: object) -> int:
    return "many" if state else 1  # type: ignore[return-value]  # a str in an int state: no snapshot reads it


snapshotted: Aggregate[int, Emit, object] = Aggregate(
    name="snapshotted",
    initial=0,
    decide=_emit,
    evolve=_evolve_to_text,
    events={"Counted": Counted},
    commands=(Emit,),
    snapshot_every=1,
)


def test_with_snapshots_the_state_must_read_back_from_a_snapshot() -> None:
    given(snapshotted).when(Emit([Counted(1)])).then(Counted(1)).then_state(1)
    with pytest.raises(AssertionError, match=r"the state after cannot be snapshotted and read back: .*snapshot"):
        given(snapshotted, Counted(1)).when(Emit([Counted(2)]))


# -- aggregates, end to end ---------------------------------------------------------------------


async def test_when_sent_runs_the_command_through_a_runtime_and_a_store() -> None:
    decision = await given(account, OPENED, AccountCredited(100)).when_sent(Debit(30))
    decision.then(AccountDebited(30)).then_state(balance=70)
    (await given(account).when_sent(Credit(1))).then_rejected(NotOpen, match="needs an open account")
    (await given(account).when_sent(OpenAccount("ann"), command_id="open-1")).then(AccountOpened("ann", 0))
    with pytest.raises(AssertionError, match=r"when Debit\(amount=30\): the events decided: expected 1, got 1"):
        (await given(account, OPENED, AccountCredited(100)).when_sent(Debit(30))).then(AccountDebited(31))


_ticks = itertools.count()


def _evolve_by_the_clock(state: int, event: object) -> int:
    return next(_ticks)  # not a function of state and event: recovery sees another state


drifting: Aggregate[int, Emit, object] = Aggregate(
    name="drifting", initial=0, decide=_emit, evolve=_evolve_by_the_clock, events={"Counted": Counted}, commands=(Emit,)
)


async def test_when_sent_finds_a_state_recovery_would_not_rebuild() -> None:
    with pytest.raises(AssertionError, match=r"(?s)state recovered from the store:.*is evolve deterministic\?"):
        await given(drifting, Counted(1)).when_sent(Emit([Counted(2)]))


# -- projections ---------------------------------------------------------------------------------


async def test_project_returns_the_rows_of_the_projections_tables() -> None:
    tables = await project(
        orders_by_customer,
        on(order, "o-1", OrderPlaced("ann", 2_500, (MUG,)), OrderPaid(2_500)),
        on(order, "o-2", OrderPlaced("bob", 100, ())),
    )
    tables.then_rows("orders_by_customer", ("bob", "o-2", 100, "placed"), ("ann", "o-1", 2_500, "paid"))
    tables.then_rows("orders_by_customer", ("ann", "o-1", 2_500, "paid"), ("bob", "o-2", 100, "placed"), ordered=True)
    assert list(tables) == ["orders_by_customer"]
    # Bare events go to one instance of the projection's only aggregate (or of aggregate=...).
    (await project(orders_by_customer, OrderPlaced("ann", 1, ()))).then_rows(
        "orders_by_customer", ("ann", "test", 1, "placed")
    )


async def test_wrong_rows_fail_with_both_lists_and_a_diff() -> None:
    tables = await project(orders_by_customer, OrderPlaced("ann", 1, ()), aggregate=order, aggregate_id="o-9")
    with pytest.raises(AssertionError) as failure:
        tables.then_rows("orders_by_customer", ("ann", "o-9", 1, "paid"))
    assert str(failure.value) == (
        "projection 'orders_by_customer': rows of 'orders_by_customer' (in any order; both sorted): "
        "expected 1, got 1\n"
        "  expected:\n    ('ann', 'o-9', 1, 'paid')\n"
        "  actual:\n    ('ann', 'o-9', 1, 'placed')\n"
        "  diff (- expected, + actual):\n    - ('ann', 'o-9', 1, 'paid')\n    + ('ann', 'o-9', 1, 'placed')"
    )
    with pytest.raises(KeyError, match="made no table 'orders'; its tables: orders_by_customer"):
        tables["orders"]


async def test_projected_yields_the_read_model_for_the_applications_queries() -> None:
    async with projected(orders_by_customer, on(order, "o-1", OrderPlaced("ann", 5, ()))) as read_model:
        assert await orders_of(read_model, "ann") == [OrderSummary("o-1", "ann", 5, "placed")]


async def test_a_projection_over_several_aggregates_takes_events_placed_with_on() -> None:
    tables = await project(
        revenue_per_day,
        on(order, "o-1", OrderPlaced("ann", 700, ())),
        on(payment, "pay-o-1", PaymentCaptured("o-1", 700)),
    )
    ((_, orders, revenue, refunds),) = tables["revenue_per_day"]
    assert (orders, revenue, refunds) == (1, 700, 0)
    with pytest.raises(TypeError, match=r"the bare event OrderPlaced\(.*\) has no stream; pass aggregate="):
        await project(revenue_per_day, OrderPlaced("ann", 700, ()))


def _setup_broken(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS broken (n INTEGER)")


def _handle_broken(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
    raise ValueError(f"cannot handle {envelope.type}")


broken = Projection(name="broken", handle=_handle_broken, setup=_setup_broken, aggregates=[order])


async def test_an_event_the_projection_parks_fails_the_test_with_its_error() -> None:
    quick = Projection(
        name="broken", handle=_handle_broken, setup=_setup_broken, aggregates=[order], failure=FailurePolicy(1, 0.001)
    )
    with pytest.raises(AssertionError, match=r"failed on 1 event\(s\) and parked them:\n  OrderPlaced \(order-test.*"):
        await project(quick, OrderPlaced("ann", 1, ()))


async def test_no_events_gives_the_empty_tables_setup_made() -> None:
    (await project(broken)).then_rows("broken")


# -- process managers ------------------------------------------------------------------------------


def test_given_process_collects_the_commands_sent_and_the_state() -> None:
    outcome = given_process(
        fulfilment,
        on(order, "o-1", OrderPlaced("ann", 500, (MUG,))),
        on(payment, "pay-o-1", PaymentCaptured("o-1", 500)),
    )
    outcome.then_sends(
        Send(payment, "pay-o-1", CapturePayment("o-1", 500)),
        Send(order, "o-1", MarkPaid(500)),
    ).then_state("o-1", stage="captured", captured=True)


def test_wrong_commands_fail_with_the_targets_and_a_diff() -> None:
    outcome = given_process(fulfilment, on(payment, "pay-o-1", PaymentDeclined("o-1", 9, "no funds")))
    with pytest.raises(AssertionError) as failure:
        outcome.then_sends(Send(order, "o-1", MarkPaid(9)))
    message = str(failure.value)
    assert message.startswith("fulfilment: the commands sent: expected 1, got 1\n  expected:\n")
    assert "    - order 'o-1' <- MarkPaid(amount_cents=9)\n" in message
    assert "    + order 'o-1' <- CancelOrder(reason='payment declined: no funds')" in message
    with pytest.raises(AssertionError, match=r"fulfilment: state of 'o-1' differs\n  stage: expected 'shipped', got"):
        outcome.then_state("o-1", stage="shipped")
    with pytest.raises(AssertionError, match=r"no event reached instance 'o-2' \(instances: 'o-1'\)"):
        outcome.state("o-2")


def test_a_saga_command_its_target_does_not_declare_is_refused() -> None:
    def react(state: int, envelope: EventEnvelope[Any]) -> tuple[int, Sequence[Send]]:
        return state + 1, [Send(order, "o-1", Credit(1))]

    wrong = ProcessManager(name="wrong", key=lambda envelope: "k", initial=0, react=react, aggregates=[order])
    with pytest.raises(UnknownCommandError, match="Credit is not a command of aggregate 'order'"):
        given_process(wrong, OrderPaid(1))


def test_given_process_skips_events_outside_its_types() -> None:
    outcome = given_process(fulfilment, on(account, "a", AccountCredited(1)), on(order, "o-1", OrderShipped()))
    outcome.then_sends()
    assert outcome.states == {}
    with pytest.raises(AssertionError, match=r"(?s)expected 1, got 0.*  actual:\n    \(none\)\n"):
        outcome.then_sends(Send(order, "o-1", MarkShipped()))


def test_then_state_with_no_expectation_is_refused_rather_than_passing() -> None:
    decision = given(account, AccountOpened(owner="ann", overdraft_limit=0)).when(Credit(70))
    with pytest.raises(TypeError, match="needs the expected state"):
        decision.then_state()
