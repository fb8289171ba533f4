"""The part's Unix socket: other processes send it the commands for the instances this process owns.

Each request frame is answered on its own, without a task: its commands are queued at once and the frame's
reply is written when the last of them is answered (so a slow command does not hold up the other frames on
the connection); the reply carries the request's id. A socket file left by a process that died is removed
first: holding the part's lock proves nobody else serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from pathlib import Path

from actorsrc.cluster import wire
from actorsrc.cores.answering import BatchAnswerer
from actorsrc.cores.framing import FrameError, frame, read_frame
from actorsrc.observability import logger


class PartServer:
    def __init__(self, path: Path, answerer: BatchAnswerer) -> None:
        self.path = path
        self.answerer = answerer
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._answering = 0  # frames read and not answered yet
        self._answered: asyncio.Event | None = None  # set when _answering drops to 0 while stopping

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        self.path.chmod(0o600)  # only this user's processes may send commands

    async def stop(self) -> None:
        """Take no new connections, finish answering what arrived (the runtime's actors are still up), then
        close every connection: callers whose requests had not arrived ask again once a process serves it."""
        if self._server is None:
            return
        self._server.close()
        if self._answering:
            self._answered = asyncio.Event()
            await self._answered.wait()
        for writer in list(self._connections):
            writer.close()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()
        self.path.unlink(missing_ok=True)
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while True:
                request_id, payload = await read_frame(reader)
                self._answering += 1
                try:
                    self.answerer.start(payload, functools.partial(self._respond, writer, request_id))
                except Exception as bug:
                    logger.error("cores.serve_failed", error=repr(bug))
                    self._respond(writer, request_id, wire.encode_failure(bug))
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if isinstance(exc, FrameError):
                logger.warning("cores.bad_frame", error=str(exc))
        finally:
            self._connections.discard(writer)
            writer.close()

    def _respond(self, writer: asyncio.StreamWriter, request_id: int, data: bytes) -> None:
        self._answering -= 1
        if self._answering == 0 and self._answered is not None:
            self._answered.set()
        if writer.is_closing():
            return  # the caller is gone; it asks again with the same command id
        try:
            message = frame(request_id, data)
        except ValueError as exc:  # the commands ran; only their reply is too large to carry
            message = frame(request_id, wire.encode_failure(exc))
        # No drain: a reply is bounded by its request, which the caller sent and awaits.
        writer.write(message)
