"""The `actorsrc` command line: the demo end to end, usage errors, and the progress bar."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

import actorsrc.cli.demo
from actorsrc.cli import main
from actorsrc.progress import Progress


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    # main() configures structlog process-wide, as an application should; other tests must not see it.
    saved: dict[str, Any] = structlog.get_config()
    yield
    structlog.configure(**saved)


def _summary_value(output: str, label: str) -> str:
    match = re.search(rf"^  {label}\s+(\S+)", output, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{output}"
    return match.group(1).replace(",", "")


def test_demo_runs_and_checks_every_balance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "d.db"
    code = main(["demo", "--db", str(db), "--accounts", "50", "--commands", "5", "--concurrency", "20"])

    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "check: OK" in out
    assert _summary_value(out, "accounts opened") == "50"
    accepted, rejected = int(_summary_value(out, "accepted")), int(_summary_value(out, "rejected"))
    assert accepted + rejected == 250
    assert int(_summary_value(out, "events written")) >= 50 + accepted - 250  # interest may write nothing
    assert _summary_value(out, "recovered") == "50"
    assert "\r" not in err  # capsys is not a terminal: plain progress lines only
    assert "commands: 250/250 (100%)" in err


def test_demo_reruns_on_an_existing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["demo", "--db", str(tmp_path / "d.db"), "--accounts", "5", "--commands", "2", "--seed", "1"]
    assert main(args) == 0
    assert main(args) == 0  # same seed, new run id: no collision with the first run's accounts
    assert main([*args, "--fresh"]) == 0
    assert capsys.readouterr().out.count("check: OK") == 3


def test_demo_returns_1_and_lists_problems_when_the_check_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A ledger that books a fortune per event disagrees with the store on every account, twice.
    monkeypatch.setattr(actorsrc.cli.demo, "_delta", lambda event: 10**9)
    assert main(["demo", "--db", str(tmp_path / "d.db"), "--accounts", "30", "--commands", "3"]) == 1
    out = capsys.readouterr().out
    assert "\ncheck: FAILED (60 problems)\n" in out
    assert out.count("stored events fold to") == 20  # the list is cut short...
    assert "\n  ... and 40 more\n" in out  # ...and says so


@pytest.mark.parametrize(
    "argv",
    [[], ["nonsense"], ["demo", "--accounts", "0"], ["demo", "--commands", "x"], ["demo", "--bogus"]],
)
def test_bad_usage_returns_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: actorsrc" in capsys.readouterr().err


def test_help_returns_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--help"]) == 0
    assert "--concurrency" in capsys.readouterr().out


def test_demo_without_examples_says_it_needs_a_checkout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # None in sys.modules makes the import fail as it would from a wheel; actorsrc.cli.demo must re-import.
    monkeypatch.setitem(sys.modules, "examples.bank", None)
    monkeypatch.setitem(sys.modules, "examples.bank.domain", None)
    monkeypatch.delitem(sys.modules, "actorsrc.cli.demo", raising=False)
    assert main(["demo"]) == 2
    assert "source checkout" in capsys.readouterr().err


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_prints_a_few_plain_lines_when_not_a_terminal() -> None:
    stream, clock = io.StringIO(), _Clock()
    with Progress(1000, "work", stream=stream, clock=clock) as progress:
        for _ in range(1000):
            clock.now += 0.001
            progress.advance()

    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines == [
        "work: 250/1,000 (25%), 1,000/s",
        "work: 500/1,000 (50%), 1,000/s",
        "work: 750/1,000 (75%), 1,000/s",
        "work: 1,000/1,000 (100%), 1,000/s",
    ]


def _fail_at_six_of_ten(stream: io.StringIO) -> None:
    with Progress(10, "work", stream=stream, clock=_Clock()) as progress:
        progress.advance(6)
        raise RuntimeError("boom")


def test_progress_reports_where_it_stopped_when_the_work_ends_early() -> None:
    stream = io.StringIO()
    with pytest.raises(RuntimeError, match="boom"):
        _fail_at_six_of_ten(stream)
    assert stream.getvalue().splitlines() == ["work: 6/10 (60%), 0/s"]  # once, not again on exit


def test_progress_shows_a_line_for_empty_work() -> None:
    stream = io.StringIO()
    with Progress(0, "work", stream=stream, clock=_Clock()):
        pass
    assert stream.getvalue().splitlines() == ["work: 0/0 (100%), 0/s"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_in_place_at_most_ten_times_a_second_on_a_terminal() -> None:
    stream, clock = _Terminal(), _Clock()
    with Progress(100, "work", stream=stream, clock=clock) as progress:
        for _ in range(100):
            clock.now += 0.01  # one second in all
            progress.advance()

    text = stream.getvalue()
    assert text.endswith("\n")
    assert text.count("\n") == 1
    assert 10 <= text.count("\r") <= 12  # about ten redraws plus the final one
    assert text.rstrip().rsplit("\r", 1)[-1].startswith("work [########################] 100/100 100.0%")


def test_demo_ledger_accepts_replies_in_any_order_but_not_gaps() -> None:
    from actorsrc import CommandOutcome
    from actorsrc.cli.demo import Ledger
    from examples.bank import AccountCredited

    ledger = Ledger()
    for version in (1, 3, 2):  # concurrent callers may hear back out of order
        ledger.record("a", CommandOutcome("account-a", version, version, (AccountCredited(1),)))
    ledger.record("a", CommandOutcome("account-a", 3, 3, ()))  # a command that wrote nothing
    ledger.check_versions("a")
    assert ledger.problems == []
    ledger.record("b", CommandOutcome("account-b", 2, 2, (AccountCredited(1),)))
    ledger.check_versions("b")
    assert ledger.problems == ["b: acknowledged versions are not 1..1: [2]"]
