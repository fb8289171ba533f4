"""Events are stored only if they read back as `decide` produced them (issue 10, defect 2).

msgspec decodes by the declared types, so bytes, a datetime, a UUID or a Decimal in a `str` field used
to be stored as a string: the live actor evolved on the original object, a recovered one on the string.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
import pytest

from actorsrc import Aggregate, CodecError, Runtime, SQLiteEventStore
from actorsrc.codec import EventCodec
from actorsrc.codec_fit import coercible_fields


class Colour(enum.Enum):
    RED = "red"


class Size(enum.StrEnum):
    SMALL = "s"


@dataclass(frozen=True)
class Item:
    name: str
    quantity: int


@dataclass(frozen=True)
class Recorded:
    owner: str
    rate: float
    tags: tuple[str, ...]
    items: list[Item]
    note: str | None
    amount: Decimal
    at: datetime
    colour: Colour
    names_by_id: dict[int, str]
    kinds: frozenset[str]
    item: Item


class Measured(msgspec.Struct, frozen=True):
    sensor: str
    values: list[float]


@dataclass(eq=False)
class Unequal:  # no __eq__ of its own: compared by identity, so the codec must compare its fields
    label: str


@dataclass(frozen=True)
class Counted:
    count: int
    flag: bool
    maybe: int | None


CODEC = EventCodec(
    {"Recorded": Recorded, "Measured": Measured, "Unequal": Unequal, "Counted": Counted}, {}, renamed=None
)
VALID = Recorded(
    owner="ann",
    rate=1.5,
    tags=("a",),
    items=[Item("x", 1)],
    note=None,
    amount=Decimal("3.10"),
    at=datetime(2026, 7, 4, 12, tzinfo=ZoneInfo("Europe/Paris")),
    colour=Colour.RED,
    names_by_id={1: "a"},
    kinds=frozenset({"k"}),
    item=Item("y", 2),
)


def _with(**changes: Any) -> Recorded:
    """VALID with some fields given values of other types than declared."""
    return dataclasses.replace(VALID, **changes)


def _round_trip(event: object) -> object:
    name, _, data = CODEC.encode(event)
    return CODEC.decode("s", 1, name, data)


@pytest.mark.parametrize(
    ("value", "got"),
    [
        (b"ann", "bytes"),
        (datetime(2026, 7, 4, tzinfo=UTC), "datetime"),
        (UUID(int=7), "UUID"),
        (Decimal("1.5"), "Decimal"),
        (Colour.RED, "Colour"),
    ],
)
def test_a_value_of_another_type_in_a_str_field_is_refused_not_coerced(value: object, got: str) -> None:
    with pytest.raises(CodecError, match=rf"^Recorded\.owner is declared str but got {got}: .* would be read back as"):
        CODEC.encode(_with(owner=value))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rate", 2**53 + 1, r"Recorded\.rate is declared float but got int: 9007199254740993 would be read back"),
        ("rate", Decimal("0.1"), r"Recorded\.rate is declared float but got Decimal: .* cannot be stored"),
        ("amount", 0.1, r"Recorded\.amount is declared Decimal but got float: 0\.1 would be read back as Decimal"),
        # 1.5 and 2 equal their Decimals, but the live actor would compute with a float or an int
        ("amount", 1.5, r"Recorded\.amount is declared Decimal but got float: 1\.5 would be read back as Decimal"),
        ("amount", 2, r"Recorded\.amount is declared Decimal but got int: 2 would be read back as Decimal"),
        ("names_by_id", {"1": "a"}, r"Recorded\.names_by_id is declared dict\[int, str\] but got dict"),
        ("kinds", ["k"], r"Recorded\.kinds is declared frozenset\[str\] but got list"),
        ("note", 3, r"Recorded\.note is declared str \| None but got int"),
        ("owner", object(), r"Recorded\.owner is declared str but got object: .* cannot be stored"),
        ("item", Item(b"y", 2), r"Recorded\.item\.name is declared str but got bytes"),  # type: ignore[arg-type]
        ("tags", [b"a"], r"Recorded\.tags is declared tuple\[str, \.\.\.\] but got list"),
    ],
)
def test_every_misfit_names_the_event_the_field_the_declared_type_and_the_value_type(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(CodecError, match=message):
        CODEC.encode(_with(**{field: value}))


def test_differences_a_json_round_trip_legitimately_makes_are_accepted() -> None:
    accepted = _with(
        rate=1,  # an int in a float field reads back as 1.0, which equals 1
        tags=["a", "b"],  # a list for a tuple field
        items=(Item("x", 1),),  # a tuple for a list field, of nested dataclasses
        note="n",
        amount=Decimal("NaN"),  # stored faithfully, though it never equals itself
        kinds={"k"},  # a set for a frozenset field: equal
        owner=Size.SMALL,  # a str enum member equals its str value
    )
    back = _round_trip(accepted)
    assert isinstance(back, Recorded)
    assert (back.rate, back.tags, back.items, back.kinds, str(back.amount)) == (
        1.0,
        ("a", "b"),
        [Item("x", 1)],
        frozenset({"k"}),
        "NaN",
    )
    assert _round_trip(VALID) == VALID  # tz-aware datetime (another zone, same instant), enum, int keys
    assert _round_trip(Measured("t", [1, 2.5])) == Measured("t", [1.0, 2.5])
    unequal = _round_trip(Unequal("u"))
    assert isinstance(unequal, Unequal)
    assert unequal.label == "u"
    assert _round_trip(Counted(1, True, None)) == Counted(1, True, None)


def test_fields_that_cannot_be_coerced_cost_no_comparison() -> None:
    assert coercible_fields(Counted) is None  # int, bool and int | None: msgspec refuses anything else
    getter = coercible_fields(Item)  # only the str field is compared
    assert getter is not None
    assert getter(Item("x", 1)) == "x"
    with pytest.raises(CodecError, match=r"Counted\.count is declared int but got float"):
        CODEC.encode(Counted(1.0, True, None))  # type: ignore[arg-type]
    with pytest.raises(CodecError, match=r"Counted\.flag is declared bool but got int"):
        CODEC.encode(Counted(1, 1, None))  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_are_refused_because_json_cannot_hold_them(bad: float) -> None:
    cannot_hold = "which the JSON encoding cannot hold"
    with pytest.raises(CodecError, match=rf"^Recorded\.rate is {bad!r}, {cannot_hold}"):
        CODEC.encode(_with(rate=bad))
    with pytest.raises(CodecError, match=rf"^Measured\.values holds {bad!r} \(\[1\.0, {bad!r}\]\), {cannot_hold}"):
        CODEC.encode(Measured("t", [1.0, bad]))
    with pytest.raises(CodecError, match=rf"^Recorded\.names_by_id holds {bad!r}"):
        CODEC.encode(_with(names_by_id={1: bad}))


def test_a_huge_value_is_shortened_in_the_message() -> None:
    with pytest.raises(CodecError) as refused:
        CODEC.encode(_with(owner=b"x" * 1_000_000))
    assert len(str(refused.value)) < 400


# -- through the runtime: refused before writing, the caller alone hears of it -------------------


@dataclass(frozen=True)
class Rename:
    name: Any


@dataclass(frozen=True)
class Renamed:
    name: str


def _decide(state: str, command: Rename) -> Sequence[Renamed]:
    return [Renamed(command.name)]


def _evolve(state: str, event: Renamed) -> str:
    return event.name


profile: Aggregate[str, Rename, Renamed] = Aggregate(
    name="profile", initial="", decide=_decide, evolve=_evolve, events={"Renamed": Renamed}, commands=(Rename,)
)


async def test_a_coerced_event_is_refused_before_writing_and_the_actor_keeps_serving(tmp_path: Path) -> None:
    async with SQLiteEventStore.open(tmp_path / "p.db") as store, Runtime(store, [profile]) as runtime:
        ref = runtime.ref(profile, "p")
        for value in (b"ann", datetime(2026, 7, 4, tzinfo=UTC), UUID(int=1), Decimal("2.5")):
            with pytest.raises(CodecError, match=r"^Renamed\.name is declared str but got"):
                await ref.ask(Rename(value))
        assert await store.last_position() == 0
        assert (await ref.ask(Rename("ann"))).version == 1
        assert await ref.state() == "ann"
