"""The wheel is enough: built from this checkout and installed into a fresh virtualenv, `actorsrc --help`
and `actorsrc bench write --quick` work from a directory outside the repository (so neither benchmarks/
nor examples/ can be imported).

pip builds the wheel with hatchling and installs the core dependencies from the package index."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
STEP_TIMEOUT = 600.0  # a bound for a hung step, far above what each takes; the test waits on the process


def _run(command: list[str | Path], cwd: Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT
    )
    assert done.returncode == expect, (
        f"{command} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel built from this checkout; returns its bin directory."""
    root = tmp_path_factory.mktemp("wheel")
    wheels = root / "dist"
    _run([sys.executable, "-m", "pip", "wheel", REPOSITORY, "--no-deps", "-q", "-w", wheels], cwd=root)
    (wheel,) = wheels.glob("actorsrc-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "actorsrc/bench/harness.py" in names
    assert not [name for name in names if name.startswith(("benchmarks/", "examples/", "tests/"))]
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=root)
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", wheel], cwd=root)
    return venv / "bin"


@pytest.mark.slow
def test_the_installed_package_is_the_wheel(installed: Path, tmp_path: Path) -> None:
    done = _run([installed / "python", "-c", "import actorsrc; print(actorsrc.__file__)"], cwd=tmp_path)
    assert Path(done.stdout.strip()).is_relative_to(installed.parent)


@pytest.mark.slow
def test_help_works_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    done = _run([installed / "actorsrc", "--help"], cwd=tmp_path)
    assert "bench" in done.stdout


@pytest.mark.slow
def test_bench_write_quick_works_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    done = _run([installed / "actorsrc", "bench", "write", "--quick"], cwd=tmp_path)
    assert re.search(r"^actorsrc +[\d,]+ commands/s", done.stdout, re.MULTILINE), done.stdout
    refused = _run([installed / "actorsrc", "bench", "write", "--quick", "--compare"], cwd=tmp_path, expect=2)
    assert "--compare needs eventsourcing, from the `bench` extra: pip install 'actorsrc[bench]'" in refused.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("workload", "row"), [("replay", "actorsrc load_state, full replay"), ("project", "catch-up into the read model")]
)
def test_replay_and_project_work_from_the_wheel(installed: Path, tmp_path: Path, workload: str, row: str) -> None:
    done = _run([installed / "actorsrc", "bench", workload, "--quick"], cwd=tmp_path)
    assert re.search(rf"^{re.escape(row)} +[\d,]+ events/s", done.stdout, re.MULTILINE), done.stdout


@pytest.mark.slow
def test_the_saga_workload_says_it_needs_a_checkout(installed: Path, tmp_path: Path) -> None:
    refused = _run([installed / "actorsrc", "bench", "saga", "--quick"], cwd=tmp_path, expect=2)
    assert "examples/shop" in refused.stderr
    assert "source checkout" in refused.stderr
