"""Retrying a PostgreSQL batch over a failing link, without ever calling a committed append unwritten.

A link can fail while COMMIT is in flight; the batch then may or may not have committed. The next
attempt settles that inside its own transaction (see `postgres_writer.write_batch`), so a batch that
committed keeps its results, one that did not is written once, and one that no attempt could settle
gives each of its appends `OutcomeUnknownError`. Only while nothing can have been written does the
retry loop raise, which the group committer takes to mean "nothing in the batch was written".
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, suppress
from typing import TYPE_CHECKING

import anyio
import asyncpg

from actorsrc.backoff import exponential_backoff
from actorsrc.errors import OutcomeUnknownError, StoreError
from actorsrc.observability import logger
from actorsrc.records import AppendResult
from actorsrc.sql.postgres import LINK_FAILURES
from actorsrc.store.group_commit import PendingAppend, PendingSnapshot
from actorsrc.store.postgres_writer import Attempt, write_batch

if TYPE_CHECKING:
    from actorsrc.sql.postgres import PgConnection

# Errors after which the connection, not the data, is to blame: the batch is settled and retried.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    *LINK_FAILURES,
    asyncpg.InterfaceError,
    asyncpg.QueryCanceledError,  # statement_timeout
)


def backoff(first_delay: float, attempt: int) -> float:
    """Seconds to wait before retry number `attempt` + 1: doubling from `first_delay`, at most 2 s."""
    return exponential_backoff(first_delay, 2.0, 0.0, attempt + 1)


async def write_with_retries(
    acquire: Callable[[], AbstractAsyncContextManager[PgConnection]],
    schema: str,
    batch: list[PendingAppend],
    snapshots: list[PendingSnapshot],
    *,
    retries: int,
    retry_delay: float,
) -> list[AppendResult | BaseException]:
    """Write the batch, retrying over transient errors. Raises only while nothing in the batch can have
    been written; once an attempt's COMMIT was in flight when its link failed, returns each append's
    outcome instead: its `AppendResult` if a later attempt settles that the batch committed, else
    `OutcomeUnknownError` (an append refused inside that transaction keeps its `ConcurrencyError`)."""
    doubt: Attempt | None = None  # the attempt whose COMMIT reply was lost, until one settles it
    for number in range(retries + 1):
        attempt = Attempt()
        try:
            return await _attempt(acquire, schema, batch, snapshots, attempt, doubt)
        except Exception as exc:
            if doubt is not None and doubt.committed is not None:  # settled, then this attempt failed
                if doubt.committed:
                    return doubt.outcomes
                doubt = None
            transient = isinstance(exc, TRANSIENT_ERRORS)
            if transient and attempt.committing and attempt.probe is not None:
                doubt = attempt
            if not transient or number == retries:
                if doubt is None:
                    raise  # nothing was written
                return _unsettled(batch, snapshots, doubt, exc)
            logger.warning(
                "store.retry", store="postgres", attempt=number + 1, in_doubt=doubt is not None, error=repr(exc)
            )
        await anyio.sleep(backoff(retry_delay, number))
    raise AssertionError("unreachable")


async def _attempt(
    acquire: Callable[[], AbstractAsyncContextManager[PgConnection]],
    schema: str,
    batch: list[PendingAppend],
    snapshots: list[PendingSnapshot],
    attempt: Attempt,
    doubt: Attempt | None,
) -> list[AppendResult | BaseException]:
    outcomes: list[AppendResult | BaseException] | None = None
    try:
        async with acquire() as conn:
            try:
                outcomes = await write_batch(conn, schema, batch, snapshots, attempt, doubt)
            except TRANSIENT_ERRORS:
                with suppress(asyncpg.InterfaceError):  # already released if the server closed it
                    conn.terminate()  # a broken link goes, rather than back to the pool mid-transaction
                raise
    except Exception:
        if outcomes is None:
            raise
        # Committed; only handing the connection back failed (the pool replaces it).
    return outcomes


def _unsettled(
    batch: list[PendingAppend], snapshots: list[PendingSnapshot], doubt: Attempt, cause: Exception
) -> list[AppendResult | BaseException]:
    """Outcomes of a batch whose COMMIT was in flight when the link failed, and that no later attempt
    could settle: each append it would have written may or may not be in the store."""
    logger.error("store.outcome_unknown", store="postgres", appends=len(batch), error=repr(cause))
    outcomes: list[AppendResult | BaseException] = []
    for pending, planned in zip(batch, doubt.outcomes, strict=True):
        if not isinstance(planned, AppendResult):
            outcomes.append(planned)  # refused inside that transaction: not written either way
            continue
        error = OutcomeUnknownError(
            f"append of {len(pending.events)} events to {pending.stream_id!r}: outcome unknown: the link to"
            " PostgreSQL failed while its commit was in flight, and no retry could settle whether it was"
            f" written (last error: {cause!r}); retry with the same command id"
        )
        error.__cause__ = cause
        outcomes.append(error)
    for pending_snapshot in snapshots:
        if not pending_snapshot.reply.done():
            snapshot_error = StoreError(
                f"snapshot of {pending_snapshot.snapshot.stream_id!r}: outcome unknown ({cause!r})"
            )
            pending_snapshot.reply.set_exception(snapshot_error)
    return outcomes
