"""The bank as an `App`, for the command line: ``actorsrc streams show account-ann --app examples.bank.app:bank``."""

from __future__ import annotations

from actorsrc.app import App
from examples.bank.domain import account

bank = App(aggregates=[account], db="bank.db")
