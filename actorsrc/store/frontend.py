"""What every group-committing store does the same way: validate, then queue for the next commit."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence

from actorsrc.records import AppendResult, NewEvent, Snapshot
from actorsrc.sql.encoding import MAX_SQL_INT
from actorsrc.store.base import (
    ExpectedVersion,
    Fence,
    check_fence,
    check_fence_token,
    check_int,
    validate_expected_version,
    validate_new_events,
    validate_snapshot,
    validate_stream_id,
)
from actorsrc.store.group_commit import GroupCommitter
from actorsrc.store.limits import StoreLimits


def version_range(stream_id: str, from_version: int, to_version: int | None) -> int:
    """Validate a stream read's arguments; returns the upper version bound to query with."""
    validate_stream_id(stream_id)
    check_int("from_version", from_version, 1)
    if to_version is None:
        return MAX_SQL_INT
    return check_int("to_version", to_version, 0)


class GroupCommitFrontend(abc.ABC):
    """Appends and snapshots through a `GroupCommitter`; subclasses provide `_committer` and `_check_open`.

    The committer's `StoreLimits` (pass ``limits=`` to the committer) are the store's: sizes are checked
    here, before anything is queued, so every adapter refuses the same appends the same way.
    """

    _committer: GroupCommitter

    @abc.abstractmethod
    def _check_open(self) -> None:
        """Raise `StoreClosedError` unless the store is open."""

    @property
    def limits(self) -> StoreLimits:
        """What this store accepts: event and append sizes, queue lengths."""
        return self._committer.limits

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion,
        *,
        fence: Fence | None = None,
    ) -> AppendResult:
        """Append `events` if the stream is at `expected_version`; see `EventStore.append`.

        With ``fence=(shard, token)``, refused with `FencedAppendError` (nothing written) when the shard's
        fence (see `raise_fence`) is above `token`; appends without a fence are never checked.
        """
        committer = self._committer
        if committer.full:  # backpressure: wait for room, after refusing bad input at once
            validate_stream_id(stream_id)
            validate_expected_version(expected_version)
            if fence is not None:
                check_fence(fence)
            validate_new_events(stream_id, events, committer.limits)
            await committer.wait_for_room()
        return await self.submit_append(stream_id, events, expected_version, fence=fence)

    def submit_append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion,
        *,
        fence: Fence | None = None,
    ) -> asyncio.Future[AppendResult]:
        """`append` without a coroutine: validates now, and returns the future of its group commit.

        It never waits for room in the queue (`append` does): it cannot, being synchronous, and it need not,
        since the runtime, its caller, has at most one append in flight per actor and caps its live actors.
        """
        validate_stream_id(stream_id)
        validate_expected_version(expected_version)
        if fence is not None:
            fence = check_fence(fence)
        committer = self._committer
        checked = validate_new_events(stream_id, events, committer.limits)
        self._check_open()
        return committer.submit(stream_id, checked, expected_version, fence)

    async def raise_fence(self, shard: int, token: int) -> int:
        """Set the shard's fence to max(its fence, `token`) and return the fence now in force.

        Ordered with appends: a batch in flight either committed before (and is visible to a read once
        this returns) or is checked against the new fence. See `FencingStore`.
        """
        check_fence_token(shard, token)
        self._check_open()
        return await self._raise_fence(shard, token)

    @abc.abstractmethod
    async def _raise_fence(self, shard: int, token: int) -> int:
        """Raise the fence in a transaction ordered with the committer's batches."""

    @abc.abstractmethod
    async def fences(self) -> dict[int, int]:
        """Every shard's fence: {shard: token}."""

    async def save_snapshot(self, snapshot: Snapshot, *, keep: int = 2) -> None:
        """Queue a snapshot; it is written with the next group commit.

        Refused at once with `StoreError` when `StoreLimits.max_queued_snapshots` already wait.
        """
        validate_snapshot(snapshot, keep, self._committer.limits)
        self._check_open()
        await self._committer.submit_snapshot(snapshot, keep)

    @property
    def queued_appends(self) -> int:
        """Appends waiting for the next group commit."""
        return self._committer.queued
