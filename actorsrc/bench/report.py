"""The report of `actorsrc bench`: rows from results, versions, and the human-readable table."""

from __future__ import annotations

import os
import platform
import resource
import sqlite3
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import actorsrc
from actorsrc.bench.workloads import Result


def row(result: Result) -> dict[str, Any]:
    return {
        "workload": result.workload,
        "what": result.what,
        "throughput": result.rate if result.operations else None,
        "unit": result.unit,
        "operations": result.operations,
        "seconds": result.seconds,
        "p50_ms": result.percentile(0.5),
        "p95_ms": result.percentile(0.95),
        "p99_ms": result.percentile(0.99),
        **result.extra,
    }


def peak_rss_mb() -> float:
    """The process's peak resident set size so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def versions(*packages: str) -> dict[str, str]:
    found = {"python": platform.python_version(), "actorsrc": actorsrc.__version__, "sqlite": sqlite3.sqlite_version}
    for package in ("aiosqlite", "anyio", "msgspec", *packages):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "missing"
    return found


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average": list(os.getloadavg())}


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ratio(value: float | dict[str, Any]) -> str:
    """A ratio, or (interleaved rounds) its median, spread and every round's figure."""
    if not isinstance(value, dict):
        return f"{value:.2f}"
    each = " ".join(f"{r:.2f}" for r in value["rounds"])
    return f"{value['median']:.2f} (min-max {value['min']:.2f}-{value['max']:.2f}; rounds: {each})"


def table(report: dict[str, Any]) -> str:
    width = max(40, *(len(r["what"]) for r in report["results"]))
    header = f"{'':{width}} {'throughput':>12} {'':11} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
    lines = [f"actorsrc bench {report['workload']}", header]
    for r in report["results"]:
        lines.append(
            f"{r['what']:{width}} {_fmt(r['throughput'], ',.0f'):>12} {r['unit'] if r['throughput'] else '':11} "
            f"{_fmt(r['p50_ms'], '.2f'):>8} {_fmt(r['p95_ms'], '.2f'):>8} {_fmt(r['p99_ms'], '.2f'):>8}"
        )
        if len(r.get("rounds") or ()) > 1:  # a median over rounds: show each round's figure
            lines.append(f"{'':4}rounds: " + " ".join(f"{rate:,.0f}" for rate in r["rounds"]))
    if report["ratios"]:
        lines.append("ratios (same run; A / B > 1: A is faster, or closer to the ceiling):")
        lines += [f"  {name}: {_ratio(ratio)}" for name, ratio in report["ratios"].items()]
    if (sweep := report.get("sweep")) is not None:
        lines.append(
            f"sweep: throughput levels off at {sweep['level_off_callers']} callers"
            f" (the first to reach {sweep['level_off_share']:.0%} of the sweep's best)"
        )
    lines += [f"note: {note}" for note in report["notes"]]
    store = ", ".join(f"{k}={v}" for k, v in report["store"].items())
    lines.append(f"store: {store}")
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    rss = f"peak RSS {report['peak_rss_mb']:.0f} MB"
    if report.get("peak_rss_mb_before_peer") is not None:
        rss += f" ({report['peak_rss_mb_before_peer']:.0f} MB before the peer's full-size runs in this process)"
    cpus, load = report["machine"]["cpus"], report["machine"]["load_average"]
    lines.append(f"{rss}; {cpus} CPUs, load average {load[0]:.2f} at the end: figures are indicative")
    return "\n".join(lines)
