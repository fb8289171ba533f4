"""The node's link to NATS: one connection, JetStream checked, and the cluster's two KV buckets.

- ``members``: one key per node, refreshed by its heartbeat; the bucket TTL removes a dead node.
- ``leases``: one key per shard (and per read-side partition); the bucket TTL is the lease TTL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from actorsrc.cluster.bounded import within
from actorsrc.cluster.settings import Cluster
from actorsrc.errors import ClusterUnavailableError, ConfigurationError
from actorsrc.observability import logger


@dataclass(slots=True)
class NatsLink:
    client: Client
    jetstream: JetStreamContext
    members: KeyValue
    leases: KeyValue

    async def close(self) -> None:
        """Close the connection (bounded). Not `drain`: the shards are handed off and unsubscribed by now,
        and a drain cut short by its time limit was seen to leave `close` waiting."""
        await within(5.0, self.client.close())


async def _log_error(error: Exception) -> None:
    # Without an error callback nats-py prints reconnect tracebacks; a structured line says the same.
    logger.warning("cluster.nats_error", error=repr(error))


async def connect(cluster: Cluster) -> NatsLink:
    """Connect and open the buckets; `ClusterUnavailableError` when NATS is unreachable or has no JetStream."""
    servers = cluster.servers
    try:
        client = await within(
            cluster.connect_timeout,
            nats.connect(
                servers,
                name=cluster.node_id,
                error_cb=_log_error,
                connect_timeout=max(1, math.ceil(cluster.connect_timeout)),
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
            ),
        )
    except Exception as exc:
        raise ClusterUnavailableError(
            f"cannot reach NATS at {', '.join(servers)} within {cluster.connect_timeout} s: {exc!r}"
        ) from exc
    try:
        jetstream = await require_jetstream(client, servers, max(2.0, cluster.lease_ttl / 5))
        members = await _bucket(jetstream, cluster.bucket("members"), cluster.lease_ttl)
        leases = await _bucket(jetstream, cluster.bucket("leases"), cluster.lease_ttl)
    except BaseException:
        await client.close()
        raise
    return NatsLink(client, jetstream, members, leases)


async def require_jetstream(client: Client, servers: list[str], timeout: float) -> JetStreamContext:
    """The connection's JetStream; `ClusterUnavailableError` if the server runs without it."""
    jetstream = client.jetstream(timeout=timeout)
    try:
        await jetstream.account_info()
    except Exception as exc:
        raise ClusterUnavailableError(
            f"NATS at {', '.join(servers)} has no JetStream (start nats-server with -js): {exc!r}"
        ) from exc
    return jetstream


async def _bucket(jetstream: JetStreamContext, name: str, ttl: float) -> KeyValue:
    """The bucket `name`, created with `ttl` if missing; an existing one must have the same TTL (every
    node of a cluster must agree on the lease time, or one would trust a lease another thinks expired)."""
    try:
        kv = await jetstream.key_value(name)
    except BucketNotFoundError:
        try:
            return await jetstream.create_key_value(
                KeyValueConfig(bucket=name, history=1, ttl=ttl, storage=StorageType.FILE)
            )
        except Exception:
            kv = await jetstream.key_value(name)
    status = await kv.status()
    existing = status.stream_info.config.max_age  # seconds
    if existing is not None and abs(existing - ttl) > 1e-3:
        raise ConfigurationError(
            f"the NATS bucket {name!r} has a TTL of {existing} s but this node's Cluster(lease_ttl=) is {ttl} s: "
            "every node of a cluster needs the same lease_ttl (stop every node and delete the bucket to change it)"
        )
    return kv
