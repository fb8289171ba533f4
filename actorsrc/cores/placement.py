"""Which part an aggregate instance lives on: the read side's partition of its stream's slice.

The slice (`crc32(stream_id) % 1024`, stored with every event) decides it, through the same contiguous
slice ranges as the read side's partitions (`actorsrc.hashing.slice_range`). So part k's log holds exactly
the events of partition k of `count`, and on a shared database partition k of a projection reads the
events of part k's own aggregates. Stable across processes and machines (never Python's `hash()`).
"""

from __future__ import annotations

from functools import cache

from actorsrc.hashing import SLICES, slice_of, slice_range


@cache
def _parts_of_slices(count: int) -> tuple[int, ...]:
    table = [0] * SLICES
    for part in range(count):
        low, high = slice_range(part, count)
        table[low:high] = [part] * (high - low)
    return tuple(table)


def part_of(stream_id: str, count: int) -> int:
    """The part (0..count-1) that owns `stream_id`."""
    return _parts_of_slices(count)[slice_of(stream_id)]
