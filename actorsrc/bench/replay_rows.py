"""The rows of the replay workload and which actorsrc row does the same job as which peer row."""

from __future__ import annotations

import dataclasses

from actorsrc.bench.account import account

SNAPSHOT_EVERY = 1000
SNAPSHOTTING = dataclasses.replace(account, snapshot_every=SNAPSHOT_EVERY)
ACCOUNT_ID = "replayed"

PEER_FULL = "eventsourcing repository.get, cache off, full replay"
PEER_SNAPSHOT = f"eventsourcing repository.get, cache off, snapshot every {SNAPSHOT_EVERY}"
PAIRS = {
    "actorsrc load_state, full replay": PEER_FULL,
    f"actorsrc load_state, snapshot every {SNAPSHOT_EVERY}": PEER_SNAPSHOT,
    "actorsrc fresh Runtime, first state(), full replay": PEER_FULL,
    f"actorsrc fresh Runtime, first state(), snapshot every {SNAPSHOT_EVERY}": PEER_SNAPSHOT,
}
