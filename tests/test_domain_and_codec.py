"""Pure domain code and the codec: no event loop needed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import pytest

from actorsrc import (
    Aggregate,
    ConfigurationError,
    EventDecodeError,
    UnknownEventTypeError,
    UnregisteredEventError,
    fold,
)
from actorsrc.codec import EventCodec
from actorsrc.testing import given
from examples.bank import (
    AccountCredited,
    AccountDebited,
    AccountOpened,
    AccountState,
    AlreadyOpen,
    ApplyInterest,
    Credit,
    Debit,
    InsufficientFunds,
    InterestApplied,
    InvalidAmount,
    NotOpen,
    OpenAccount,
    account,
)
from examples.bank.domain import Event

OPEN = AccountState(opened=True, owner="ann", balance=100, overdraft_limit=50)


HISTORY: tuple[Event, ...] = (AccountOpened("ann", 50), AccountCredited(100))  # folds to OPEN


def test_decide_is_pure_and_rejects_with_domain_errors() -> None:
    assert account.replay(HISTORY) == OPEN
    given(account).when(OpenAccount("ann", 50)).then(AccountOpened("ann", 50)).then_state(opened=True, owner="ann")
    given(account, *HISTORY).when(Debit(150)).then(AccountDebited(150)).then_state(balance=-50)
    given(account, *HISTORY).when(ApplyInterest(250)).then(InterestApplied(250, 2)).then_state(balance=102)
    given(account, AccountOpened("ann", 0)).when(ApplyInterest(250)).then()  # no interest on nothing
    given(account, *HISTORY).when(OpenAccount("bob")).then_rejected(AlreadyOpen, match="already open")
    given(account).when(Credit(1)).then_rejected(NotOpen, match="Credit needs an open account")
    given(account, *HISTORY).when(Credit(0)).then_rejected(InvalidAmount, match="got 0")
    given(account, *HISTORY).when(Debit(151)).then_rejected(InsufficientFunds, match="limit of 50")
    # Pure: the same state and command decide the same events.
    assert account.decide(OPEN, Debit(150)) == account.decide(OPEN, Debit(150)) == [AccountDebited(150)]


def test_replay_folds_events_in_order() -> None:
    events: list[Event] = [AccountOpened("ann", 0), AccountCredited(70), AccountDebited(20), InterestApplied(100, 5)]
    state = account.replay(events)
    assert (state.balance, state.owner) == (55, "ann")
    assert fold(account.evolve, account.initial, events) == state
    assert fold(lambda total, n: total + n, 0, [1, 2, 3]) == 6


def _aggregate(**overrides: object) -> Aggregate[int, object, object]:
    values: dict[str, object] = {
        "name": "thing",
        "initial": 0,
        "decide": lambda s, c: [],
        "evolve": lambda s, e: s,
        "events": {"ThingHappened": AccountCredited},
        "commands": (Credit,),
    }
    values.update(overrides)
    return Aggregate(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": ""}, "aggregate name ''"),
        ({"name": "has space"}, "aggregate name 'has space'"),
        ({"events": {}}, "declares no events"),
        ({"commands": ()}, "declares no commands"),
        ({"events": {"A": AccountCredited, "B": AccountCredited}}, "registered twice"),
        ({"events": {"A": "not a class"}}, "is not a class"),
        ({"schema_versions": {"Nope": 2}}, "unknown event 'Nope'"),
        ({"schema_versions": {"ThingHappened": 0}}, "must be an int >= 1"),
    ],
)
def test_aggregate_configuration_errors(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _aggregate(**overrides)


@dataclass(frozen=True)
class RichEvent:
    amount: Decimal
    at: datetime
    ref: UUID
    tags: tuple[str, ...]


def test_codec_round_trips_rich_types_with_explicit_names() -> None:
    codec = EventCodec({"RichThingRecorded": RichEvent}, {"RichThingRecorded": 2})
    event = RichEvent(Decimal("10.05"), datetime(2026, 7, 4, tzinfo=UTC), UUID(int=7), ("a", "b"))
    name, version, data = codec.encode(event)
    assert (name, version) == ("RichThingRecorded", 2)
    assert codec.decode("s", 1, name, data) == event


def test_codec_errors_name_the_problem() -> None:
    codec = EventCodec(account.events, {})
    with pytest.raises(UnregisteredEventError, match="RichEvent is not a registered event"):
        codec.encode(RichEvent(Decimal(1), datetime.now(UTC), UUID(int=1), ()))
    with pytest.raises(UnknownEventTypeError, match=r"'acc-1' version 4 holds event type 'Gone'") as unknown:
        codec.decode("acc-1", 4, "Gone", b"{}")
    assert (unknown.value.stream_id, unknown.value.version, unknown.value.type_name) == ("acc-1", 4, "Gone")
    with pytest.raises(EventDecodeError, match=r"'acc-1' version 5 \(AccountCredited\)") as bad:
        codec.decode("acc-1", 5, "AccountCredited", b'{"amount": [1]}')
    assert bad.value.reason
    with pytest.raises(EventDecodeError):
        codec.decode("acc-1", 6, "AccountCredited", b"\x00\x01")
