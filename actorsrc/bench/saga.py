"""The shop's fulfilment process manager end to end: orders placed concurrently, each followed until
its `OrderShipped` is applied by a read model.

On SQLite the shop runs as `examples.shop.app.open_shop` wires it (both projections and the saga);
the `orders_by_customer` projection notes when it applies each `OrderShipped`, inside the transaction
that makes "shipped" visible, so the measurement adds no subscription. The shop's projections are
written for SQLite, so on PostgreSQL a one-line projection over order events takes their place.

The shop is the repository's example (examples/shop), which an installed wheel does not include: this
workload needs a source checkout, and says so before any run.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from actorsrc import EventEnvelope, Projection, Runtime
from actorsrc.bench.stores import bench_read_model, bench_store
from actorsrc.bench.workloads import Result, open_loop
from actorsrc.progress import Progress

SETTLE_TIMEOUT = 600.0


class ShopMissing(ValueError):
    """`actorsrc bench saga` outside a source checkout."""


def check_shop_available() -> None:
    """Raise ShopMissing unless the repository's shop example can be imported."""
    try:
        import examples.shop  # noqa: F401
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("examples"):
            raise
        raise ShopMissing(
            "the saga workload runs the repository's shop example (examples/shop), which an installed wheel"
            " does not include: run it from a source checkout (pip install -e '.[bench]')"
        ) from None


Handle = Callable[[Any, EventEnvelope[Any]], Any]


def _noting_shipped(shipped_at: dict[str, float], then: Handle | None) -> Handle:
    from examples.shop.domain import OrderShipped, order_id_of

    def handle(db: Any, envelope: EventEnvelope[Any]) -> Any:
        result = then(db, envelope) if then is not None else None
        if isinstance(envelope.event, OrderShipped):
            order_id = order_id_of(envelope.stream_id, envelope.event)
            assert order_id is not None
            shipped_at[order_id] = time.perf_counter()  # a float store: safe from the read model's thread
        return result

    return handle


def _projections(postgres: bool, shipped_at: dict[str, float]) -> tuple[Projection, ...]:
    from examples.shop.domain import order
    from examples.shop.read_models import orders_by_customer, revenue_per_day

    if postgres:
        return (Projection(name="bench_shipped", handle=_noting_shipped(shipped_at, None), aggregates=[order]),)
    timed = dataclasses.replace(orders_by_customer, handle=_noting_shipped(shipped_at, orders_by_customer.handle))
    return timed, revenue_per_day


async def _settle(runtime: Runtime, projections: Sequence[Projection]) -> None:
    """As `examples.shop.app.settle`, for these projections (the runtime knows handlers by identity)."""
    from examples.shop.saga import fulfilment

    with anyio.fail_after(SETTLE_TIMEOUT):
        while True:
            target = await runtime.store.last_position()
            await runtime.wait_for(fulfilment, target, timeout=SETTLE_TIMEOUT)
            if await runtime.store.last_position() == target:
                break
        for projection in projections:
            await runtime.wait_for(projection, target, timeout=SETTLE_TIMEOUT)


async def _show_shipping(shipped_at: dict[str, float], progress: Progress) -> None:
    while True:
        progress.advance(len(shipped_at) - progress.count)
        await anyio.sleep(0.2)


async def saga(
    store_url: str | None, directory: Path, orders: int, callers: int, steady_seconds: float
) -> tuple[list[Result], dict[str, Any]]:
    """A burst of `orders` from `callers` customers, until all are shipped; then, on the same runtime, orders
    on a fixed schedule at half the burst's rate for `steady_seconds`: per-order latency without a backlog."""
    from examples.shop.app import AGGREGATES
    from examples.shop.domain import OrderLine, PlaceOrder, order
    from examples.shop.saga import fulfilment

    placed_at: dict[str, float] = {}
    shipped_at: dict[str, float] = {}
    projections = _projections(store_url is not None, shipped_at)
    line = (OrderLine("sku", 1, 1000),)  # well under the payment limit: every order ships

    def latencies(prefix: str) -> list[float]:
        return [(shipped_at[o] - placed_at[o]) * 1000 for o in placed_at if o.startswith(prefix)]

    async with (
        bench_store(store_url, directory, "saga") as (store, settings),
        bench_read_model(store_url, directory, "saga") as read_model,
        Runtime(store, AGGREGATES, handlers=(*projections, fulfilment), read_model=read_model) as runtime,
    ):

        async def place(order_id: str, n: int) -> None:
            placed_at[order_id] = time.perf_counter()
            await runtime.ref(order, order_id).ask(PlaceOrder(f"c{n % 100}", line))

        pending = iter(range(orders))

        async def customer() -> None:
            for n in pending:
                await place(f"burst-{n}", n)

        with Progress(orders, "saga: burst, shipped") as progress:
            started = time.perf_counter()
            async with anyio.create_task_group() as tg:
                tg.start_soon(_show_shipping, shipped_at, progress)
                async with anyio.create_task_group() as placing:
                    for _ in range(callers):
                        placing.start_soon(customer)
                await _settle(runtime, projections)
                tg.cancel_scope.cancel()
            burst_seconds = time.perf_counter() - started
            progress.advance(len(shipped_at) - progress.count)
        rate = orders / burst_seconds / 2

        async def steady_order(n: int) -> None:
            await place(f"steady-{n}", n)

        label = f"saga: open loop at {rate:,.0f} orders/s"
        steady_seconds = await open_loop(rate, steady_seconds, steady_order, label)
        await _settle(runtime, projections)
    if len(shipped_at) != len(placed_at):
        raise AssertionError(f"only {len(shipped_at)} of {len(placed_at)} orders were shipped")
    what = "actorsrc, burst: placed to OrderShipped projected"
    extra = {"callers": callers, "handlers": [*(p.name for p in projections), fulfilment.name]}
    burst = Result("saga", what, orders, burst_seconds, "orders/s", latencies("burst-"), extra=extra)
    steady = latencies("steady-")
    what = f"actorsrc, open loop at {rate:,.0f} orders/s (half of burst)"
    return [burst, Result("saga", what, len(steady), steady_seconds, "orders/s", steady)], settings
