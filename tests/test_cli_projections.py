"""`actorsrc projections`: list, rebuild, and the parked-event workflow from the command line."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from actorsrc.cli import main
from examples.bank import Credit, OpenAccount, account
from tests import cli_app


def _prepare(db: Path) -> None:
    async def write() -> None:
        async with cli_app.app.run(str(db)) as runtime:
            ref = runtime.ref(account, "a")
            await ref.ask(OpenAccount("ann"))
            await ref.ask(Credit(13))
            last = await ref.ask(Credit(2))
            for handler in ("balances", "fragile"):
                await runtime.wait_for(handler, last.position, timeout=5)

    anyio.run(write)


def _cli(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> tuple[int, str, str]:
    code = main(["projections", "--app", "tests.cli_app:app", "--db", str(db), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_parked_events_can_be_listed_retried_and_discarded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "events.db"
    cli_app.unlucky["fixed"] = False
    _prepare(db)
    code, out, _ = _cli(capsys, db, "list")
    assert code == 0
    assert "balances" in out
    assert "fragile" in out
    code, out, _ = _cli(capsys, db, "parked")
    assert code == 0
    assert "#1 fragile position 2 AccountCredited on 'account-a' v2, 1 attempts" in out
    assert "ValueError: 13 is unlucky" in out
    code, _, err = _cli(capsys, db, "retry", "1")
    assert code == 1
    assert "failed again: ValueError: 13 is unlucky" in err
    cli_app.unlucky["fixed"] = True
    code, out, _ = _cli(capsys, db, "retry", "1")
    assert (code, out.strip()) == (0, "parked event #1 handled; it is no longer parked")
    code, out, _ = _cli(capsys, db, "parked")
    assert out.strip() == "no parked events"
    code, _, err = _cli(capsys, db, "discard", "1")
    assert code == 1
    assert "no parked event with id 1" in err


def test_rebuild_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "events.db"
    cli_app.unlucky["fixed"] = True
    _prepare(db)
    code, out, err = _cli(capsys, db, "rebuild", "balances")
    assert code == 0
    assert "balances: rebuilt up to position 3" in out
    assert "rebuilding balances" in err  # the progress bar
    code, _, err = _cli(capsys, db, "rebuild", "nope")
    assert code == 1
    assert "handler 'nope' is not registered" in err


def test_bad_app_spec_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["projections", "--app", "tests.cli_app", "list"])
    assert code == 1
    assert "package.module:attribute" in capsys.readouterr().err
    code = main(["projections", "--app", "tests.cli_app:unlucky", "list"])
    assert code == 1
    assert "not an actorsrc App" in capsys.readouterr().err


def test_a_missing_store_or_attribute_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, tmp_path / "nothing-here.db", "list")
    assert code == 1
    assert "no event store at" in err
    assert not (tmp_path / "nothing-here.db").exists()
    assert main(["projections", "--app", "tests.cli_app:nope", "list"]) == 1
    assert "module 'tests.cli_app' has no attribute 'nope'" in capsys.readouterr().err
