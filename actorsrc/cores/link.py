"""A connection to another part's process, and the coalescing of what is asked of it in one loop turn.

Every command for that part asked in one turn of the event loop goes in one `CommandBatch` frame (as
`actorsrc.cluster.batching` does over NATS): a frame costs both processes far more than the work per
command it carries. Once connected, a frame is written at the end of the loop turn without a task. Each
caller keeps its own deadline, enforced by one timer per frame (not one per command: a timer costs about
as much as the rest of routing a command), cancelled when the frame's reply comes. When the connection
cannot be made, or drops with requests in flight, those callers get `PartUnreachable` and ask again (with
their command ids).
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


class _Frame:
    """The callers of one frame, and the one timer that fails each at its deadline (cancelled once the frame
    is answered: a pending timer would keep the frame's requests and futures alive until the latest one)."""

    __slots__ = ("deadlines", "futures", "timer")

    def __init__(self, futures: list[Waiter], deadlines: list[float]) -> None:
        self.futures = futures
        self.deadlines = deadlines
        self.timer: asyncio.TimerHandle | None = None
        first = min(deadlines)
        if first < _FOREVER:
            self.timer = asyncio.get_running_loop().call_at(first, self._expire)

    def _expire(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        later = _FOREVER
        for future, deadline in zip(self.futures, self.deadlines, strict=True):
            if future.done():
                continue
            if deadline <= now:
                _set_exception(future, TimeoutError())
            elif deadline < later:
                later = deadline
        self.timer = loop.call_at(later, self._expire) if later < _FOREVER else None

    def settle(self, reply: wire.Reply | wire.ReplyBatch) -> None:
        self.stop()
        _settle(self.futures, reply)

    def fail(self, error: BaseException) -> None:
        self.stop()
        _fail(self.futures, error)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class _Connection:
    """One connection: its writer and the frames sent on it still waiting for their replies."""

    __slots__ = ("in_flight", "reader", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.in_flight: dict[int, _Frame] = {}
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
        waiting = [item for item in items if not item[2].done()]  # a caller cancelled meanwhile is left out
        if not waiting:
            return
        sent = _Frame([future for _, _, future in waiting], [deadline for _, deadline, _ in waiting])
        requests = [request for request, _, _ in waiting]
        connection = self._connection
        if connection is not None and not connection.writer.is_closing():
            self._write(connection, requests, sent)  # connected: no task, no await
            return
        task = asyncio.get_running_loop().create_task(self._connect_and_write(requests, sent))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_and_write(self, requests: list[wire.CommandRequest], sent: _Frame) -> None:
        try:
            connection = await self._connected()
        except PartUnreachable as exc:
            sent.fail(exc)
            return
        except asyncio.CancelledError:  # the link is closing: nothing was sent
            sent.fail(PartUnreachable(f"the link to part {self.part} closed before the request was sent"))
            raise
        self._write(connection, requests, sent)

    def _write(self, connection: _Connection, requests: list[wire.CommandRequest], sent: _Frame) -> None:
        try:
            request_id = next(self._ids) & 0xFFFFFFFF
            message = frame(request_id, wire.encode(wire.CommandBatch(requests)))
            # No drain: what is written is bounded by the callers waiting for replies, which the owner reads.
            connection.writer.write(message)
        except Exception as exc:
            sent.fail(exc if isinstance(exc, ValueError) else PartUnreachable(repr(exc)))
            return
        connection.in_flight[request_id] = sent
        self.frames += 1

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
                _answer(connection.in_flight.pop(request_id, None), payload)  # no local keeps the frame
        except Exception as exc:
            error = PartUnreachable(f"the connection to part {self.part} dropped before the reply ({exc!r})")
        finally:
            connection.writer.close()
            if self._connection is connection:
                self._connection = None
            lost = list(connection.in_flight.values())
            connection.in_flight.clear()
            for sent in lost:
                sent.fail(error)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.writer.close()
            if connection.reader is not None:
                connection.reader.cancel()
                await asyncio.wait([connection.reader])


def _answer(sent: _Frame | None, payload: bytes) -> None:
    if sent is not None:  # None: its callers were failed already (the frame timed out, then the link dropped)
        sent.settle(wire.decode_reply(payload))


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
