"""What every group-committing store does the same way: validate, then queue for the next commit."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence

from actorsrc.messages import AppendResult, NewEvent, Snapshot
from actorsrc.store.base import (
    _MAX_INT,
    ExpectedVersion,
    check_int,
    validate_expected_version,
    validate_new_events,
    validate_snapshot,
    validate_stream_id,
)
from actorsrc.store.group_commit import GroupCommitter


def version_range(stream_id: str, from_version: int, to_version: int | None) -> int:
    """Validate a stream read's arguments; returns the upper version bound to query with."""
    validate_stream_id(stream_id)
    check_int("from_version", from_version, 1)
    if to_version is None:
        return _MAX_INT
    return check_int("to_version", to_version, 0)


class GroupCommitFrontend(abc.ABC):
    """Appends and snapshots through a `GroupCommitter`; subclasses provide `_committer` and `_check_open`."""

    _committer: GroupCommitter

    @abc.abstractmethod
    def _check_open(self) -> None:
        """Raise `StoreClosedError` unless the store is open."""

    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: ExpectedVersion
    ) -> AppendResult:
        return await self.submit_append(stream_id, events, expected_version)

    def submit_append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: ExpectedVersion
    ) -> asyncio.Future[AppendResult]:
        """`append` without a coroutine: validates now, and returns the future of its group commit."""
        validate_stream_id(stream_id)
        validate_expected_version(expected_version)
        checked = validate_new_events(stream_id, events)
        self._check_open()
        return self._committer.submit(stream_id, checked, expected_version)

    async def save_snapshot(self, snapshot: Snapshot, *, keep: int = 2) -> None:
        """Queue a snapshot; it is written with the next group commit."""
        validate_snapshot(snapshot, keep)
        self._check_open()
        await self._committer.submit_snapshot(snapshot, keep)

    @property
    def queued_appends(self) -> int:
        """Appends waiting for the next group commit."""
        return self._committer.queued
