"""A cluster's read-side partition of a handler: which slices of the log it reads and where its checkpoint is.

A handler in a cluster runs as `count` partitions, each over a contiguous range of the 1024 slices stored
with every event (a stream's slice never changes, so a stream's events stay in one partition, in order).
Each partition keeps a checkpoint of its own, named after the handler, the partition and the count.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from actorsrc.errors import StoreError, WaitTimeoutError
from actorsrc.hashing import slice_range
from actorsrc.readmodel.base import ReadModel, partition_prefix


@dataclass(frozen=True, slots=True)
class PartitionSpec:
    index: int
    count: int

    @property
    def slices(self) -> tuple[int, int]:
        return slice_range(self.index, self.count)

    def checkpoint_name(self, handler: str) -> str:
        return f"{partition_prefix(handler)}{self.index}of{self.count}"

    def label(self) -> str:
        return f"{self.index}/{self.count}"


def layout_conflict(handler: str, partition: PartitionSpec | None, found: dict[str, int]) -> str | None:
    """Why `handler` must not start as `partition` (None: unpartitioned) given the partition checkpoints
    `found` in the read model: another layout's checkpoints would make events be handled twice or skipped."""
    if partition is None:
        rows = sorted(name for name in found if not name.endswith("#fence"))
        if rows:
            return (
                f"{handler!r} ran as partitions in a cluster (checkpoints {', '.join(rows)}): run it with the "
                "same Cluster(partitions=...) again, or rebuild it (runtime.rebuild) to start it over here"
            )
        return None
    mine = f"of{partition.count}"
    others = sorted(name for name in found if not name.removesuffix("#fence").endswith(mine))
    if others:
        return (
            f"{handler!r} ran with another number of partitions (checkpoints {', '.join(others)}), not "
            f"{partition.count}: keep Cluster(partitions=...) as it was, or stop the nodes and rebuild the "
            "handler from one runtime without cluster="
        )
    return None


MAX_POLL = 0.1
"""Longest pause, in seconds, between looks at the checkpoints of partitions other nodes run."""


class PartitionView(Protocol):
    """What waiting needs of a partition's subscription (local or not)."""

    partition: PartitionSpec | None
    checkpoint_name: str
    position: int

    @property
    def active(self) -> bool: ...

    @property
    def status(self) -> str: ...

    def stopped_error(self, target: int) -> WaitTimeoutError: ...


async def wait_partitions(
    name: str, parts: Sequence[PartitionView], read_model: ReadModel, position: int, timeout: float
) -> None:
    """Return once every partition of handler `name` has its checkpoint at `position` or beyond: a
    partition this node runs is read from memory, any other from the shared read model, polled at most
    `MAX_POLL` s apart. A partition stopped here fails the wait at once; `WaitTimeoutError` at `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pause = 0.005
    while True:
        behind: list[str] = []
        for part in parts:
            if part.active and part.status in ("running", "retrying"):
                at = part.position
            elif part.status == "stopped":
                raise part.stopped_error(position)
            else:
                try:
                    at = part.position = await read_model.checkpoint(part.checkpoint_name)
                except StoreError as exc:
                    behind.append(f"{part.checkpoint_name} unknown ({exc})")
                    continue
            if at < position:
                behind.append(f"{part.checkpoint_name} at {at}")
        if not behind:
            return
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise WaitTimeoutError(
                f"{name!r} did not reach position {position} within {timeout} s; behind: {', '.join(behind)}"
            )
        await asyncio.sleep(min(pause, remaining))
        pause = min(pause * 2, MAX_POLL)
