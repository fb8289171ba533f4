"""A TCP proxy on 127.0.0.1 between a PostgreSQL store and its server that fails the link on cue.

It knows one thing of PostgreSQL's wire protocol: asyncpg sends COMMIT as a simple query (a 'Q'
message holding "COMMIT;"), so a test can fail a link exactly around a commit:

    async with pg_proxy(dsn) as proxy:
        proxy.cut_at_commit(Cut.REPLY_LOST, outage=True)  # the server commits, the client never hears
        ...
        await proxy.until(lambda: proxy.refused >= 3)  # the store is retrying against a server "down"
        proxy.restore()
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.abc

COMMIT = b"Q\x00\x00\x00\x0cCOMMIT;\x00"
_LINK_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class Cut(enum.Enum):
    REPLY_LOST = "the COMMIT reaches the server, which commits; its reply is dropped and the link closes"
    COMMIT_LOST = "the COMMIT never reaches the server; the link closes, so the server rolls back"
    HANG_AFTER_COMMIT = "the COMMIT reaches the server; then the link goes silent both ways without closing"
    HANG_BEFORE_COMMIT = "the COMMIT never reaches the server; the link goes silent both ways without closing"


@dataclass(eq=False)
class _Link:
    scope: anyio.CancelScope
    cut: Cut | None = None
    reply_seen: anyio.Event = field(default_factory=anyio.Event)


class PgProxy:
    def __init__(self, upstream_host: str, upstream_port: int, port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self.port = port
        self.refusing = False
        """New connections are closed at once, as while a server restarts."""
        self.refused = 0
        self.cuts_done = 0
        self._cuts: deque[tuple[Cut, bool]] = deque()
        self._links: set[_Link] = set()
        self._changed = anyio.Event()

    def dsn(self, dsn: str) -> str:
        """`dsn` with its host and port replaced by the proxy's."""
        parts = urlsplit(dsn)
        user = parts.netloc.rpartition("@")[0]
        netloc = f"{user}@127.0.0.1:{self.port}" if user else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def cut_at_commit(self, cut: Cut, *, outage: bool = False) -> None:
        """Fail the link of the next COMMIT that passes (queue several for several commits). With
        `outage`, every other link closes too and new ones are refused until `restore()`."""
        self._cuts.append((cut, outage))

    def restore(self) -> None:
        self.refusing = False
        self._notify()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until `condition()` holds; it is checked after every change of the proxy's state."""
        while not condition():
            changed = self._changed
            await changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def handle(self, client: anyio.abc.SocketStream) -> None:
        async with client:
            if self.refusing:
                self.refused += 1
                self._notify()
                return
            try:
                upstream = await anyio.connect_tcp(*self._upstream)
            except OSError:
                return
            async with upstream, anyio.create_task_group() as tg:
                link = _Link(tg.cancel_scope)
                self._links.add(link)
                try:
                    tg.start_soon(self._to_server, client, upstream, link)
                    tg.start_soon(self._to_client, upstream, client, link)
                    await anyio.sleep_forever()
                finally:
                    self._links.discard(link)

    async def _to_server(self, client: anyio.abc.SocketStream, upstream: anyio.abc.SocketStream, link: _Link) -> None:
        with suppress(*_LINK_ERRORS):
            await self._pass_to_server(client, upstream, link)
        if link.cut is None:
            link.scope.cancel()
        # A silent link stays up after the client gives up: a partition, not a close, as far as the
        # server can tell; only the server closing its side ends it.

    async def _pass_to_server(
        self, client: anyio.abc.SocketStream, upstream: anyio.abc.SocketStream, link: _Link
    ) -> None:
        async for data in client:
            if link.cut is not None:  # silent: what the client sends is lost
                continue
            at = data.find(COMMIT)
            if at < 0 or not self._cuts:
                await upstream.send(data)
                continue
            cut, outage = self._cuts.popleft()
            link.cut = cut
            if cut in (Cut.REPLY_LOST, Cut.HANG_AFTER_COMMIT):
                await upstream.send(data[: at + len(COMMIT)])
                if cut is Cut.REPLY_LOST:
                    await link.reply_seen.wait()  # the server has committed
            self.cuts_done += 1
            if outage:
                self.refusing = True
                for other in list(self._links - {link}):
                    other.scope.cancel()
            if cut in (Cut.REPLY_LOST, Cut.COMMIT_LOST):
                link.scope.cancel()
            self._notify()

    async def _to_client(self, upstream: anyio.abc.SocketStream, client: anyio.abc.SocketStream, link: _Link) -> None:
        with suppress(*_LINK_ERRORS):
            async for data in upstream:
                if link.cut is None:
                    await client.send(data)
                else:
                    link.reply_seen.set()  # dropped
        link.scope.cancel()


@asynccontextmanager
async def pg_proxy(dsn: str) -> AsyncIterator[PgProxy]:
    """A proxy in front of the server `dsn` names; use `proxy.dsn(dsn)` to connect through it."""
    parts = urlsplit(dsn)
    assert parts.hostname is not None, dsn
    assert parts.port is not None, dsn
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener, anyio.create_task_group() as tg:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        proxy = PgProxy(parts.hostname, parts.port, port)
        tg.start_soon(listener.serve, proxy.handle)
        yield proxy
        tg.cancel_scope.cancel()
