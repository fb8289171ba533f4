"""The benchmark's own aggregate: a tally whose command writes any number of events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from actorsrc import Aggregate


@dataclass(frozen=True, slots=True)
class Add:
    events: int = 1


@dataclass(frozen=True, slots=True)
class Added:
    amount: int


@dataclass(frozen=True, slots=True)
class Tally:
    total: int = 0


def _decide(state: Tally, command: Add) -> Sequence[Added]:
    return [Added(1)] * command.events


def _evolve(state: Tally, event: Added) -> Tally:
    return Tally(state.total + event.amount)


tally: Aggregate[Tally, Add, Added] = Aggregate(
    name="tally", initial=Tally(), decide=_decide, evolve=_evolve, events={"Added": Added}, commands=(Add,)
)
