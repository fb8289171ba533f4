"""Read-model databases: where projections write, and where handler checkpoints live."""

from actorsrc.readmodel.base import ParkedEvent
from actorsrc.readmodel.portable import PortableConnection
from actorsrc.readmodel.sqlite import SQLiteReadModel

__all__ = ["ParkedEvent", "PortableConnection", "SQLiteReadModel"]
