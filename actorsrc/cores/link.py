"""A connection to another part's process, and the coalescing of what is asked of it in one loop turn.

Every command for that part asked in one turn of the event loop goes in one `CommandBatch` frame (as
`actorsrc.cluster.batching` does over NATS): a frame costs both processes far more than the work per
command it carries. Each caller keeps its own deadline, enforced by one timer per frame (not one per
command: a timer costs about as much as the rest of routing a command). When the connection cannot be
made, or drops with requests in flight, those callers get `PartUnreachable` and ask again (with their
command ids).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from actorsrc.cluster import wire
from actorsrc.cores.framing import frame, read_frame
from actorsrc.cores.settings import Cores
from actorsrc.observability import logger

_MAX_BATCH = 256  # commands in one frame
_FOREVER = float("inf")

Waiter = asyncio.Future[wire.Reply]
Item = tuple[wire.CommandRequest, float, Waiter]  # the request, its deadline (loop time; inf: none), its reply


class PartUnreachable(ConnectionError):
    """No process took the request (none serves the part now), or the connection dropped before its reply:
    the command was not carried out, or was and its command id makes a retry return that outcome."""


class _Connection:
    """One connection: its writer and the requests sent on it still waiting for their replies."""

    __slots__ = ("in_flight", "reader", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.in_flight: dict[int, list[Waiter]] = {}
        self.reader: asyncio.Task[None] | None = None


class PartLink:
    def __init__(self, cores: Cores, part: int) -> None:
        self.cores = cores
        self.part = part
        self.path = str(cores.socket_path(part))
        self._connection: _Connection | None = None
        self._connecting = asyncio.Lock()
        self._ids = itertools.count(1)
        self._pending: list[Item] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.frames = 0  # frames sent (a batch counts once)

    def exchange(self, request: wire.CommandRequest, deadline: float | None) -> Waiter:
        """Send `request` (with the others asked this loop turn); the future of its reply. It fails with
        `PartUnreachable`, or `TimeoutError` at `deadline` (the loop's time; None: no limit)."""
        loop = asyncio.get_running_loop()
        future: Waiter = loop.create_future()
        pending = self._pending
        if pending is None or len(pending) >= _MAX_BATCH:
            if pending is not None:
                self._flush()
            pending = self._pending = []
            loop.call_soon(self._flush)
        pending.append((request, _FOREVER if deadline is None else deadline, future))
        return future

    def _flush(self) -> None:
        items, self._pending = self._pending, None
        if not items:
            return
        task = asyncio.get_running_loop().create_task(self._send(items))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, items: list[Item]) -> None:
        waiting = [item for item in items if not item[2].done()]
        if not waiting:
            return
        _expire(waiting)
        futures = [future for _, _, future in waiting]
        try:
            connection = await self._connected()
            request_id = next(self._ids) & 0xFFFFFFFF
            message = frame(request_id, wire.encode(wire.CommandBatch([request for request, _, _ in waiting])))
            connection.in_flight[request_id] = futures
            connection.writer.write(message)
            self.frames += 1
            await connection.writer.drain()
        except Exception as exc:
            error = exc if isinstance(exc, PartUnreachable | ValueError) else PartUnreachable(repr(exc))
            _fail(futures, error)

    async def _connected(self) -> _Connection:
        async with self._connecting:
            connection = self._connection
            if connection is not None and not connection.writer.is_closing():
                return connection
            try:
                async with asyncio.timeout(self.cores.connect_timeout):
                    reader, writer = await asyncio.open_unix_connection(self.path)
            except (OSError, TimeoutError) as exc:
                raise PartUnreachable(f"part {self.part} has no process taking commands ({exc!r})") from None
            connection = self._connection = _Connection(writer)
            connection.reader = asyncio.get_running_loop().create_task(self._read(reader, connection))
            logger.info("cores.connected", part=self.part)  # once per connection: routing to that part began
            return connection

    async def _read(self, reader: asyncio.StreamReader, connection: _Connection) -> None:
        error: BaseException = PartUnreachable(f"the connection to part {self.part} closed before the reply")
        try:
            while True:
                request_id, payload = await read_frame(reader)
                futures = connection.in_flight.pop(request_id, None)
                if futures is not None:
                    _settle(futures, wire.decode_reply(payload))
        except Exception as exc:
            error = PartUnreachable(f"the connection to part {self.part} dropped before the reply ({exc!r})")
        finally:
            connection.writer.close()
            if self._connection is connection:
                self._connection = None
            lost = [future for futures in connection.in_flight.values() for future in futures]
            connection.in_flight.clear()
            _fail(lost, error)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.writer.close()
            if connection.reader is not None:
                connection.reader.cancel()
                await asyncio.wait([connection.reader])


def _expire(items: list[Item]) -> None:
    """Fail each waiter with `TimeoutError` at its deadline: one timer for the frame, moved from the
    earliest deadline to the next until every waiter is done."""
    loop = asyncio.get_running_loop()

    def check() -> None:
        now = loop.time()
        left = [item for item in items if not item[2].done()]
        for _, deadline, future in left:
            if deadline <= now:
                _set_exception(future, TimeoutError())
        later = [deadline for _, deadline, future in left if not future.done()]
        if later and min(later) < _FOREVER:
            loop.call_at(min(later), check)

    first = min(deadline for _, deadline, _ in items)
    if first < _FOREVER:
        loop.call_at(first, check)


def _fail(futures: list[Waiter], error: BaseException) -> None:
    for future in futures:
        if not future.done():
            _set_exception(future, error)


def _set_exception(future: Waiter, error: BaseException) -> None:
    future.set_exception(error)
    # Marked retrieved: a caller cancelled meanwhile never awaits it, and that is no error to log. (A done
    # callback doing this would cost every reply a callback.)
    future.exception()


def _settle(futures: list[Waiter], reply: wire.Reply | wire.ReplyBatch) -> None:
    if not isinstance(reply, wire.ReplyBatch):  # a failure that concerns the whole frame
        for future in futures:
            if not future.done():
                future.set_result(reply)
        return
    if len(reply.replies) != len(futures):
        error = RuntimeError(f"a reply to {len(futures)} routed commands held {len(reply.replies)} answers")
        _fail(futures, error)
        return
    for future, one in zip(futures, reply.replies, strict=True):
        if not future.done():
            future.set_result(one)
