"""An App for the command-line tests: the bank with two projections, one of which fails on 13."""

from __future__ import annotations

import sqlite3
from typing import Any

from actorsrc import EventEnvelope, FailurePolicy, Projection
from actorsrc.app import App
from examples.bank import account
from tests.read_side_fixtures import balances

unlucky = {"fixed": False}


def _handle(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
    if getattr(envelope.event, "amount", 0) == 13 and not unlucky["fixed"]:
        raise ValueError("13 is unlucky")
    db.execute("CREATE TABLE IF NOT EXISTS seen (position INTEGER PRIMARY KEY)")
    db.execute("INSERT INTO seen VALUES (?)", (envelope.position,))


fragile = Projection(name="fragile", handle=_handle, aggregates=[account], failure=FailurePolicy(retries=0))
app = App(aggregates=[account], handlers=[balances, fragile], db="cli-app.db")
