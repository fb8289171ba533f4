"""The caller sweep of `actorsrc bench write --compare`: throughput at 1, 2, 4, ... concurrent callers, up
to --callers, and the count where it levels off (the first to reach LEVEL_OFF of the sweep's best).

Each point is short (a few hundred commands per caller at most), so the whole sweep is a few seconds a
pass; passes repeat the whole sweep (1..N, 1..N, ...) and each point reports its median over them.
"""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from actorsrc.bench import workloads
from actorsrc.bench.workloads import Result
from actorsrc.errors import ConfigurationError

LEVEL_OFF = 0.9


@dataclass(frozen=True)
class SweepSizes:
    min_commands: int  # per point: one caller still does this many
    per_caller: int  # then this many per caller ...
    max_commands: int  # ... up to this many


FULL = SweepSizes(1000, 30, 30_000)
QUICK = SweepSizes(40, 4, 300)


def caller_counts(max_callers: int) -> list[int]:
    """1, 2, 4, ... below `max_callers`, then `max_callers` itself."""
    if max_callers < 1:
        raise ConfigurationError(f"the sweep needs at least 1 caller, got {max_callers}")
    counts = []
    callers = 1
    while callers < max_callers:
        counts.append(callers)
        callers *= 2
    return [*counts, max_callers]


def level_off(points: Sequence[tuple[int, float]], share: float = LEVEL_OFF) -> int:
    """The fewest callers whose throughput reaches `share` of the sweep's best."""
    if not points:
        raise ConfigurationError("level_off needs at least one point")
    best = max(rate for _, rate in points)
    return min(callers for callers, rate in points if rate >= share * best)


def point_shape(callers: int, commands_each: int, sizes: SweepSizes) -> tuple[int, int]:
    """(aggregates, commands each) for one point: as many commands per aggregate as the headline, and
    at least one aggregate per caller."""
    total = min(sizes.max_commands, max(sizes.min_commands, sizes.per_caller * callers))
    aggregates = max(callers, total // commands_each)
    return aggregates, max(1, total // aggregates)


async def sweep(
    store_url: str | None,
    directory: Path,
    max_callers: int,
    commands_each: int,
    events_per_command: int,
    passes: int,
    sizes: SweepSizes,
    default_gc: bool | None,
) -> list[Result]:
    """One row per caller count: its median commands/s over `passes` sweeps, every pass's figure in
    `extra["passes"]`."""
    counts = caller_counts(max_callers)
    rates: dict[int, list[float]] = {callers: [] for callers in counts}
    shapes = {callers: point_shape(callers, commands_each, sizes) for callers in counts}
    for sweep_pass in range(passes):
        for callers in counts:
            aggregates, each = shapes[callers]
            run_directory = directory / f"sweep-{sweep_pass}-{callers}"
            run_directory.mkdir()
            try:
                result, _ = await workloads.write(
                    store_url, run_directory, aggregates, each, callers, events_per_command, default_gc=default_gc
                )
            finally:
                shutil.rmtree(run_directory, ignore_errors=True)
            rates[callers].append(result.rate)
    rows = []
    for callers, found in rates.items():
        aggregates, each = shapes[callers]
        median = statistics.median(found)
        extra = {
            "callers": callers,
            "aggregates": aggregates,
            "passes": [round(r, 1) for r in found],
            "min": round(min(found), 1),
            "max": round(max(found), 1),
        }
        row = Result("write", f"  sweep: {callers} caller(s)", aggregates * each, aggregates * each / median)
        row.extra = extra
        rows.append(row)
    return rows
