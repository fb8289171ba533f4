"""Which command ids an aggregate instance has handled, and what they produced.

The store remembers every command id that wrote events, per stream, forever; an actor keeps the most
recent outcomes in memory so that a retry soon after the original costs no query. Each outcome carries
the digest of the command that produced it (stored in its events' metadata), so that `decide_batch`
can tell a retry from another command sent under the same id.
"""

from __future__ import annotations

from typing import Any

from actorsrc.codec import EventCodec
from actorsrc.runtime.command_envelope import CommandEnvelope
from actorsrc.runtime.outcome import CommandOutcome
from actorsrc.store.base import EventStore

_RECENT = 64  # outcomes kept in memory per actor; older ones are looked up in the store


class CommandMemory:
    __slots__ = ("recent",)

    def __init__(self) -> None:
        self.recent: dict[str, CommandOutcome[Any]] = {}

    def remember(self, command_id: str, outcome: CommandOutcome[Any]) -> None:
        recent = self.recent
        recent[command_id] = outcome
        if len(recent) > _RECENT:
            del recent[next(iter(recent))]

    async def recorded(
        self, store: EventStore, codec: EventCodec, stream_id: str, stream_version: int, batch: list[CommandEnvelope]
    ) -> dict[str, CommandOutcome[Any]]:
        """Outcomes of the batch's command ids that the stream has recorded already."""
        unknown = [
            e.command_id
            for e in batch
            if e.command_id is not None and not e.fresh_id and e.command_id not in self.recent
        ]
        if unknown and stream_version > 0:
            for command_id, (first, last) in (await store.find_commands(stream_id, unknown)).items():
                records = await store.read_stream(stream_id, first, last)
                events = tuple(map(codec.decode_record, records))
                # The digest of the command that wrote them: None for rows written before digests existed.
                digest = records[-1].metadata.command_digest
                self.remember(command_id, CommandOutcome(stream_id, last, records[-1].position, events, False, digest))
        return self.recent
