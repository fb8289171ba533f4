"""Turns domain events into stored bytes and back, with msgspec's JSON codec.

One `EventCodec` per aggregate: it knows the aggregate's explicit type names, so a stored row
never depends on a Python import path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from actorsrc.codec_fit import coercible_fields, misfit, same
from actorsrc.errors import CodecError, EventDecodeError, UnknownEventTypeError, UnregisteredEventError
from actorsrc.records import RecordedEvent

_encoder = msgspec.json.Encoder()


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns the decoded mapping of an event at schema version v into its mapping at version v + 1."""

_raw_decoder = msgspec.json.Decoder()


class EventCodec:
    """Encodes registered event objects and decodes stored rows into them (and snapshots of state).

    Rows written under an older schema version go through the upcaster chain (v -> v+1 -> ... ->
    current) on their way out; rows stored under a renamed type name are read as the new type.
    Stored rows are never rewritten.
    """

    __slots__ = (
        "_classes",
        "_decoders",
        "_plans",
        "_renames",
        "_state_decoder",
        "_upcasters",
        "_versions",
        "_writers",
    )

    def __init__(
        self,
        events: Mapping[str, type[Any]],
        schema_versions: Mapping[str, int],
        state_type: type[Any] = object,
        upcasters: Mapping[tuple[str, int], Upcaster] | None = None,
        renamed: Mapping[str, str] | None = None,
    ) -> None:
        self._classes = dict(events)
        self._upcasters = dict(upcasters or {})
        self._renames = dict(renamed or {})
        self._plans: dict[tuple[str, int], tuple[msgspec.json.Decoder[Any], tuple[Upcaster, ...]]] = {}
        self._state_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(state_type)
        self._versions: dict[str, int] = {name: schema_versions.get(name, 1) for name in events}
        self._decoders: dict[str, msgspec.json.Decoder[Any]] = {
            name: msgspec.json.Decoder(cls) for name, cls in events.items()
        }
        # Per class, what encoding needs, found with one lookup: name, schema version, decoder, and what
        # to compare with what was read back (None: no field could have been coerced).
        self._writers: dict[type[Any], tuple[str, int, msgspec.json.Decoder[Any], Callable[[Any], object] | None]] = {
            cls: (name, self._versions[name], self._decoders[name], coercible_fields(cls))
            for name, cls in events.items()
        }

    def type_name(self, event: object) -> str:
        """The stored name of `event`'s class, or `UnregisteredEventError`."""
        writer = self._writers.get(type(event))
        if writer is None:
            raise self._unregistered(event)
        return writer[0]

    def _unregistered(self, event: object) -> UnregisteredEventError:
        return UnregisteredEventError(
            f"{type(event).__qualname__} is not a registered event (registered: "
            f"{', '.join(sorted(self._versions))}); add it to the aggregate's `events` mapping"
        )

    def current_name(self, stored_type: str) -> str:
        return self._renames.get(stored_type, stored_type)

    def reads(self, stored_type: str) -> bool:
        """Whether rows stored under `stored_type` decode into one of this codec's classes."""
        return stored_type in self._versions or stored_type in self._renames

    def schema_version(self, type_name: str) -> int:
        return self._versions[type_name]

    def encode(self, event: object) -> tuple[str, int, bytes]:
        """(type name, schema version, bytes) of a registered event."""
        writer = self._writers.get(type(event))
        if writer is None:
            raise self._unregistered(event)
        name, version, decoder, compared = writer
        try:
            data = _encoder.encode(event)
            # Read it back: a value that does not fit its declared type would either break every later
            # replay (a float in an int field, NaN) or, worse, be silently coerced (bytes or a datetime
            # in a str field read back as a string), so that a recovered actor would see another event
            # than the live one did. Only the fields that could have been coerced are compared.
            decoded = decoder.decode(data)
        except (TypeError, ValueError, OverflowError) as exc:  # msgspec's DecodeError is a ValueError
            raise CodecError(misfit(event) or f"{name} cannot be stored: {exc}") from exc
        if compared is not None:
            try:
                fits = compared(decoded) == compared(event)
            except ArithmeticError:  # a signalling Decimal NaN refuses to be compared
                fits = False
            # `same` allows what JSON legitimately changes (a list for a tuple): checked only on a mismatch.
            if not fits and not same(compared(decoded), compared(event)):
                raise CodecError(misfit(event) or f"{name} does not read back as it was written")
        return name, version, data

    def decode(self, stream_id: str, version: int, type_name: str, data: bytes) -> Any:
        """The event object stored as `data`; errors name the stream, version and type."""
        decoder = self._decoders.get(type_name)
        if decoder is None:
            raise UnknownEventTypeError(stream_id, version, type_name, list(self._decoders))
        try:
            return decoder.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError, TypeError, ValueError) as exc:
            raise EventDecodeError(stream_id, version, type_name, str(exc)) from exc

    def decode_record(self, record: RecordedEvent) -> Any:
        """The current-shape event object of a stored row, renamed and upcast as needed."""
        return self.decode_stored(record.stream_id, record.version, record.type, record.schema_version, record.data)

    def decode_stored(self, stream_id: str, version: int, stored_name: str, stored_version: int, data: bytes) -> Any:
        """`decode_record` from the row's parts (the lean replay path reads only these)."""
        plan = self._plans.get((stored_name, stored_version))
        if plan is None:
            plan = self._plan(stream_id, version, stored_name, stored_version)
        decoder, steps = plan
        try:
            if not steps:
                return decoder.decode(data)
            raw = _raw_decoder.decode(data)
            for upcast in steps:
                raw = upcast(raw)
            # Re-encoding and a typed decode validates like msgspec.convert, and is faster for dataclasses.
            return decoder.decode(_encoder.encode(raw))
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, TypeError) as exc:
            raise EventDecodeError(stream_id, version, stored_name, str(exc)) from exc
        except Exception as exc:  # an upcaster's own bug: name it, with the row it failed on
            current = self._versions[self._renames.get(stored_name, stored_name)]
            raise EventDecodeError(
                stream_id,
                version,
                stored_name,
                f"upcasting from schema version {stored_version} to {current} failed: {exc!r}",
            ) from exc

    def _plan(
        self, stream_id: str, version: int, stored_name: str, stored_version: int
    ) -> tuple[msgspec.json.Decoder[Any], tuple[Upcaster, ...]]:
        """How rows of one (stored type, stored version) are read, worked out once."""
        name = self._renames.get(stored_name, stored_name)
        current = self._versions.get(name)
        if current is None:
            raise UnknownEventTypeError(stream_id, version, stored_name, list(self._decoders))
        if stored_version > current:
            raise EventDecodeError(
                stream_id,
                version,
                stored_name,
                f"stored at schema version {stored_version}, newer than this code's {current}; deploy newer code",
            )
        steps = tuple(self._upcasters[(name, step)] for step in range(stored_version, current))
        plan = self._plans[(stored_name, stored_version)] = (self._decoders[name], steps)
        return plan

    def encode_state(self, state: object) -> bytes:
        """The bytes of a snapshot of `state`."""
        try:
            return _encoder.encode(state)
        except (TypeError, ValueError) as exc:
            raise CodecError(f"state {type(state).__qualname__} cannot be encoded for a snapshot: {exc}") from exc

    def decode_state(self, stream_id: str, version: int, data: bytes) -> Any:
        """The state stored in a snapshot; `EventDecodeError` if it no longer fits the state type."""
        try:
            return self._state_decoder.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError, TypeError, ValueError) as exc:
            raise EventDecodeError(stream_id, version, "snapshot", str(exc)) from exc
