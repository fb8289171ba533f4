"""Read-your-writes when every part has a log of its own (SQLite files): a position names a place in one
part's log, so waiting for it means waiting for that part's partition of the handler, not for all."""

from __future__ import annotations

from actorsrc.projection import Handler
from actorsrc.runtime.readside import ReadSide


class PartWaits:
    """Implements `HandlerWaits` over partition `part` of each handler."""

    def __init__(self, read_side: ReadSide, part: int) -> None:
        self.read_side = read_side
        self.part = part

    def check(self, handler: Handler | str) -> None:
        self.read_side.check(handler)

    async def wait_for(self, handler: Handler | str, position: int, timeout: float) -> None:
        await self.read_side.wait_for_partition(handler, self.part, position, timeout)
