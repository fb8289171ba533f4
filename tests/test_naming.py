"""Event-name lint: vague or present-tense names are flagged with a suggestion; good names pass."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import make_dataclass
from typing import Any

import pytest

from actorsrc import Aggregate
from actorsrc.app import App
from actorsrc.cli import main
from actorsrc.lint import NamingWarning, check_event_names
from examples.bank import account
from examples.shop.domain import order, payment, shipment


def _aggregate(name: str, event_names: Sequence[str]) -> Aggregate[Any, Any, Any]:
    """An aggregate that registers `event_names`; its behaviour does not matter here."""
    return Aggregate(
        name=name,
        initial=None,
        decide=lambda state, command: [],
        evolve=lambda state, event: state,
        events={event_name: make_dataclass(event_name, []) for event_name in event_names},
        commands=(make_dataclass("Noop", []),),
    )


def _flagged(name: str, *event_names: str) -> dict[str, NamingWarning]:
    return {warning.event: warning for warning in check_event_names([_aggregate(name, event_names)])}


@pytest.mark.parametrize(
    ("aggregate", "event", "problem", "suggestion"),
    [
        ("account", "DataChanged", "vague", "name a specific fact"),
        ("account", "AccountUpdated", "vague: 'Updated'", "use a specific past-tense fact"),
        ("bank", "AccountUpdated", "vague: 'Updated'", "use a specific past-tense fact"),  # whatever the aggregate
        ("account", "AccountChanged", "vague: 'Changed'", "e.g. AccountEmailAddressChanged"),
        ("order", "OrderStatusChanged", "vague: 'Changed'", "name the transition"),
        ("order", "OrderEvent", "'Event' suffix", "drop the 'Event' suffix and name the fact"),
        ("account", "AccountEvent", "'Event' suffix", "drop the 'Event' suffix"),
        ("order", "OrderPlacedEvent", "'Event' suffix", "drop the 'Event' suffix: OrderPlaced"),
        ("user", "UserCreate", "not in the past tense", "e.g. UserCreated"),
        ("user", "UserUpdate", "vague", "use a specific past-tense fact, e.g. UserEmailAddressChanged"),
        ("order", "OrderShip", "not in the past tense", "e.g. OrderShipped"),
        ("payment", "PaymentSucceed", "not in the past tense", "e.g. PaymentSucceeded"),
        ("payment", "PaymentProcessed", "vague: 'Processed'", "name the outcome"),
        ("user", "CustomerData", "vague", "use a specific past-tense fact"),
        ("x", "Updated", "vague", ""),
        ("x", "Created", "vague", ""),  # alone; UserCreated is fine
        ("x", "Event", "vague", ""),
        ("x", "Info", "vague", ""),
        ("x", "Update", "vague", ""),
    ],
)
def test_vague_names_are_flagged_with_a_suggestion(aggregate: str, event: str, problem: str, suggestion: str) -> None:
    warning = _flagged(aggregate, event)[event]
    assert warning.aggregate == aggregate
    assert warning.problem.startswith(problem)
    assert suggestion in warning.suggestion
    assert str(warning).startswith(f"{aggregate}: {event}: {problem}")


def test_specific_past_tense_facts_pass() -> None:
    good = [
        "AccountCredited",
        "OrderPlaced",
        "PaymentCaptured",
        "ShipmentDispatched",
        "UserEmailAddressChanged",
        "UserCreated",
        "OrderPaid",  # irregular past participles
        "EmailSent",
        "TicketSold",
        "ProductPriceChanged",
        "TermsAgreed",
        "OrderPlacedV2",  # a version tag is not a word
        "HTTPRequestSent",
    ]
    assert _flagged("user", *good) == {}


def test_the_examples_have_no_naming_problems() -> None:
    assert check_event_names([account, order, payment, shipment]) == []


good_app = App(aggregates=[account, order, payment, shipment])
vague_app = App(aggregates=[_aggregate("user", ["UserRegistered", "UserUpdate", "DataChanged"])])


def test_check_command_prints_warnings_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--app", "tests.test_naming:vague_app"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "warning: user: UserUpdate: vague: a generic word, not a fact; use a specific past-tense fact, "
        "e.g. UserEmailAddressChanged",
        "warning: user: DataChanged: vague: says nothing about what happened; name a specific fact, "
        "e.g. UserCreated or UserClosed",
        "2 event name(s) to reconsider (warnings only)",
    ]
    assert main(["check", "--app", "tests.test_naming:good_app"]) == 0
    assert capsys.readouterr().out == "no naming problems\n"
