"""The bank web example's answers to the store's failures: 503 with Retry-After, 413 for too large."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.requests import Request

from actorsrc import LimitExceededError, OutcomeUnknownError, StoreUnavailableError
from examples.bank.web import create_app


@pytest.mark.parametrize(
    ("error", "status", "retry_after"),
    [
        (StoreUnavailableError("the event store is failing"), 503, "1"),
        (OutcomeUnknownError("outcome unknown: retry with the same command id"), 503, "1"),
        (LimitExceededError("too large", what="max_event_bytes", size=2, limit=1), 413, None),
    ],
)
async def test_store_failures_map_to_statuses_a_client_can_act_on(
    tmp_path: Path, error: Exception, status: int, retry_after: str | None
) -> None:
    app = create_app(tmp_path / "bank.db")
    handler = app.exception_handlers[type(error)]
    request = Request({"type": "http", "method": "POST", "path": "/accounts/a", "headers": []})
    response = await handler(request, error)
    assert response.status_code == status
    assert response.headers.get("retry-after") == retry_after
    assert type(error).__name__.encode() in response.body
