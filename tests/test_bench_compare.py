"""`actorsrc bench write|hot --compare`: interleaved rounds against the peer, the default-GC and one-caller
pairs, the caller sweep; the round scheduler itself with fake measurements. No timings asserted."""

from __future__ import annotations

import gc
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from actorsrc.bench import gcmode, rounds, sweep, workloads
from actorsrc.bench.workloads import Result
from actorsrc.cli import main
from actorsrc.errors import ConfigurationError
from tests.postgres_support import require_postgres

VS_PEER = "actorsrc / eventsourcing (best configuration), commands/s"
DEFAULT_GC = "actorsrc with CPython's default GC / tuned GC, commands/s"
ONE_CALLER = "one caller: actorsrc / eventsourcing (1 thread), commands/s"
ONE_CALLER_P50 = "one caller: eventsourcing p50 / actorsrc p50 (> 1: actorsrc answers sooner)"
SPREADS = (VS_PEER, DEFAULT_GC, ONE_CALLER, ONE_CALLER_P50)


def _compare(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    pytest.importorskip("eventsourcing", reason="the peer is in the optional `bench` extra")
    assert main(["bench", *args, "--quick", "--compare", "--json"]) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def _row(report: dict[str, Any], starts: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [row for row in report["results"] if row["what"].startswith(starts)]
    assert len(found) == 1, [row["what"] for row in report["results"]]
    return found[0]


def _gc_rows(report: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    headline = report["results"][0]
    other = _row(report, "actorsrc, CPython's default GC")
    return headline, other


def _check_rounds(report: dict[str, Any], count: int) -> None:
    for name in SPREADS:
        ratio = report["ratios"][name]
        assert len(ratio["rounds"]) == count
        assert ratio["min"] <= ratio["median"] <= ratio["max"]
        assert all(r > 0 for r in ratio["rounds"])
    for starts in ("actorsrc", "actorsrc, 1 caller", "actorsrc, CPython's default GC"):
        row = [row for row in report["results"] if row["what"] == starts or row["what"].startswith(starts + " ")]
        assert row
        assert len(row[0]["rounds"]) == count
    one = _row(report, "actorsrc, 1 caller")
    assert one["p50_ms"] is not None
    assert one["p99_ms"] is not None
    assert one["p50_ms"] <= one["p99_ms"]
    assert _row(report, "eventsourcing")["p50_ms"] is not None  # the peer's best, its latency per command
    assert len([row for row in report["results"] if row["what"].startswith("  warm-up: eventsourcing")]) == 5
    assert report["parameters"]["rounds"] == count
    tuned, default = _gc_rows(report)
    assert tuned["gc_thresholds"][0] > 700  # the Runtime (or tune_gc) raised it for the run
    assert default["gc_thresholds"] == [700, 10, 10]
    assert report["peak_rss_mb_before_peer"] > 0


def test_write_compare_interleaves_rounds_and_reports_every_pair_and_the_sweep(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = _compare(capsys, "write", "--latency-seconds", "0.2")
    _check_rounds(report, 3)
    assert report["results"][0]["what"] == "actorsrc"  # the headline stays first (benchmarks/interleaved.sh)
    assert report["ratios"]["actorsrc events/s / raw driver ceiling"] > 0
    assert report["ratios"]["actorsrc events/s / plain sqlite3 executemany ceiling"] > 0
    found = report["sweep"]
    counts = [point["callers"] for point in found["points"]]
    assert counts == [1, 2, 4, 8, 16, 32, 50]  # up to --callers (50 with --quick)
    assert found["level_off_callers"] in counts
    assert found["level_off_share"] == sweep.LEVEL_OFF
    assert all(point["throughput"] > 0 for point in found["points"])
    assert any("open loop" in row["what"] for row in report["results"])


def test_hot_compare_interleaves_rounds_and_reports_the_pairs(capsys: pytest.CaptureFixture[str]) -> None:
    report = _compare(capsys, "hot", "--rounds", "2")
    _check_rounds(report, 2)
    assert "sweep" not in report  # the sweep is write's
    assert any("fewer than 3" in note for note in report["notes"])  # 2 rounds: said to be no figure


def test_compare_with_default_gc_keeps_the_ratio_default_over_tuned(capsys: pytest.CaptureFixture[str]) -> None:
    report = _compare(capsys, "hot", "--rounds", "1", "--default-gc")
    assert len(report["ratios"][DEFAULT_GC]["rounds"]) == 1
    assert any(row["what"].startswith("actorsrc, tuned GC") for row in report["results"])  # the other set-up


def test_compare_table_shows_medians_spreads_and_rounds(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("eventsourcing", reason="the peer is in the optional `bench` extra")
    assert main(["bench", "hot", "--quick", "--compare", "--rounds", "2"]) == 0
    table = capsys.readouterr().out
    assert f"{VS_PEER}: " in table
    assert "(min-max " in table
    assert "; rounds: " in table
    assert "    rounds: " in table  # each row's per-round throughputs


def test_write_compare_on_postgresql(capsys: pytest.CaptureFixture[str]) -> None:
    dsn = require_postgres()
    pytest.importorskip("psycopg", reason="the peer's PostgreSQL module is in the optional `bench` extra")
    report = _compare(capsys, "write", "--rounds", "1", "--latency-seconds", "0.2", "--store", dsn)
    assert all(len(report["ratios"][name]["rounds"]) == 1 for name in SPREADS)
    assert report["store"]["kind"] == "postgresql"
    assert report["ratios"]["actorsrc events/s / raw driver ceiling"] > 0
    assert report["sweep"]["level_off_callers"] >= 1
    # 1 and 8 threads for each configuration; the one-caller pair takes the best with 1 thread
    assert len([row for row in report["results"] if row["what"].startswith("  warm-up: eventsourcing")]) == 10


@pytest.mark.parametrize("bad", ["0", "-1", "x", "1.5"])
def test_bad_rounds_are_refused(capsys: pytest.CaptureFixture[str], bad: str) -> None:
    assert main(["bench", "write", "--compare", "--quick", "--rounds", bad]) == 2
    err = capsys.readouterr().err
    assert "--rounds" in err
    assert bad in err


def _fakes(calls: list[str], *names: str) -> list[tuple[str, Callable[[], Awaitable[int]]]]:
    def measurer(name: str) -> Callable[[], Awaitable[int]]:
        async def measure() -> int:
            calls.append(name)
            return len(calls)

        return measure

    return [(name, measurer(name)) for name in names]


async def test_interleave_runs_ours_then_the_peer_every_round() -> None:
    calls: list[str] = []
    samples = await rounds.interleave(_fakes(calls, "ours", "peer"), 3)
    assert calls == ["ours", "peer", "ours", "peer", "ours", "peer"]
    assert samples == {"ours": [1, 3, 5], "peer": [2, 4, 6]}  # each name's samples in round order


async def test_interleave_keeps_the_order_of_every_measurement_each_round() -> None:
    calls: list[str] = []
    await rounds.interleave(_fakes(calls, "ours", "peer", "ours, default GC", "ours, 1 caller"), 2)
    assert calls == ["ours", "peer", "ours, default GC", "ours, 1 caller"] * 2


@pytest.mark.parametrize("bad", [0, -2, True, 1.5])
async def test_interleave_refuses_bad_rounds(bad: Any) -> None:
    calls: list[str] = []
    with pytest.raises(ConfigurationError, match=f"rounds must be an integer >= 1, got {bad!r}"):
        await rounds.interleave(_fakes(calls, "ours", "peer"), bad)
    assert calls == []


async def test_interleave_refuses_two_measurements_of_one_name() -> None:
    with pytest.raises(ConfigurationError, match="names must differ"):
        await rounds.interleave(_fakes([], "ours", "ours"), 1)


def test_ratios_are_taken_within_each_round() -> None:
    assert rounds.per_round([10.0, 30.0, 20.0], [5.0, 10.0, 2.0]) == [2.0, 3.0, 10.0]
    assert rounds.spread([2.0, 3.0, 10.0]) == {"median": 3.0, "min": 2.0, "max": 10.0, "rounds": [2.0, 3.0, 10.0]}
    with pytest.raises(ConfigurationError, match="rounds differ: 2 and 1"):
        rounds.per_round([1.0, 2.0], [1.0])
    with pytest.raises(ConfigurationError, match="at least one round"):
        rounds.spread([])


def test_summary_takes_each_figure_s_median_over_the_rounds() -> None:
    samples = [
        Result("write", "x", 100, 1.0, latencies_ms=[1.0] * 10),
        Result("write", "x", 100, 4.0, latencies_ms=[9.0] * 10),
        Result("write", "x", 100, 2.0, latencies_ms=[3.0] * 10),
    ]
    row = rounds.summary(samples, "actorsrc")
    assert row.rate == 50.0  # the median of 100, 25 and 50 commands/s
    assert row.percentile(0.5) == 3.0
    assert row.extra == {"rounds": [100.0, 25.0, 50.0], "min": 25.0, "max": 100.0}


def test_caller_counts_double_up_to_the_maximum() -> None:
    assert sweep.caller_counts(1) == [1]
    assert sweep.caller_counts(8) == [1, 2, 4, 8]
    assert sweep.caller_counts(1000) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000]
    with pytest.raises(ConfigurationError, match="at least 1 caller, got 0"):
        sweep.caller_counts(0)


def test_level_off_is_the_first_count_within_ten_percent_of_the_best() -> None:
    points = [(1, 100.0), (2, 500.0), (4, 905.0), (8, 1000.0), (16, 950.0)]
    assert sweep.level_off(points) == 4
    assert sweep.level_off([(1, 10.0)]) == 1
    with pytest.raises(ConfigurationError, match="at least one point"):
        sweep.level_off([])


def test_a_sweep_point_has_an_aggregate_per_caller_and_the_headline_s_commands_each() -> None:
    assert sweep.point_shape(1, 10, sweep.FULL) == (100, 10)  # the minimum of 1000 commands
    assert sweep.point_shape(1000, 10, sweep.FULL) == (3000, 10)  # 30 per caller, at most 30,000
    assert sweep.point_shape(50, 5, sweep.QUICK) == (50, 4)


def test_gc_mode_sets_the_thresholds_for_the_block_and_restores_them() -> None:
    before = gc.get_threshold()
    with gcmode.gc_mode(True):
        assert gc.get_threshold() == gcmode.CPYTHON_GC_THRESHOLDS
    with gcmode.gc_mode(False):
        if gcmode.RUNTIME_TUNES_GC:  # CPython's, for the Runtime to raise itself
            assert gc.get_threshold() == gcmode.CPYTHON_GC_THRESHOLDS
        else:
            assert gc.get_threshold()[0] > gcmode.CPYTHON_GC_THRESHOLDS[0]
    with gcmode.gc_mode(None):
        assert gc.get_threshold() == before
    assert gc.get_threshold() == before


def test_runtime_options_turn_the_runtime_s_own_tuning_off_for_default_gc() -> None:
    assert gcmode.runtime_options(None) == {}
    if gcmode.RUNTIME_TUNES_GC:
        assert gcmode.runtime_options(True) == {"tune_gc": False}
        assert gcmode.runtime_options(False) == {"tune_gc": True}
    else:  # a Runtime without the setting: thresholds alone
        assert gcmode.runtime_options(True) == {}


async def test_each_gc_set_up_is_the_one_the_run_sees(tmp_path: Path) -> None:
    default, _ = await workloads.hot(None, tmp_path, 20, 2, default_gc=True)
    (tmp_path / "hot.db").unlink()
    tuned, _ = await workloads.hot(None, tmp_path, 20, 2, default_gc=False)
    assert default.extra["gc_thresholds"] == list(gcmode.CPYTHON_GC_THRESHOLDS)
    assert tuned.extra["gc_thresholds"][0] > gcmode.CPYTHON_GC_THRESHOLDS[0]


def test_the_headline_ratio_divides_by_the_faster_peer_row_of_each_round() -> None:
    from actorsrc.bench.compare import _ratio

    def series(*rates: float) -> list[Result]:
        return [Result("write", "x", int(rate), 1.0) for rate in rates]

    samples = {"ours": series(100, 100), "best": series(10, 25), "one thread": series(20, 5)}
    assert _ratio(samples, "ours", "best", "one thread")["rounds"] == [5.0, 4.0]
    assert _ratio(samples, "ours", "best")["rounds"] == [10.0, 4.0]
