"""The actor runtime."""

from actorsrc.runtime.outcome import CommandOutcome
from actorsrc.runtime.ref import AggregateRef
from actorsrc.runtime.runtime import Runtime, RuntimeStats
from actorsrc.runtime.supervision import SupervisorPolicy

__all__ = ["AggregateRef", "CommandOutcome", "Runtime", "RuntimeStats", "SupervisorPolicy"]
