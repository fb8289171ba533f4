"""`actorsrc bench write --plot out.png`: throughput against the number of concurrent callers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actorsrc.bench import workloads
from actorsrc.bench.extra import INSTALL_BENCH_EXTRA, MissingExtra

CALLERS = (1, 10, 100, 1000, 4000)
PER_CALLER = 200  # commands per caller, up to MAX_COMMANDS: one caller waits for every fsync, keep it short
MAX_COMMANDS = 40_000
QUICK_CALLERS = (1, 10, 50)  # --quick: a curve in about a second
QUICK_PER_CALLER = 20


class MatplotlibMissing(MissingExtra):
    pass


def pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise MatplotlibMissing(f"--plot needs matplotlib, from the `bench` extra: {INSTALL_BENCH_EXTRA}") from None
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


async def throughput_curve(
    store_url: str | None, directory: Path, aggregates: int, quick: bool
) -> list[tuple[int, float]]:
    points: list[tuple[int, float]] = []
    curve, per_caller = (QUICK_CALLERS, QUICK_PER_CALLER) if quick else (CALLERS, PER_CALLER)
    for callers in curve:
        total = min(MAX_COMMANDS, per_caller * callers)
        count = min(aggregates, total)
        run_directory = directory / f"plot-{callers}"
        run_directory.mkdir()
        result, _ = await workloads.write(store_url, run_directory, count, max(1, total // count), callers, 1)
        points.append((callers, result.rate))
    return points


async def plot(
    store_url: str | None, directory: Path, aggregates: int, out: Path, *, quick: bool = False
) -> list[tuple[int, float]]:
    plt = pyplot()  # fails before the runs when matplotlib is missing
    points = await throughput_curve(store_url, directory, aggregates, quick)
    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.plot([p[0] for p in points], [p[1] for p in points], marker="o")
    for callers, rate in points:
        axes.annotate(f"{rate:,.0f}", (callers, rate), textcoords="offset points", xytext=(0, 6), ha="center")
    axes.set_xscale("log")
    axes.set_xticks([p[0] for p in points], [f"{p[0]:,}" for p in points])
    axes.set_ylim(0, max(p[1] for p in points) * 1.2)  # room for the labels
    axes.yaxis.set_major_formatter(lambda value, _: f"{value:,.0f}")
    axes.set_xlabel("concurrent callers")
    axes.set_ylabel("commands/s")
    store = "PostgreSQL" if store_url is not None else "durable SQLite (WAL, synchronous=FULL)"
    axes.set_title(f"actorsrc write throughput, {store}", fontsize=10)
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return points
