"""Given events, a projection's tables hold these rows: a projection tested through a real runtime.

    tables = await project(orders_by_customer, OrderPlaced("ann", 500, lines), aggregate=order)
    tables.then_rows("orders_by_customer", ("ann", "test", 500, "placed"))

The events are appended to `SQLiteEventStore.open(":memory:")` (bare ones in one instance's stream,
`on(aggregate, id, ...)` groups in theirs), a `Runtime` runs the projection into
`SQLiteReadModel.open(":memory:")`, and the test waits with `wait_for` until it has seen them all. An event
the projection parked fails the test with its error. `project` returns every table's rows; `projected` is
the context manager form that yields the open read model, for queries of your own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Self

import anyio

from actorsrc.domain import Aggregate
from actorsrc.errors import WaitTimeoutError
from actorsrc.projection import Projection
from actorsrc.readmodel import SQLiteReadModel
from actorsrc.recovery import codec_for
from actorsrc.runtime import Runtime
from actorsrc.store import ANY, SQLiteEventStore
from actorsrc.testing.aggregate_testkit import stored_form
from actorsrc.testing.expectations import list_mismatch, show
from actorsrc.testing.given_streams import DEFAULT_ID, streams_of


def _placeholder_decide(state: None, command: object) -> list[object]:
    return []


def _placeholder_evolve(state: None, event: object) -> None:
    return None


class _Unused:
    """Stands for the events and commands of the placeholder aggregate a runtime needs at least."""


_placeholder: Aggregate[None, Any, Any] = Aggregate(
    name="actorsrc_testkit_unused",
    initial=None,
    decide=_placeholder_decide,
    evolve=_placeholder_evolve,
    events={"ActorsrcTestkitUnused": _Unused},
    commands=(_Unused,),
)


@asynccontextmanager
async def projected(
    projection: Projection,
    *given: Any,
    aggregate: Aggregate[Any, Any, Any] | None = None,
    aggregate_id: str = DEFAULT_ID,
    timeout: float = 10.0,
) -> AsyncIterator[SQLiteReadModel]:
    """The read model after `projection` handled `given`, open for queries until the block ends."""
    if not isinstance(projection, Projection):
        raise TypeError(f"projected() takes a Projection first, got {projection!r}")
    groups = streams_of(given, aggregate, aggregate_id, projection.aggregates, f"projection {projection.name!r}")
    aggregates = list({id(group.aggregate): group.aggregate for group in groups}.values()) or [_placeholder]
    async with SQLiteEventStore.open(":memory:") as store, SQLiteReadModel.open(":memory:") as read_model:
        for group in groups:
            codec = codec_for(group.aggregate)
            await store.append(group.stream_id, [stored_form(codec, event) for event in group.events], ANY)
        last = await store.last_position()
        async with Runtime(store, aggregates, handlers=[projection], read_model=read_model) as runtime:
            try:
                await runtime.wait_for(projection, last, timeout=timeout)
            except WaitTimeoutError as exc:
                raise AssertionError(f"projection {projection.name!r} did not handle the given events: {exc}") from exc
            parked = await runtime.parked(projection)
        if parked:
            lines = "\n".join(f"  {p.type} ({p.stream_id} version {p.version}): {p.error}" for p in parked)
            raise AssertionError(
                f"projection {projection.name!r} failed on {len(parked)} event(s) and parked them:\n{lines}"
            )
        yield read_model


async def project(
    projection: Projection,
    *given: Any,
    aggregate: Aggregate[Any, Any, Any] | None = None,
    aggregate_id: str = DEFAULT_ID,
    timeout: float = 10.0,
) -> Tables:
    """The rows of every table of the read model (but actorsrc's own) after `projection` handled `given`."""
    with anyio.fail_after(timeout * 2):
        async with projected(
            projection, *given, aggregate=aggregate, aggregate_id=aggregate_id, timeout=timeout
        ) as read_model:
            names = await read_model.query(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'actorsrc%' "
                "AND name NOT LIKE 'sqlite%' ORDER BY name"
            )
            tables = {}
            for (name,) in names:
                quoted = name.replace('"', '""')
                tables[name] = [tuple(row) for row in await read_model.query(f'SELECT * FROM "{quoted}"')]
    return Tables(projection.name, tables)


def _order_free(row: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(repr(value) for value in row)


class Tables(Mapping[str, list[tuple[Any, ...]]]):
    """A projection's tables as they were: table name to rows (tuples, in the table's own order)."""

    __slots__ = ("_tables", "projection")

    def __init__(self, projection: str, tables: dict[str, list[tuple[Any, ...]]]) -> None:
        self.projection = projection
        self._tables = tables

    def __getitem__(self, table: str) -> list[tuple[Any, ...]]:
        try:
            return self._tables[table]
        except KeyError:
            made = ", ".join(self._tables) or "none"
            raise KeyError(f"projection {self.projection!r} made no table {table!r}; its tables: {made}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)

    def then_rows(self, table: str, *expected: tuple[Any, ...], ordered: bool = False) -> Self:
        """`table` holds exactly the rows `expected` (in that order if `ordered`, else in any order)."""
        __tracebackhide__ = True  # pytest shows the test's line, not the kit's
        actual = self[table]
        wanted = [tuple(row) for row in expected]
        if not ordered:
            actual, wanted = sorted(actual, key=_order_free), sorted(wanted, key=_order_free)
        how = "in order" if ordered else "in any order; both sorted"
        problem = list_mismatch(f"projection {self.projection!r}: rows of {table!r} ({how})", wanted, actual, show)
        if problem is not None:
            raise AssertionError(problem)
        return self
