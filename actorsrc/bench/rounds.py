"""Interleaved rounds: every measurement once per round, in the same order each round (ours, the peer,
ours, the peer, ...), so a load swing on a shared machine hits both sides alike; then each round's ratio,
and the median and spread over the rounds."""

from __future__ import annotations

import gc
import statistics
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from actorsrc.bench.workloads import Result
from actorsrc.errors import ConfigurationError
from actorsrc.progress import Progress

T = TypeVar("T")
QUANTILES = (0.5, 0.95, 0.99)
FIGURES_NEED_ROUNDS = 3  # fewer rounds run, but give no spread worth quoting


async def interleave(measurers: Sequence[tuple[str, Callable[[], Awaitable[T]]]], rounds: int) -> dict[str, list[T]]:
    """Run every (name, measure) in order, `rounds` times over; returns each name's samples in round order.

    A full collection before each measurement: no side pays on its clock for the other's garbage.
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigurationError(f"rounds must be an integer >= 1, got {rounds!r}")
    names = [name for name, _ in measurers]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"measurement names must differ, got {names}")
    samples: dict[str, list[T]] = {name: [] for name in names}
    with Progress(rounds * len(measurers), "interleaved rounds") as progress:
        for _ in range(rounds):
            for name, measure in measurers:
                gc.collect()
                samples[name].append(await measure())
                progress.advance()
    return samples


def spread(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """{"median", "min", "max", "rounds": [...]} of per-round figures."""
    if not values:
        raise ConfigurationError("a spread needs at least one round")
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "rounds": [round(v, digits) for v in values],
    }


def per_round(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Each round's ratio (the samples of one round divided by each other, never across rounds)."""
    if len(numerators) != len(denominators):
        raise ConfigurationError(f"rounds differ: {len(numerators)} and {len(denominators)}")
    return [n / d if d else float("inf") for n, d in zip(numerators, denominators, strict=True)]


def summary(samples: Sequence[Result], what: str) -> Result:
    """One row for a series of rounds: the median throughput, each quantile's median over the rounds,
    and every round's throughput (`rounds`, with `min` and `max`) in `extra`."""
    first = samples[0]
    rates = [s.rate for s in samples]
    median = statistics.median(rates)
    quantiles: dict[float, float] = {}
    for q in QUANTILES:
        found = [p for s in samples if (p := s.percentile(q)) is not None]
        if found:
            quantiles[q] = statistics.median(found)
    extra = {**first.extra, **spread(rates, 1)}
    del extra["median"]  # the row's throughput is the median
    seconds = first.operations / median if median else 0.0
    return Result(first.workload, what, first.operations, seconds, first.unit, quantiles_ms=quantiles, extra=extra)
