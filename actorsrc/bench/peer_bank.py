"""The peer's account and application: the `eventsourcing` library (9.5.6, the `bench` extra) in its
documented style, an `Aggregate` with `@event` methods in an `Application`.

Importing this module imports eventsourcing: only `actorsrc bench ... --compare` (through
`actorsrc.bench.peers`) and benchmarks/replay.py do, after checking that the extra is installed.
"""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from actorsrc.bench.replay_rows import SNAPSHOT_EVERY


class PeerAccount(Aggregate):
    @event("Opened")
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.balance = 0

    @event("Credited")
    def credit(self, amount: int) -> None:
        self.balance += amount


class PeerBank(Application[UUID]):
    # Snapshots are only taken (and read) when the env says IS_SNAPSHOTTING_ENABLED=y.
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {PeerAccount: SNAPSHOT_EVERY}

    def open_account(self, owner: str) -> UUID:
        opened = PeerAccount(owner)
        self.save(opened)
        account_id: UUID = opened.id
        return account_id

    def credit(self, account_id: UUID, amount: int, times: int = 1) -> None:
        credited: PeerAccount = self.repository.get(account_id)
        for _ in range(times):
            credited.credit(amount)
        self.save(credited)

    def balance(self, account_id: UUID) -> tuple[int, int]:
        """(balance, version), rebuilt from the store: the aggregate cache is off."""
        loaded: PeerAccount = self.repository.get(account_id)
        return loaded.balance, loaded.version
