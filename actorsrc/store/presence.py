"""Which streams a store surely does not hold: a Bloom filter that lets a brand-new aggregate skip its
recovery read.

Creating an instance is the commonest first command, and its recovery read always finds nothing. When
the filter says a stream is surely absent, the actor starts from the initial state at version 0 without
reading; that guess is never trusted for an answer (see `AggregateActor._assume_new`): an append made
with expected version 0 proves it, and a decision that writes nothing is checked by a real read.
So the filter may be stale (another process created the stream) or lose a bit: it only ever costs a
wasted attempt, never a wrong answer.

A scalable Bloom filter: layers of 16 bits per expected stream with 4 probes (0.24 % false positives
each); when the newest layer is full, a layer twice its size is added. Python's `hash` of the id is
random per process, which is fine: the filter lives in one process's memory only.
"""

from __future__ import annotations

_BITS_PER_STREAM = 16
_PROBES = 4
_MIN_CAPACITY = 65_536
_MASK64 = (1 << 64) - 1


class _Layer:
    __slots__ = ("added", "bits", "capacity", "size")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.size = capacity * _BITS_PER_STREAM
        self.bits = bytearray(self.size // 8 + 1)
        self.added = 0

    def add(self, hashed: int) -> None:
        bits, size = self.bits, self.size
        step = (hashed >> 32) | 1
        index = hashed
        for _ in range(_PROBES):
            index = (index + step) % size
            bits[index >> 3] |= 1 << (index & 7)
        self.added += 1

    def holds(self, hashed: int) -> bool:
        bits, size = self.bits, self.size
        step = (hashed >> 32) | 1
        index = hashed
        for _ in range(_PROBES):
            index = (index + step) % size
            if not bits[index >> 3] & (1 << (index & 7)):
                return False
        return True


class StreamPresence:
    """Stream ids seen in a store. Until `ready`, every stream may exist (nothing is skipped)."""

    def __init__(self, expected: int = 0) -> None:
        self.layers = [_Layer(max(_MIN_CAPACITY, 2 * expected))]
        self.ready = False

    def add(self, stream_id: str) -> None:
        layer = self.layers[-1]
        if layer.added >= layer.capacity:
            layer = _Layer(2 * layer.capacity)
            self.layers.append(layer)
        layer.add(hash(stream_id) & _MASK64)

    def may_hold(self, stream_id: str) -> bool:
        """False only when the stream was never added (and the filter is ready)."""
        if not self.ready:
            return True
        hashed = hash(stream_id) & _MASK64
        return any(layer.holds(hashed) for layer in self.layers)
