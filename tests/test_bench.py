"""`actorsrc bench`: every workload runs (tiny), reports JSON, and refuses bad usage."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from actorsrc.cli import main
from tests.postgres_support import require_postgres

TINY_WRITE = ["write", "--aggregates", "30", "--commands", "2", "--callers", "10", "--latency-seconds", "0.2"]
TINY = {
    "hot": ["hot", "--total", "200", "--callers", "20", "--default-gc"],
    "replay": ["replay", "--length", "300"],
    "project": ["project", "--events", "3000", "--lag-seconds", "0.3", "--rate", "200"],
    "saga": ["saga", "--orders", "20", "--callers", "5", "--latency-seconds", "0.3"],
}


def _bench(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["bench", *args, "--json"]) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert report["peak_rss_mb"] > 0
    assert {"python", "actorsrc", "sqlite"} <= report["versions"].keys()
    assert report["results"]
    for row in report["results"]:
        assert row["workload"] == args[0]
        assert {"throughput", "unit", "p50_ms", "p95_ms", "p99_ms"} <= row.keys()
    return report


def _peer_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in report["results"] if row["what"].startswith("eventsourcing")]


def test_write_reports_throughput_latency_and_settings(capsys: pytest.CaptureFixture[str]) -> None:
    report = _bench(capsys, *TINY_WRITE, "--aggregates", "40", "--commands", "3", "--events-per-command", "2")
    ours, open_loop = report["results"]
    assert ours["operations"] == 120
    assert ours["throughput"] > 0
    assert ours["p50_ms"] <= ours["p95_ms"] <= ours["p99_ms"]
    assert ours["events_per_command"] == 2
    assert "open loop" in open_loop["what"]
    assert open_loop["p99_ms"] is not None
    assert isinstance(open_loop["p99_target_met"], bool)
    assert report["store"]["kind"] == "sqlite"
    assert report["store"]["synchronous"] == "full"
    assert report["parameters"]["callers"] == 10
    assert report["ratios"] == {}


@pytest.mark.parametrize("workload", sorted(TINY))
def test_other_workloads_run(capsys: pytest.CaptureFixture[str], workload: str) -> None:
    report = _bench(capsys, *TINY[workload])
    assert all(row["throughput"] is None or row["throughput"] > 0 for row in report["results"])
    if workload == "hot":
        assert report["runtime"]["gc_thresholds"] == [700, 10, 10]  # --default-gc undoes the CLI's tuning
    if workload == "saga":
        burst, steady = report["results"]
        assert burst["operations"] == 20
        assert steady["operations"] > 0
        for row in (burst, steady):
            assert row["p99_ms"] >= row["p50_ms"] > 0  # placed to shipped, per order


def test_replay_compare_pairs_each_row_with_the_peer(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("eventsourcing", reason="the peer is in the optional `bench` extra")
    report = _bench(capsys, *TINY["replay"], "--compare")
    assert len(_peer_rows(report)) == 2  # full replay, from a snapshot
    assert len(report["ratios"]) == 4
    assert all(ratio > 0 for ratio in report["ratios"].values())


def test_write_plot_draws_throughput_against_callers(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="--plot needs the optional `bench` extra")
    out = tmp_path / "docs" / "throughput.png"
    report = _bench(capsys, *TINY_WRITE, "--quick", "--plot", str(out))  # --quick: a short curve
    assert out.read_bytes().startswith(b"\x89PNG")
    assert any("plot written" in note and "50: " in note for note in report["notes"])


def test_write_on_postgresql_uses_a_fresh_schema(capsys: pytest.CaptureFixture[str]) -> None:
    dsn = require_postgres()
    report = _bench(capsys, *TINY_WRITE, "--store", dsn)
    assert report["store"]["kind"] == "postgresql"
    assert report["store"]["synchronous_commit"] in ("on", "off", "local", "remote_write", "remote_apply")
    assert "asyncpg" in report["versions"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["write", "--store", "mysql://nope"], "--store must be a postgresql:// URL"),
        (["saga", "--plot", "out.png"], "--plot is for the write workload"),
        (["replay", "--length", "1"], "--length must be at least 2"),
        (["hot", "--cores", "2"], "--cores is for the write workload"),
        (["write", "--cores", "0"], "--cores"),
    ],
)
def test_bad_usage_is_refused(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert main(["bench", *args]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_matplotlib_is_reported_before_any_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert main(["bench", "write", "--plot", "out.png"]) == 2
    assert "pip install -e '.[bench]'" in capsys.readouterr().err


@pytest.mark.parametrize("workload", ["write", "replay"])
def test_compare_without_the_bench_extra_names_it_before_any_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, workload: str
) -> None:
    monkeypatch.setitem(sys.modules, "eventsourcing", None)  # as without the `bench` extra
    assert main(["bench", workload, "--compare"]) == 2
    err = capsys.readouterr().err
    assert "--compare needs eventsourcing" in err
    assert "pip install 'actorsrc[bench]'" in err


def test_compare_on_postgresql_also_needs_psycopg(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    assert main(["bench", "hot", "--compare", "--store", "postgresql://u@127.0.0.1:1/db"]) == 2
    assert "psycopg, from the `bench` extra" in capsys.readouterr().err


def test_quick_runs_without_the_bench_extra(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for optional in ("eventsourcing", "psycopg", "matplotlib"):
        monkeypatch.setitem(sys.modules, optional, None)  # importing any of them now fails
    report = _bench(capsys, "write", "--quick", "--latency-seconds", "0.2")
    assert report["parameters"]["quick"] is True
    assert report["parameters"]["aggregates"] == 200
    assert report["parameters"]["callers"] == 50
    assert report["results"][0]["operations"] == 200 * 5


def test_quick_keeps_sizes_given_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    report = _bench(capsys, "hot", "--quick", "--total", "300")
    assert report["parameters"]["total"] == 300
    assert report["parameters"]["callers"] == 50


def test_saga_outside_a_checkout_says_why(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "examples.shop", None)  # as in an installed wheel
    assert main(["bench", "saga", "--quick"]) == 2
    assert "run it from a source checkout" in capsys.readouterr().err


def test_write_on_every_core_runs_one_then_n_processes(capsys: pytest.CaptureFixture[str]) -> None:
    report = _bench(capsys, "write", "--cores", "2", "--quick", "--rounds", "1")
    rows = {row["what"]: row for row in report["results"]}
    assert set(rows) == {"1 process", "2 processes, own aggregates", "2 processes, routed"}
    assert all(row["throughput"] > 0 for row in rows.values())
    assert set(report["ratios"]) == {"2 processes, own aggregates / 1 process", "2 processes, routed / 1 process"}
