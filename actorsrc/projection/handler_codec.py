"""What every read-side handler shares: the codec for the events it reads, and the check of its name."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from actorsrc.codec import EventCodec, Upcaster
from actorsrc.domain import Aggregate
from actorsrc.errors import ConfigurationError

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


def handler_codec(
    name: str, events: Mapping[str, type[Any]] | None, aggregates: Iterable[Aggregate[Any, Any, Any]]
) -> EventCodec:
    """A codec for the handler's event types, with the aggregates' schema versions, upcasters and renames
    (types given directly in `events` are read at schema version 1)."""
    merged: dict[str, type[Any]] = {}
    versions: dict[str, int] = {}
    upcasters: dict[tuple[str, int], Upcaster] = {}
    renamed: dict[str, str] = {}
    for aggregate in aggregates:
        merged.update(aggregate.events)
        versions.update(aggregate.schema_versions)
        upcasters.update(aggregate.upcasters)
        renamed.update(aggregate.renamed_events)
    merged.update(events or {})
    if not merged:
        raise ConfigurationError(f"handler {name!r} subscribes to no event types; give `events` or `aggregates`")
    return EventCodec(merged, versions, object, upcasters, renamed)


def check_handler_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > 128:
        raise ConfigurationError(
            f"{kind} name {name!r} must start with a letter and hold only letters, digits, '_', '.', '-'"
        )
