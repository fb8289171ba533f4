"""The actor runtime."""

from actorsrc.runtime.outcome import CommandOutcome
from actorsrc.runtime.runtime import AggregateRef, Runtime, RuntimeStats
from actorsrc.runtime.supervision import SupervisorPolicy

__all__ = ["AggregateRef", "CommandOutcome", "Runtime", "RuntimeStats", "SupervisorPolicy"]
