"""The README's code runs as written, so the docs cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _first_block_under(heading: str) -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split(heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"the README has no python block under {heading!r}"
    return match.group(1)


def _quick_start() -> str:
    return _first_block_under("## Quick start")


def test_quick_start_runs(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _quick_start()], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("2 2 (AccountCredited(amount=100),)")
    assert lines[1].startswith("rejected: debit of 500 would take the balance 100 below")
    assert (tmp_path / "bank.db").exists()


def test_readme_commands_are_the_ci_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = "python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && .venv/bin/pytest"
    assert test_command in readme
    assert test_command in ci
    assert "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/actorsrc demo" in readme


def test_in_memory_testing_example_runs(tmp_path: Path) -> None:
    code = _first_block_under("### Testing your domain")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []  # in memory: not a file was written


def test_given_when_then_example_runs(tmp_path: Path) -> None:
    code = _first_block_under("### Testing your domain: given, when, then")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
