"""Stored event rows, the same for every SQL adapter: times as integer microseconds, metadata as
compact JSON, and the row tuple an append writes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from actorsrc.errors import EventDecodeError
from actorsrc.records import Metadata, NewEvent, RecordedEvent
from actorsrc.sql.encoding import micros_to_datetime

_encode_metadata = msgspec.json.Encoder().encode
_metadata_decoder = msgspec.json.Decoder(Metadata)


def decode_metadata(raw: bytes) -> Metadata:
    return _metadata_decoder.decode(raw)


def event_row(
    position: int, stream_key: int, version: int, event: NewEvent, micros: int, slice_: int
) -> tuple[Any, ...]:
    """Columns: position, stream_key, version, type, schema_version, data, metadata, recorded_at, slice."""
    return (
        position,
        stream_key,
        version,
        event.type,
        event.schema_version,
        event.data,
        _encode_metadata(event.metadata),
        micros,
        slice_,
    )


def log_records(rows: Sequence[Sequence[Any]], *, sliced: bool) -> list[RecordedEvent]:
    """`read_all`'s rows (stream name, then the columns of `recorded_event`) as records.

    An undecodable row raises `EventDecodeError`; in a `sliced` read, only when it is the first row: after
    decodable rows the read ends before it (a short batch), see `EventStore.read_all`.
    """
    if not sliced:
        return [recorded_event(row[0], tuple(row)[1:]) for row in rows]
    records: list[RecordedEvent] = []
    for row in rows:
        try:
            records.append(recorded_event(row[0], tuple(row)[1:]))
        except EventDecodeError:
            if not records:
                raise
            break
    return records


def note_command(spans: dict[tuple[int, str], list[int]], stream_key: int, version: int, event: NewEvent) -> None:
    """Track the versions each command id wrote on a stream, for the command-id table."""
    command_id = event.metadata.command_id
    if command_id is not None:
        span = spans.setdefault((stream_key, command_id), [version, version])
        span[1] = version


def recorded_event(stream_id: str, row: Sequence[Any]) -> RecordedEvent:
    """Row columns: version, position, type, schema_version, data, metadata, recorded_at (micros).

    Any part of the row that does not decode raises `EventDecodeError` naming the stream, version and
    position, never a bare driver or overflow error: a subscriber must be able to tell which event it was.
    """
    version, position, type_name, schema_version, data, metadata, recorded_at = row
    try:
        return RecordedEvent(
            stream_id,
            version,
            position,
            type_name,
            schema_version,
            bytes(data),
            decode_metadata(metadata),
            micros_to_datetime(recorded_at),
        )
    except Exception as exc:
        raise undecodable_row(stream_id, row, exc) from exc


def undecodable_row(stream_id: str, row: Sequence[Any], exc: Exception) -> EventDecodeError:
    """The `EventDecodeError` for a row (columns as in `recorded_event`) that failed to decode with `exc`."""
    version, position, type_name, _, data, metadata, recorded_at = row
    if not isinstance(data, bytes | bytearray | memoryview):
        reason = f"data is {type(data).__name__}, not bytes"
    elif not _decodes(decode_metadata, metadata):
        reason = f"metadata: {exc}"
    elif not _decodes(micros_to_datetime, recorded_at):
        reason = f"recorded_at {recorded_at!r} is not a time (microseconds since 1970): {exc!r}"
    else:
        reason = repr(exc)
    type_text = type_name if isinstance(type_name, str) else repr(type_name)
    return EventDecodeError(stream_id, version, type_text, reason, position=position)


def _decodes(decode: Callable[[Any], object], value: object) -> bool:
    try:
        decode(value)
    except Exception:
        return False
    return True
