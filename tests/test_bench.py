"""`actorsrc bench`: every workload runs (tiny), reports JSON, and refuses a bad store URL."""

from __future__ import annotations

import json

import pytest

from actorsrc.cli import main


def _bench(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["bench", *args, "--json"]) == 0
    report: dict[str, object] = json.loads(capsys.readouterr().out)
    return report


def _rows(report: dict[str, object]) -> list[dict[str, object]]:
    rows = report["results"]
    assert isinstance(rows, list)
    return rows


def test_write_reports_throughput_latency_and_settings(capsys: pytest.CaptureFixture[str]) -> None:
    report = _bench(
        capsys,
        "write",
        "--aggregates",
        "40",
        "--commands",
        "3",
        "--callers",
        "10",
        "--events-per-command",
        "2",
        "--latency-seconds",
        "0.3",
    )
    ours, open_loop = _rows(report)[:2]
    assert ours["operations"] == 120
    assert isinstance(ours["rate"], float)
    assert ours["rate"] > 0
    assert ours["p99_ms"] is not None
    assert "open loop" in str(open_loop["what"])
    settings = report["settings"]
    assert isinstance(settings, dict)
    assert settings["store"]["kind"] == "sqlite"
    assert settings["store"]["synchronous"] == "full"
    assert settings["peak_rss_mb"] > 0


def test_write_compare_reports_ratios_against_the_peer_and_the_raw_ceiling(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("eventsourcing", reason="the peer is in the optional `bench` extra")
    report = _bench(
        capsys,
        "write",
        "--aggregates",
        "30",
        "--commands",
        "2",
        "--callers",
        "10",
        "--compare",
        "--peer-commands",
        "60",
        "--latency-seconds",
        "0.2",
    )
    ratios = report["ratios"]
    assert isinstance(ratios, dict)
    assert ratios["actorsrc / eventsourcing (best)"] > 0
    assert ratios["actorsrc events/s / raw ceiling"] > 0
    assert sum(1 for row in _rows(report) if str(row["what"]).startswith("eventsourcing")) == 5


@pytest.mark.parametrize(
    "args",
    [
        ["hot", "--total", "200", "--callers", "20"],
        ["replay", "--length", "300"],
        ["project", "--events", "3000", "--lag-seconds", "0.3", "--rate", "200"],
        ["saga", "--orders", "20", "--callers", "5"],
    ],
)
def test_other_workloads_run(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    rows = _rows(_bench(capsys, *args))
    assert rows
    assert all(row["workload"] == args[0] for row in rows)


def test_a_bad_store_url_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "write", "--store", "mysql://nope"]) == 2
    assert "--store must be a postgresql:// URL" in capsys.readouterr().err
