"""What a runtime on cores adds to a plain one: its part's socket, the sender that routes, and which of
the read side's partitions it runs (the ones of its own part)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from actorsrc.cores.answering import BatchAnswerer
from actorsrc.cores.claim import PartClaim
from actorsrc.cores.placement import part_of
from actorsrc.cores.sender import CoresSender
from actorsrc.cores.server import PartServer
from actorsrc.cores.waits import PartWaits
from actorsrc.errors import ConfigurationError
from actorsrc.observability import logger
from actorsrc.projection import Handler, ProcessManager
from actorsrc.runtime.local_sender import LocalSender
from actorsrc.runtime.readside import ReadSide
from actorsrc.runtime.registry import AggregateEntry
from actorsrc.runtime.sender import HandlerWaits


class CoresNode:
    def __init__(
        self, claim: PartClaim, entries: Mapping[str, AggregateEntry], local: LocalSender, handlers: Iterable[Handler]
    ) -> None:
        if not claim.shared_store:
            managers = [h.name for h in handlers if isinstance(h, ProcessManager)]
            if managers:
                raise ConfigurationError(
                    f"process managers ({', '.join(managers)}) need one log of every event, and parts in SQLite "
                    "files each have their own: run them with a shared PostgreSQL store, or without cores"
                )
        self.claim = claim
        self.index = claim.index
        self.count = claim.count
        self.sender = CoresSender(local, claim.cores, claim.index)
        self.answerer = BatchAnswerer(entries, local, self._serves, f"part {claim.index}")
        self.server = PartServer(claim.cores.socket_path(claim.index), self.answerer)
        self.serving = False
        self.read_side: ReadSide | None = None  # set by the runtime once built

    def _serves(self, stream_id: str) -> bool:
        return self.serving and part_of(stream_id, self.count) == self.index

    async def start(self) -> None:
        await self.server.start()
        self.serving = self.sender.accepting = True
        logger.info("cores.part_started", part=self.index, count=self.count, directory=str(self.claim.cores.directory))

    def start_read_side(self) -> None:
        """Run this part's partition of every handler (a process manager, one partition, runs on part 0)."""
        read_side = self.read_side
        assert read_side is not None
        for name, index in read_side.partition_keys():
            if index == self.index:
                read_side.start_partition(name, index, 1)  # the part's lock is the fence: one owner at a time

    async def stop(self) -> None:
        """Refuse new routed commands (their callers ask again until a process serves the part), answer the
        ones that arrived, and stop routing this process's own."""
        self.serving = False
        await self.server.stop()
        await self.sender.close()
        logger.info("cores.part_stopped", part=self.index, count=self.count)

    def waits_for(self, stream_id: str | None, fallback: HandlerWaits) -> HandlerWaits:
        """Where read-your-writes waits for `stream_id`'s events (None: this process's own part)."""
        if self.claim.shared_store or self.read_side is None:
            return fallback  # one log: a position is the same everywhere
        return PartWaits(self.read_side, self.index if stream_id is None else part_of(stream_id, self.count))
