"""`Cluster`: how a runtime joins a cluster of nodes over NATS JetStream (pure settings, no I/O)."""

from __future__ import annotations

import math
import os
import re
import secrets
import socket
from dataclasses import dataclass, field
from typing import Literal

from actorsrc.errors import ConfigurationError

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def default_node_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40] or "node"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class Cluster:
    """Join the cluster `name` through the NATS server(s) at `nats` (JetStream on).

    - ``role``: ``"member"`` hosts shards of aggregates (and read-side partitions); ``"client"`` only
      sends commands (a web tier).
    - ``shards``: how many shards the stream ids are spread over; the same on every node, and fixed for
      the cluster's life (a stream's shard is ``crc32(stream_id) % shards``).
    - ``lease_ttl``: seconds a node keeps a shard without renewing its lease. A node that dies holds its
      shards this long; a node that cannot renew stops serving them before it runs out. Renewed every
      ``lease_ttl / 5``. With a clustered NATS (its leader fail-over takes seconds), keep 15 s or more.
    - ``node_id``: this node's name in the cluster (default: host, pid and a random suffix).
    - ``partitions``: how many partitions each projection and process manager is split into
      (by ranges of the slice stored with every event, so changing it rewrites nothing).
    - ``connect_timeout``: seconds to reach NATS at start before `ClusterUnavailableError`.
    """

    nats: str | tuple[str, ...]
    name: str
    role: Literal["member", "client"] = "member"
    shards: int = 256
    lease_ttl: float = 15.0
    node_id: str = field(default_factory=default_node_id)
    partitions: int = 4
    connect_timeout: float = 5.0

    def __post_init__(self) -> None:
        servers = (self.nats,) if isinstance(self.nats, str) else self.nats
        if not servers or not all(isinstance(s, str) and s.startswith(("nats://", "tls://")) for s in servers):
            raise ConfigurationError(f"Cluster nats= must be nats:// URLs, got {self.nats!r}")
        for what, value in (("name", self.name), ("node_id", self.node_id)):
            if not isinstance(value, str) or not _NAME.match(value):
                raise ConfigurationError(f"Cluster {what}= must be 1-64 letters, digits, '-' or '_', got {value!r}")
        if self.role not in ("member", "client"):
            raise ConfigurationError(f"Cluster role= must be 'member' or 'client', got {self.role!r}")
        counts: tuple[tuple[str, int, int, int], ...] = (
            ("shards", self.shards, 1, 65536),
            ("partitions", self.partitions, 1, 1024),
        )
        for what, number, low, high in counts:
            if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
                raise ConfigurationError(f"Cluster {what}= must be an int from {low} to {high}, got {number!r}")
        durations: tuple[tuple[str, float, float], ...] = (
            ("lease_ttl", self.lease_ttl, 2.0),  # below, a lease's trusted window is shorter than a request's timeout
            ("connect_timeout", self.connect_timeout, 0.1),
        )
        for what, seconds, shortest in durations:
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
                raise ConfigurationError(f"Cluster {what}= must be a number of seconds, got {seconds!r}")
            if seconds < shortest:
                raise ConfigurationError(f"Cluster {what}= must be at least {shortest} s, got {seconds!r}")

    @property
    def servers(self) -> list[str]:
        return [self.nats] if isinstance(self.nats, str) else list(self.nats)

    @property
    def renew_every(self) -> float:
        return self.lease_ttl / 5

    @property
    def hosts_shards(self) -> bool:
        return self.role == "member"

    def subject(self, *parts: str | int) -> str:
        """A NATS subject of this cluster's own."""
        return ".".join(("actorsrc", self.name, *map(str, parts)))

    def bucket(self, what: str) -> str:
        return f"actorsrc_{self.name}_{what}"
