"""A process manager whose target cannot be reloaded because the store's reads fail is waiting on
infrastructure, not failing: it retries until the store reads again, and parks nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actorsrc import (
    EventEnvelope,
    ProcessManager,
    Runtime,
    Send,
    SQLiteEventStore,
    SQLiteReadModel,
    StoreError,
)
from actorsrc.store.base import StoredPayload
from examples.bank import AccountOpened, OpenAccount, account
from tests.helpers import wait_until


class MirrorReadsFail(SQLiteEventStore):
    """Reads of the mirror accounts' streams fail while `failing` is set, as on a broken disk sector."""

    failing = True
    failed_reads = 0

    def _maybe_fail(self, stream_id: str) -> None:
        if self.failing and "mirror" in stream_id:
            self.failed_reads += 1
            raise StoreError(f"injected read failure on {stream_id!r}")

    async def read_stream_payloads(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[StoredPayload]:
        self._maybe_fail(stream_id)
        return await super().read_stream_payloads(stream_id, from_version, to_version)

    async def load_snapshot(self, stream_id: str) -> Any:
        self._maybe_fail(stream_id)
        return await super().load_snapshot(stream_id)


def mirror(state: int, envelope: EventEnvelope[Any]) -> tuple[int, list[Send]]:
    opened = envelope.event
    assert isinstance(opened, AccountOpened)
    if envelope.stream_id.startswith("account-mirror-"):
        return state, []
    return state + 1, [Send(account, "mirror-" + envelope.stream_id.removeprefix("account-"), OpenAccount("copy"))]


async def test_a_target_that_cannot_be_reloaded_is_retried_until_the_store_reads_again(tmp_path: Path) -> None:
    mirrors = ProcessManager(
        name="mirrors", key=lambda e: e.stream_id, initial=0, react=mirror, events={"AccountOpened": AccountOpened}
    )
    async with (
        MirrorReadsFail.open(tmp_path / "events.db") as store,
        SQLiteReadModel.open(tmp_path / "read.db") as read_model,
        Runtime(store, [account], handlers=[mirrors], read_model=read_model) as runtime,
    ):
        opened = await runtime.ref(account, "a").ask(OpenAccount("ann"))

        def retrying() -> bool:
            (status,) = runtime.handler_statuses()
            return status.status == "retrying" and store.failed_reads >= 5

        # The policy's 3 retries take ~0.35 s: 5 failed reloads are past them, and nothing may be parked.
        await wait_until(retrying, what="the process manager retrying its command while the store cannot read")
        assert await runtime.parked() == []
        (status,) = runtime.handler_statuses()
        assert status.last_error is not None
        assert "RecoveryError" in status.last_error or "StoreError" in status.last_error

        store.failing = False
        await runtime.wait_for(mirrors, opened.position, timeout=15)
        assert await runtime.parked() == []
        assert await store.stream_version("account-mirror-a") == 1
        assert runtime.handler_statuses()[0].status == "running"
