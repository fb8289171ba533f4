"""The actor runtime."""

from actorsrc.runtime.outcome import CommandOutcome
from actorsrc.runtime.runtime import AggregateRef, Runtime

__all__ = ["AggregateRef", "CommandOutcome", "Runtime"]
