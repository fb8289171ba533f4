"""`actorsrc streams show` and `actorsrc state`: stored history and time travel from the command line."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from actorsrc import SQLiteEventStore
from actorsrc.app import App
from actorsrc.cli import main
from actorsrc.cli.streams import format_time
from actorsrc.hashing import slice_of
from actorsrc.timetravel import stream_history
from examples.bank import Credit, OpenAccount, account
from tests.test_schema_evolution import wallet

app = App(aggregates=[account, wallet], db="no-such-default.db")
APP = "tests.test_cli_streams:app"

T0 = datetime(2025, 7, 4, tzinfo=UTC)
# (position, type as stored, schema version, data, recorded_at in microseconds since the epoch)
OLD_ROWS = [
    (1, "MoneyDeposited", 1, b'{"cents": 100}', 1_751_587_200_000_000),  # old name, first shape
    (2, "FundsDeposited", 2, b'{"amount": 20}', 1_751_587_201_250_400),  # second shape
    (3, "FundsDeposited", 3, b'{"amount": 3, "currency": "USD"}', 1_751_587_202_500_700),  # current
]


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    """A store whose wallet-w stream was written by three generations of the application."""
    db = tmp_path / "events.db"

    async def create() -> None:
        async with SQLiteEventStore.open(db):
            pass

    anyio.run(create)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT INTO streams (key, name, version) VALUES (1, 'wallet-w', 3)")
        conn.executemany(
            "INSERT INTO events (position, stream_key, version, type, schema_version, data, metadata, recorded_at,"
            " slice)"
            f" VALUES (?, 1, ?, ?, ?, ?, ?, ?, {slice_of('wallet-w')})",
            [(p, p, t, s, d, f'["old-{p}"]'.encode(), at) for p, t, s, d, at in OLD_ROWS],
        )
    conn.close()
    return db


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _show(capsys: pytest.CaptureFixture[str], db: Path, stream: str) -> tuple[int, str, str]:
    return _cli(capsys, "streams", "show", stream, "--app", APP, "--db", str(db))


def _state(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> tuple[int, str, str]:
    return _cli(capsys, "state", "wallet-w", "--app", APP, "--db", str(db), *args)


# -- streams show ---------------------------------------------------------------------------------


def test_show_renders_old_schema_rows_upcast(old_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _show(capsys, old_db, "wallet-w")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "wallet-w (wallet): 3 events"
    assert lines[1].split() == ["version", "position", "recorded_at", "type", "schema", "fields"]
    assert lines[2].split() == [
        *("1", "1", "2025-07-04T00:00:00.000Z", "FundsDeposited", "(stored", "as", "MoneyDeposited)", "1"),
        *("amount=100", "currency='EUR'"),  # v1 {"cents": 100} through both upcasters
    ]
    assert lines[3].split() == [
        "2",
        "2",
        "2025-07-04T00:00:01.250Z",
        "FundsDeposited",
        "2",
        "amount=20",
        "currency='EUR'",
    ]
    assert lines[4].split() == [
        "3",
        "3",
        "2025-07-04T00:00:02.500Z",
        "FundsDeposited",
        "3",
        "amount=3",
        "currency='USD'",
    ]


def test_show_truncates_long_values_and_survives_a_row_that_no_longer_decodes(
    old_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = sqlite3.connect(old_db)
    with conn:
        conn.execute("UPDATE events SET data = ? WHERE position = 2", (b'{"amount": "twenty"}',))
        conn.execute(
            "UPDATE events SET data = ? WHERE position = 3", (b'{"amount": 3, "currency": "' + b"X" * 500 + b'"}',)
        )
    conn.close()
    code, out, _ = _show(capsys, old_db, "wallet-w")
    assert code == 0
    lines = out.splitlines()
    assert "<cannot decode:" in lines[3]
    assert "currency='XXXX" in lines[4]
    assert lines[4].endswith("...")
    assert "X" * 60 not in lines[4]


def test_show_an_unknown_or_empty_stream_is_a_clear_error(old_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _show(capsys, old_db, "nope-w")
    assert (code, out) == (1, "")
    assert "no aggregate of this App owns stream 'nope-w'" in err
    assert "NAME one of: account, wallet" in err
    code, _, err = _show(capsys, old_db, "wallet")
    assert code == 1
    assert "no aggregate of this App owns stream 'wallet'" in err
    code, _, err = _show(capsys, old_db, "wallet-nobody")
    assert code == 1
    assert "stream 'wallet-nobody' has no events" in err
    code, _, err = _cli(capsys, "streams", "show", "wallet-w", "--app", APP)  # the App's db does not exist
    assert code == 1
    assert "no event store at 'no-such-default.db'" in err
    assert not Path("no-such-default.db").exists()


# -- state ------------------------------------------------------------------------------------------


def test_state_now_and_as_of_a_version(old_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _state(capsys, old_db)
    assert code == 0
    assert out.splitlines() == [
        "wallet-w (wallet) as of now",
        "version 3 of 3: recorded 2025-07-04T00:00:02.500Z, position 3",
        "state Wallet:",
        "  total      = 123",
        "  currencies = ('EUR', 'USD')",
    ]
    code, out, _ = _state(capsys, old_db, "--version", "2")
    assert code == 0
    assert out.splitlines()[:4] == [
        "wallet-w (wallet) as of version 2",
        "version 2 of 3: recorded 2025-07-04T00:00:01.250Z, position 2",
        "state Wallet:",
        "  total      = 120",
    ]
    code, out, _ = _state(capsys, old_db, "--version", "0")
    assert "  total      = 0" in out.splitlines()
    code, _, err = _state(capsys, old_db, "--version", "4")
    assert code == 1
    assert "'wallet-w' has 3 events; --version 4 is past its end" in err


def test_state_at_a_moment(old_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _state(capsys, old_db, "--at", "2025-07-03T23:59:59.999999Z")  # before the first event
    assert code == 0
    lines = out.splitlines()
    assert lines[1] == "version 0 of 3: before the first event (recorded 2025-07-04T00:00:00.000Z)"
    assert "  total      = 0" in lines
    for at, version in (
        ("2025-07-04T00:00:01.250400Z", 2),  # exactly the second event's time: it counts
        ("2025-07-04T00:00:01.250399Z", 1),
        ("2025-07-04T00:00:01.250Z", 2),  # as `streams show` prints it: the whole millisecond
        ("2025-07-04T00:00:01.249Z", 1),
        ("2025-07-04T02:00:01.250400+02:00", 2),  # the same moment, another zone
        ("2025-07-05T00:00Z", 3),
    ):
        code, out, _ = _state(capsys, old_db, "--at", at)
        assert code == 0
        assert out.splitlines()[1].startswith(f"version {version} of 3"), (at, out)


def test_a_time_without_a_zone_or_two_points_in_time_are_refused(
    old_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _state(capsys, old_db, "--at", "2025-07-04T00:00:01")
    assert (code, out) == (2, "")
    assert "'2025-07-04T00:00:01' has no timezone" in err
    assert "e.g. 2025-07-04T00:00:01Z" in err
    code, _, err = _state(capsys, old_db, "--at", "2025-07-04")
    assert code == 2
    assert "e.g. 2025-07-04T00:00Z" in err
    code, _, err = _state(capsys, old_db, "--at", "yesterday")
    assert code == 2
    assert "not an ISO 8601 time: 'yesterday'" in err
    code, _, err = _state(capsys, old_db, "--at", "2025-07-04T00:00Z", "--version", "1")
    assert code == 2
    assert "not allowed with argument" in err


def test_state_of_an_unknown_stream(old_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "state", "wallet-nobody", "--app", APP, "--db", str(old_db))
    assert code == 1
    assert "stream 'wallet-nobody' has no events" in err


def test_a_time_copied_from_streams_show_gives_the_state_after_that_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "bank.db"

    async def write() -> list[datetime]:
        async with app.run(str(db)) as runtime:
            ref = runtime.ref(account, "a")
            await ref.ask(OpenAccount("ann"))
            for amount in (10, 20, 30):
                await ref.ask(Credit(amount))
            return [e.recorded_at for e in await stream_history(runtime.store, account, "a")]

    times = anyio.run(write)
    code, out, _ = _show(capsys, db, "account-a")
    assert code == 0
    shown = [line.split()[2] for line in out.splitlines()[2:]]
    assert shown == [format_time(t) for t in times]
    code, out, _ = _cli(capsys, "state", "account-a", "--app", APP, "--db", str(db), "--at", shown[2])
    assert code == 0
    expected = sum(1 for t in times if format_time(t) <= shown[2])  # later events in the same millisecond too
    assert expected >= 3
    lines = out.splitlines()
    assert lines[1].startswith(f"version {expected} of 4: recorded {shown[expected - 1]}")
    assert f"  balance         = {[0, 0, 10, 30, 60][expected]}" in lines
