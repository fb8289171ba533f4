"""The aggregates a runtime serves, and the validation of aggregate ids."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from actorsrc.codec import EventCodec
from actorsrc.domain import Aggregate
from actorsrc.errors import ConfigurationError, InvalidStreamIdError
from actorsrc.store.base import MAX_STREAM_ID_LENGTH


@dataclass(frozen=True, slots=True)
class AggregateEntry:
    aggregate: Aggregate[Any, Any, Any]
    codec: EventCodec


def build_entries(aggregates: Iterable[Aggregate[Any, Any, Any]]) -> dict[str, AggregateEntry]:
    entries: dict[str, AggregateEntry] = {}
    for aggregate in aggregates:
        if not isinstance(aggregate, Aggregate):
            raise ConfigurationError(f"{aggregate!r} is not an Aggregate")
        if aggregate.name in entries:
            raise ConfigurationError(f"two aggregates are named {aggregate.name!r}; names must be unique")
        entries[aggregate.name] = AggregateEntry(aggregate, EventCodec(aggregate.events, aggregate.schema_versions))
    if not entries:
        raise ConfigurationError("a runtime needs at least one aggregate")
    return entries


def validate_aggregate_id(aggregate: Aggregate[Any, Any, Any], aggregate_id: object) -> str:
    if not isinstance(aggregate_id, str):
        raise InvalidStreamIdError(
            f"{aggregate.name} id must be a str, got {type(aggregate_id).__name__}: {aggregate_id!r}"
        )
    if not aggregate_id or aggregate_id.isspace():
        raise InvalidStreamIdError(f"{aggregate.name} id must not be empty or blank, got {aggregate_id!r}")
    # One rule for every id that names a stream: the stream id it makes must fit the store's limit.
    limit = MAX_STREAM_ID_LENGTH - len(aggregate.name) - 1
    if len(aggregate_id) > limit:
        raise InvalidStreamIdError(
            f"{aggregate.name} id is {len(aggregate_id)} characters, over the limit of {limit} (its stream id "
            f"{aggregate.name!r} + '-' + id may be at most {MAX_STREAM_ID_LENGTH} characters): {aggregate_id[:40]!r}..."
        )
    try:
        aggregate_id.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidStreamIdError(f"{aggregate.name} id must be valid UTF-8 text: {aggregate_id!r}") from None
    if "\x00" in aggregate_id:
        raise InvalidStreamIdError(f"{aggregate.name} id must not contain NUL characters: {aggregate_id!r}")
    return aggregate_id
