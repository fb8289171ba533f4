"""Why an event does not read back as it was written: the failure path of `EventCodec.encode`.

msgspec encodes what it is given and decodes by the declared types, so a value of another type can
come back as something else (bytes, a datetime, a UUID or a Decimal in a `str` field comes back as a
string). `EventCodec.encode` compares what it read back with the original; only when that fails does
it call `misfit`, which walks the fields to name the one at fault. The write path pays nothing for it.

Equal after the round trip is the rule, with the differences JSON legitimately makes: a list for a
`tuple[...]` field (or a tuple for a `list[...]` one), an int in a float field (1 == 1.0), and a
Decimal NaN, which is stored faithfully but never equals itself.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
import reprlib
import types
import typing
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder()
_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60  # a 50 MB value must not end up in an error message
_MODULE_PREFIX = re.compile(r"\b(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_])")


def same(original: object, decoded: object) -> bool:
    """Whether `decoded` is what `original` legitimately reads back as (see the module's rule)."""
    if isinstance(decoded, Decimal) and not isinstance(original, Decimal):  # equal, but other arithmetic
        return False
    try:
        if original == decoded:
            return True
    except ArithmeticError:  # a signalling Decimal NaN refuses to be compared
        pass
    if isinstance(original, list | tuple) and isinstance(decoded, list | tuple):
        return len(original) == len(decoded) and all(map(same, original, decoded))
    if isinstance(original, dict) and isinstance(decoded, dict):
        return original.keys() == decoded.keys() and all(same(v, decoded[k]) for k, v in original.items())
    if isinstance(original, Decimal) and isinstance(decoded, Decimal):
        return original.is_nan() and str(original) == str(decoded)
    if type(original) is type(decoded) and _is_record(original):
        return all(same(getattr(original, f), getattr(decoded, f)) for f in _field_names(type(original)))
    return False


_UNCOERCIBLE = frozenset({int, bool, type(None)})
_UNIONS = (typing.Union, types.UnionType)


def coercible_fields(cls: type[Any]) -> Callable[[Any], object] | None:
    """What of an event of class `cls` to compare with what was read back, or None for nothing.

    A field declared int or bool (or Optional of those) needs no comparison: msgspec refuses any other
    value there (1.0, a str, True in an int field), so a value that decodes at all reads back equal.
    Float fields are compared: a large int (2**53 + 1) would come back rounded. The getter reads only
    the fields that need it, which is cheaper than `==` and ignores a class's own `__eq__`.
    """
    try:
        hints = typing.get_type_hints(cls)
        names = _field_names(cls)
    except Exception:  # not a dataclass or Struct, or unresolvable annotations: compare the whole
        return _itself
    compared = [name for name in names if not _uncoercible(hints.get(name, Any))]
    if not compared:
        return None
    values = operator.attrgetter(*compared)
    decimals = [name for name in compared if _declares_decimal(hints.get(name, Any))]
    if not decimals:
        return values
    # Decimal("1.5") == 1.5, yet a float (or an int) in a Decimal field reads back as another type, with
    # other arithmetic: compare the types of those fields too.
    decimal_types = operator.attrgetter(*decimals)

    def values_and_decimal_types(event: Any) -> object:
        found = decimal_types(event)
        types_ = tuple(map(type, found)) if len(decimals) > 1 else type(found)
        return values(event), types_

    return values_and_decimal_types


def _declares_decimal(declared: Any) -> bool:
    accepted = set(typing.get_args(declared)) if typing.get_origin(declared) in _UNIONS else {declared}
    return Decimal in accepted


def _uncoercible(declared: Any) -> bool:
    accepted = set(typing.get_args(declared)) if typing.get_origin(declared) in _UNIONS else {declared}
    return accepted <= _UNCOERCIBLE and accepted != {type(None)}


def _itself(value: object) -> object:
    return value


def misfit(event: object) -> str | None:
    """A sentence naming the first field of `event` that does not survive the round trip, or None."""
    return _record_misfit(type(event).__qualname__, event)


def _record_misfit(path: str, record: object) -> str | None:
    try:
        hints = typing.get_type_hints(type(record), include_extras=True)
    except Exception:  # an annotation that does not resolve: no field can be named
        return None
    for name in _field_names(type(record)):
        problem = _value_misfit(f"{path}.{name}", getattr(record, name), hints.get(name, Any))
        if problem is not None:
            return problem
    return None


def _value_misfit(path: str, value: object, declared: Any) -> str | None:
    if _is_record(value):  # name the nested field rather than the whole record
        inner = _record_misfit(path, value)
        if inner is not None:
            return inner
    bad_number = _non_finite(value)
    if bad_number is not None:
        what = f"is {value!r}" if bad_number is value else f"holds {bad_number!r} ({_repr.repr(value)})"
        return (
            f"{path} {what}, which the JSON encoding cannot hold (JSON has no NaN or infinity); "
            "use None or a finite value"
        )
    got = f"{path} is declared {type_name(declared)} but got {type(value).__qualname__}"
    try:
        back = msgspec.json.decode(_encoder.encode(value), type=declared)
    except (TypeError, ValueError, OverflowError) as exc:  # msgspec's DecodeError is a ValueError
        return f"{got}: {_repr.repr(value)} cannot be stored ({exc}); pass a value of the declared type"
    if not same(value, back):
        return (
            f"{got}: {_repr.repr(value)} would be read back as {_repr.repr(back)}; pass a value of the "
            "declared type (or declare the type you pass)"
        )
    return None


def _non_finite(value: object) -> float | None:
    """The first NaN or infinite float anywhere in `value` (JSON cannot hold those), or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else value
    if isinstance(value, str | bytes | int | Decimal) or value is None:
        return None
    if isinstance(value, dict):
        items: Any = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple | set | frozenset):
        items = value
    elif _is_record(value):
        items = [getattr(value, f) for f in _field_names(type(value))]
    else:
        return None
    for item in items:
        found = _non_finite(item)
        if found is not None:
            return found
    return None


def _is_record(value: object) -> bool:
    return isinstance(value, msgspec.Struct) or (dataclasses.is_dataclass(value) and not isinstance(value, type))


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    if issubclass(cls, msgspec.Struct):
        return cls.__struct_fields__
    return tuple(f.name for f in dataclasses.fields(cls))


def type_name(declared: Any) -> str:
    """`str`, `int | None`, `dict[str, Decimal]`: a declared type as it reads in source."""
    if isinstance(declared, type) and typing.get_origin(declared) is None:
        return declared.__qualname__
    return _MODULE_PREFIX.sub("", repr(declared))
