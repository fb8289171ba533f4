"""Events a read-side test starts from, each placed in the stream of an aggregate instance."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from actorsrc.domain import Aggregate

DEFAULT_ID = "test"


@dataclass(frozen=True, slots=True)
class StreamEvents:
    """Events of one aggregate instance, in order: what `on(...)` makes."""

    aggregate: Aggregate[Any, Any, Any]
    aggregate_id: str
    events: tuple[Any, ...]

    @property
    def stream_id(self) -> str:
        return self.aggregate.stream_id(self.aggregate_id)


def on(aggregate: Aggregate[Any, Any, Any], aggregate_id: str, *events: Any) -> StreamEvents:
    """`events` in the stream of the instance `aggregate_id` of `aggregate`."""
    if not isinstance(aggregate, Aggregate):
        raise TypeError(f"on() takes an Aggregate first, got {aggregate!r}")
    return StreamEvents(aggregate, aggregate_id, events)


def streams_of(
    given: Sequence[Any],
    aggregate: Aggregate[Any, Any, Any] | None,
    aggregate_id: str,
    handler_aggregates: Iterable[Aggregate[Any, Any, Any]],
    handler: str,
) -> list[StreamEvents]:
    """`given` as stream groups in order: `on(...)` groups as they are, bare events in one instance's stream.

    Bare events go to `aggregate` (or the handler's only aggregate) with `aggregate_id`.
    """
    if aggregate is None:
        candidates = list(handler_aggregates)
        aggregate = candidates[0] if len(candidates) == 1 else None
    groups: list[StreamEvents] = []
    for item in given:
        if isinstance(item, StreamEvents):
            groups.append(item)
            continue
        if aggregate is None:
            raise TypeError(
                f"{handler}: the bare event {item!r} has no stream; pass aggregate=... (and aggregate_id=...) "
                "or place it with on(aggregate, aggregate_id, event, ...)"
            )
        if groups and groups[-1].aggregate is aggregate and groups[-1].aggregate_id == aggregate_id:
            last = groups.pop()
            groups.append(StreamEvents(aggregate, aggregate_id, (*last.events, item)))
        else:
            groups.append(StreamEvents(aggregate, aggregate_id, (item,)))
    return groups
