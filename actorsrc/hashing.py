"""Stable hashes of stream ids: the same in every process and on every machine.

Python's `hash()` of a string is salted per process, so it can never place data. `zlib.crc32` is
stable, fast (C) and spreads stream ids evenly enough for placement.

- A **slice** (0..SLICES-1) is stored with every event at write time; the read side splits a handler's
  work into partitions by ranges of slices, so changing the number of partitions rewrites no data.
- A **shard** is what the cluster places on a node: `shard_of(stream_id, shards)`.
"""

from __future__ import annotations

import zlib
from typing import Final

SLICES: Final = 1024


def stable_hash(text: str) -> int:
    """A 32-bit hash of `text` that never changes between processes, machines or Python versions."""
    return zlib.crc32(text.encode("utf-8", "surrogatepass"))


def slice_of(stream_id: str) -> int:
    return stable_hash(stream_id) % SLICES


def shard_of(stream_id: str, shards: int) -> int:
    return stable_hash(stream_id) % shards


def slice_range(partition: int, partitions: int) -> tuple[int, int]:
    """The slices [low, high) that `partition` of `partitions` covers (contiguous, covering all slices)."""
    if not 1 <= partitions <= SLICES:
        raise ValueError(f"partitions must be between 1 and {SLICES}, got {partitions!r}")
    if not 0 <= partition < partitions:
        raise ValueError(f"partition must be between 0 and {partitions - 1}, got {partition!r}")
    return partition * SLICES // partitions, (partition + 1) * SLICES // partitions
