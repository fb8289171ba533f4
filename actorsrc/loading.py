"""Rebuild an aggregate instance's state from the store: what recovery, tools and tests all use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from actorsrc.codec import EventCodec
from actorsrc.domain import Aggregate
from actorsrc.store.base import EventStore

S = TypeVar("S")

_codecs: dict[int, tuple[Aggregate[Any, Any, Any], EventCodec]] = {}


def codec_for(aggregate: Aggregate[Any, Any, Any]) -> EventCodec:
    """The codec of `aggregate`'s events, built once per aggregate value."""
    cached = _codecs.get(id(aggregate))
    if cached is None or cached[0] is not aggregate:
        cached = _codecs[id(aggregate)] = (aggregate, EventCodec(aggregate.events, aggregate.schema_versions))
    return cached[1]


@dataclass(frozen=True, slots=True)
class LoadedState(Generic[S]):
    """An instance's state with the stream version and global position of its last event."""

    state: S
    version: int
    position: int


async def load_state(store: EventStore, aggregate: Aggregate[S, Any, Any], aggregate_id: str) -> LoadedState[S]:
    """Fold every stored event of one instance; typed errors name any row that does not decode."""
    stream_id = aggregate.stream_id(aggregate_id)
    records = await store.read_stream(stream_id)
    decode = codec_for(aggregate).decode
    evolve = aggregate.evolve
    state = aggregate.initial
    for record in records:
        state = evolve(state, decode(stream_id, record.version, record.type, record.data))
    if not records:
        return LoadedState(state, 0, 0)
    return LoadedState(state, records[-1].version, records[-1].position)
