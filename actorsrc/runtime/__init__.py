"""The actor runtime."""

from actorsrc.runtime.outcome import CommandOutcome
from actorsrc.runtime.readside import HandlerStatus
from actorsrc.runtime.ref import AggregateRef
from actorsrc.runtime.runtime import Runtime, RuntimeStats
from actorsrc.runtime.settings import ReadSettings, WriteSettings
from actorsrc.runtime.store_health import StoreBreakerPolicy, StoreStatus
from actorsrc.runtime.supervision import SupervisorPolicy

__all__ = [
    "AggregateRef",
    "CommandOutcome",
    "HandlerStatus",
    "ReadSettings",
    "Runtime",
    "RuntimeStats",
    "StoreBreakerPolicy",
    "StoreStatus",
    "SupervisorPolicy",
    "WriteSettings",
]
