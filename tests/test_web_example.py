"""The bank HTTP example, end to end through Starlette's lifespan, the runtime and an SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.bank.web import create_app


@asynccontextmanager
async def bank_client(db: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(db)
    # httpx's ASGITransport does not send lifespan events, so run the lifespan here.
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bank") as client,
    ):
        yield client


async def open_account(client: httpx.AsyncClient, account_id: str, **body: Any) -> None:
    response = await client.post(f"/accounts/{account_id}", json={"owner": "Ada", **body})
    assert response.status_code == 201, response.text


async def test_open_credit_debit_interest_and_read_balance(tmp_path: Path) -> None:
    async with bank_client(tmp_path / "bank.db") as client:
        response = await client.post("/accounts/acc-1", json={"owner": "Ada", "overdraft_limit": 50})
        assert response.status_code == 201
        assert response.json() == {"account_id": "acc-1", "version": 1, "position": 1}

        response = await client.post("/accounts/acc-1/credits", json={"amount": 1000})
        assert response.status_code == 200
        assert response.json() == {"version": 2, "position": 2}
        response = await client.post("/accounts/acc-1/debits", json={"amount": 400})
        assert response.json() == {"version": 3, "position": 3}
        response = await client.post("/accounts/acc-1/interest", json={"rate_bp": 250})
        assert response.json() == {"version": 4, "position": 4}

        response = await client.get("/accounts/acc-1")
        assert response.status_code == 200
        assert response.json() == {
            "account_id": "acc-1",
            "owner": "Ada",
            "balance": 615,  # 1000 - 400, plus 2.5 % of 600
            "overdraft_limit": 50,
            "closed": False,
            "version": 4,
            "position": 4,
        }


async def test_overdraft_is_rejected_with_409_and_writes_nothing(tmp_path: Path) -> None:
    async with bank_client(tmp_path / "bank.db") as client:
        await open_account(client, "acc-1")
        await client.post("/accounts/acc-1/credits", json={"amount": 100})

        response = await client.post("/accounts/acc-1/debits", json={"amount": 150})

        assert response.status_code == 409
        assert response.json()["error"] == "InsufficientFunds"
        assert "debit of 150" in response.json()["detail"]
        state = (await client.get("/accounts/acc-1")).json()
        assert (state["version"], state["balance"]) == (2, 100)


@pytest.mark.parametrize(
    ("path", "content", "error", "field"),
    [
        ("/accounts/acc-1/credits", b"{not json", "DecodeError", None),
        ("/accounts/acc-1/credits", b"", "DecodeError", None),
        ("/accounts/acc-1/credits", b'{"amount": "10"}', "ValidationError", "$.amount"),
        ("/accounts/acc-1/debits", b'{"amount": 1.5}', "ValidationError", "$.amount"),
        ("/accounts/acc-1/interest", b"{}", "ValidationError", "rate_bp"),
        ("/accounts/acc-2", b'{"owner": 7}', "ValidationError", "$.owner"),
        ("/accounts/acc-2", b'{"owner":"B","overdraft_limit":true}', "ValidationError", "$.overdraft_limit"),
    ],
)
async def test_malformed_body_is_422_naming_the_field(
    tmp_path: Path, path: str, content: bytes, error: str, field: str | None
) -> None:
    async with bank_client(tmp_path / "bank.db") as client:
        await open_account(client, "acc-1")

        response = await client.post(path, content=content, headers={"content-type": "application/json"})

        assert response.status_code == 422
        assert response.json()["error"] == error
        if field is not None:
            assert field in response.json()["detail"]


async def test_domain_rejections_map_to_status_codes(tmp_path: Path) -> None:
    async with bank_client(tmp_path / "bank.db") as client:
        await open_account(client, "acc-1")

        again = await client.post("/accounts/acc-1", json={"owner": "Eve"})
        zero = await client.post("/accounts/acc-1/credits", json={"amount": 0})
        unopened = await client.post("/accounts/nobody/credits", json={"amount": 10})

        assert (again.status_code, again.json()["error"]) == (409, "AlreadyOpen")
        assert (zero.status_code, zero.json()["error"]) == (422, "InvalidAmount")
        assert (unopened.status_code, unopened.json()["error"]) == (404, "NotOpen")


async def test_unknown_account_is_404(tmp_path: Path) -> None:
    async with bank_client(tmp_path / "bank.db") as client:
        response = await client.get("/accounts/nobody")

        assert response.status_code == 404
        assert response.json() == {"error": "NotOpen", "detail": "account 'nobody' does not exist"}


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_bad_account_id_is_400(tmp_path: Path, method: str) -> None:
    async with bank_client(tmp_path / "bank.db") as client:
        response = await client.request(method, f"/accounts/{'x' * 600}", json={"owner": "Ada"})

        assert response.status_code == 400
        assert response.json()["error"] == "InvalidStreamIdError"
        assert "600 characters, over the limit of 504" in response.json()["detail"]


async def test_accounts_survive_an_app_restart(tmp_path: Path) -> None:
    db = tmp_path / "bank.db"
    async with bank_client(db) as client:
        await open_account(client, "acc-1")
        await client.post("/accounts/acc-1/credits", json={"amount": 250})

    async with bank_client(db) as client:
        before = (await client.get("/accounts/acc-1")).json()
        # A fresh runtime must recover the actor from the store before deciding.
        debit = await client.post("/accounts/acc-1/debits", json={"amount": 100})
        after = (await client.get("/accounts/acc-1")).json()

    assert (before["owner"], before["balance"], before["version"]) == ("Ada", 250, 2)
    assert debit.json() == {"version": 3, "position": 3}
    assert (after["balance"], after["version"]) == (150, 3)
