"""Aggregates placed across processes and machines over NATS JetStream (the `cluster` extra).

`Cluster` is the setting to pass as ``Runtime(..., cluster=Cluster(nats=..., name=...))``.
"""

from actorsrc.cluster.settings import Cluster

__all__ = ["Cluster"]
