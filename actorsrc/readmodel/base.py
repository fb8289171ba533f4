"""What the dispatcher needs from a read-model database (SQLite and PostgreSQL implement it).

A read model keeps, next to the projections' own tables, each handler's checkpoint, the events it
parked, and process managers' state. The projection's writes and its checkpoint always commit in one
transaction: that is what makes each event's effect land exactly once.

Who is to blame for a failure is part of the contract, because the dispatcher treats the two kinds
differently. The read model's own failures (BEGIN, COMMIT, checkpoint and parked-event writes, a lost
connection, a full disk, a lock) are raised as `ReadModelError`: retried until they clear, never parked.
An exception raised by the handler's own code (`handle`, `setup`) is raised as itself: the handler's
`FailurePolicy` applies to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from actorsrc.errors import ActorsrcError, HandlerTimeoutError

if TYPE_CHECKING:
    from actorsrc.projection import EventEnvelope, Projection


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    """An event a handler gave up on: it waits here, with the error, to be retried or discarded."""

    id: int
    handler: str
    position: int
    stream_id: str
    version: int
    type: str
    error: str
    attempts: int
    parked_at: datetime


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Move handler `name`'s checkpoint to `position` in the commit; when `after` is given, only if the
    checkpoint is still at `after` (otherwise the commit is refused with `CheckpointMovedError`); when
    `fence` is given, only if no owner with a higher fencing token has claimed the checkpoint since
    (otherwise `CheckpointFencedError`)."""

    name: str
    position: int
    after: int | None = None
    fence: int | None = None


def partition_prefix(handler: str) -> str:
    """How the checkpoints of a handler's partitions in a cluster begin (`PartitionSpec.checkpoint_name`)."""
    return f"{handler}#p"


def fence_row(name: str) -> str:
    """The checkpoint row that holds the highest fencing token claimed for checkpoint `name` (a cluster's
    read-side partition): kept next to the checkpoints, so the claim and the commits lock the same row."""
    return f"{name}#fence"


def handler_code(projection: str, part: str, envelopes: Sequence[EventEnvelope[Any]] = ()) -> str:
    """Names a run of a projection's code in errors: "the handle of projection 'x' over 2 events (positions 5-6)"."""
    described = f"the {part} of projection {projection!r}"
    if envelopes:
        count = f"{len(envelopes)} event" + ("s" if len(envelopes) > 1 else "")
        described += f" over {count} (positions {envelopes[0].position}-{envelopes[-1].position})"
    return described


class CheckpointMovedError(ActorsrcError):
    """The handler's stored checkpoint is not where the dispatcher expected: an earlier attempt whose
    outcome looked failed (timed out, cancelled mid-commit) did commit, or someone reset the handler.
    Nothing was written; the dispatcher resumes from `found`."""

    def __init__(self, name: str, expected: int, found: int) -> None:
        self.name = name
        self.expected = expected
        self.found = found
        super().__init__(f"handler {name!r}: checkpoint is at {found}, not at {expected} as expected; nothing written")


class CheckpointFencedError(ActorsrcError):
    """A checkpoint was claimed by a newer owner (a higher fencing token) than the one committing: this
    owner's lease is gone, so its work is refused and nothing is written."""

    def __init__(self, name: str, fence: int, found: int) -> None:
        self.name = name
        self.fence = fence
        self.found = found
        super().__init__(
            f"checkpoint {name!r} is claimed with fencing token {found}, newer than this owner's {fence};"
            " nothing written"
        )


class HandlerStuckError(HandlerTimeoutError):
    """A handler overran its timeout and could not be stopped: it is still running on the read model's
    connection thread (Python code between SQL statements cannot be interrupted)."""


@runtime_checkable
class ReadModel(Protocol):
    async def checkpoint(self, name: str) -> int: ...

    async def setup(self, projection: Projection, *, timeout: float | None = None) -> None:
        """Create the projection's tables (its `setup`), idempotently; `HandlerTimeoutError` past `timeout`."""
        ...

    async def project(
        self,
        projection: Projection,
        envelopes: Sequence[EventEnvelope[Any]],
        checkpoint: Checkpoint | None,
        unpark: int | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Run the projection's `handle` over `envelopes`, move the checkpoint (when given) and drop the
        parked event `unpark` (when given), all in one transaction. If `handle` runs longer than
        `timeout` seconds, nothing is committed and `HandlerTimeoutError` is raised."""
        ...

    async def park(
        self,
        name: str,
        position: int,
        stream_id: str,
        version: int,
        type_name: str,
        error: str,
        attempts: int,
        *,
        after: int | None = None,
        checkpoint: str | None = None,
        fence: int | None = None,
    ) -> None:
        """Record a failed event and move the checkpoint past it, atomically (from `after`, when given).
        The checkpoint moved is `checkpoint` (default: `name`), under `fence` when given (see `Checkpoint`)."""
        ...

    async def parked(self, name: str | None = None) -> list[ParkedEvent]: ...

    async def parked_event(self, parked_id: int) -> ParkedEvent | None: ...

    async def discard_parked(self, parked_id: int) -> None: ...

    async def reset(self, name: str, projection: Projection | None) -> None:
        """Forget a handler's checkpoint, parked events and state (a projection's `reset` then `setup`)."""
        ...

    async def load_process_state(self, manager: str, key: str) -> bytes | None: ...

    async def settled_commands(self, manager: str, command_ids: list[str]) -> set[str]:
        """Which of `command_ids` were rejected or wrote nothing before: not to be sent again."""
        ...

    async def save_process(
        self,
        manager: str,
        states: dict[str, bytes],
        settled: dict[str, str],
        checkpoint: Checkpoint | None,
        unpark: int | None = None,
    ) -> None:
        """A process manager's states, settled commands and checkpoint, in one transaction."""
        ...


@runtime_checkable
class FencedCheckpoints(Protocol):
    """Read models whose checkpoints a cluster's partition owners can fence (both built-in ones)."""

    async def claim_checkpoint(self, name: str, fence: int) -> int:
        """Record `fence` as the checkpoint's newest owner's token and return the checkpoint's position,
        in one transaction; `CheckpointFencedError` if a higher token has claimed it already. Commits with
        a lower `Checkpoint.fence` are refused from then on."""
        ...

    async def partition_checkpoints(self, handler: str) -> dict[str, int]:
        """The checkpoints (and fences) of `handler`'s partitions in a cluster, by name (`partition_prefix`)."""
        ...
