"""Messages between the processes of one machine: `[payload length: u32][request id: u32][payload]`.

The id pairs a reply with its request, so one connection carries many requests at once and the replies
come back in whatever order they are ready. Payloads are `actorsrc.cluster.wire` messages (msgpack).
"""

from __future__ import annotations

import asyncio
import struct

HEADER = struct.Struct("!II")
MAX_FRAME = 256 * 1024 * 1024  # a length above this is a broken stream, not a message


class FrameError(ConnectionError):
    """The stream does not carry frames (a length over MAX_FRAME): the connection is dropped."""


def frame(request_id: int, payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME:
        raise ValueError(f"a message of {len(payload)} bytes is over the {MAX_FRAME}-byte frame limit")
    return HEADER.pack(len(payload), request_id) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The next (request id, payload); `asyncio.IncompleteReadError` at the end of the stream."""
    length, request_id = HEADER.unpack(await reader.readexactly(HEADER.size))
    if length > MAX_FRAME:
        raise FrameError(f"a frame announced {length} bytes, over the {MAX_FRAME}-byte limit")
    return request_id, await reader.readexactly(length)
