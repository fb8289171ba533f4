"""Serving routed commands: a request for a shard this node serves runs through its local actor exactly
as a local `ask` would, and the reply goes back once the events are durable (`BatchAnswerer`, shared
with the cores' Unix sockets; here a fenced append, like a shard given away, means "ask again")."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from nats.aio.msg import Msg
from nats.errors import MaxPayloadError

from actorsrc.cluster import wire
from actorsrc.cores.answering import BatchAnswerer
from actorsrc.errors import ClusterError, FencedAppendError, ShardMovingError
from actorsrc.observability import logger
from actorsrc.runtime.local_sender import LocalSender
from actorsrc.runtime.registry import AggregateEntry


class ShardServer:
    def __init__(
        self,
        entries: Mapping[str, AggregateEntry],
        local: LocalSender,
        serves: Callable[[str], bool],
        node_id: str,
    ) -> None:
        self.node_id = node_id
        # serves: stream id -> whether this node serves its shard now (lease valid)
        self.answerer = BatchAnswerer(entries, local, serves, node_id, moving=(ShardMovingError, FencedAppendError))

    @property
    def served(self) -> int:
        return self.answerer.served

    async def handle(self, msg: Msg) -> None:
        try:
            data = await self.answerer.answer(msg.data)
        except Exception as bug:
            logger.error("cluster.serve_failed", error=repr(bug))
            data = wire.encode_failure(bug)
        try:
            try:
                await msg.respond(data)
            except MaxPayloadError:  # the commands ran; only the reply is too large to carry
                await msg.respond(wire.encode(wire.failure_reply(_reply_too_large(len(data)))))
        except Exception as exc:
            logger.warning("cluster.reply_failed", error=repr(exc))


def _reply_too_large(size: int) -> ClusterError:
    return ClusterError(
        f"the command was carried out, but its reply ({size} bytes: its events, or the state) is over the NATS "
        "server's max_payload; read the outcome from the store, or raise max_payload"
    )
