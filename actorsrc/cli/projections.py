"""`actorsrc projections ...`: list handlers, rebuild one, and manage parked events."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from actorsrc.app import load_app
from actorsrc.errors import WaitTimeoutError
from actorsrc.progress import Progress
from actorsrc.runtime.runtime import Runtime


def add_projections(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("projections", help="list, rebuild and repair projections and process managers")
    parser.add_argument("--app", required=True, help="the App to load, as package.module:attribute")
    parser.add_argument("--db", default=None, help="event store file (default: the App's)")
    parser.add_argument("--read-db", default=None, help="read model file (default: the App's)")
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    actions.add_parser("list", help="handlers with their status and position").set_defaults(action=_list)
    rebuild = actions.add_parser("rebuild", help="reset a handler and replay the whole log into it")
    rebuild.add_argument("name")
    rebuild.set_defaults(action=_rebuild)
    parked = actions.add_parser("parked", help="events handlers gave up on")
    parked.add_argument("name", nargs="?", default=None)
    parked.set_defaults(action=_parked)
    for verb, action, text in (
        ("retry", _retry, "handle a parked event again"),
        ("discard", _discard, "drop a parked event"),
    ):
        sub = actions.add_parser(verb, help=text)
        sub.add_argument("id", type=int)
        sub.set_defaults(action=action)
    parser.set_defaults(handler=run_projections)


def run_projections(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    events_db = args.db or app.db
    if not Path(events_db).exists():  # opening it would quietly create an empty store
        print(
            f"actorsrc: no event store at {events_db!r}; pass --db (or create it by running the app)", file=sys.stderr
        )
        return 1
    action: Callable[[Runtime, argparse.Namespace], Awaitable[int]] = args.action

    async def go() -> int:
        async with app.run(args.db, args.read_db) as runtime:
            return await action(runtime, args)

    return anyio.run(go, backend="asyncio")


async def _list(runtime: Runtime, args: argparse.Namespace) -> int:
    last = await runtime.store.last_position()
    for status in runtime.handler_statuses():  # let each subscription read its checkpoint
        with contextlib.suppress(WaitTimeoutError):  # stopped or failing: listed as it is
            await runtime.wait_for(status.name, 0, timeout=5)
    print(f"{'handler':28} {'kind':16} {'status':10} {'position':>10} {'behind':>8} {'parked':>7}")
    parked = {p.handler for p in await runtime.parked()}
    for status in runtime.handler_statuses():
        count = len(await runtime.parked(status.name)) if status.name in parked else 0
        print(
            f"{status.name:28} {status.kind:16} {status.status:10} {status.position:>10} "
            f"{last - status.position:>8} {count:>7}"
        )
        if status.stop_reason:
            print(f"  stopped: {status.stop_reason}")
        elif status.last_error and status.status == "retrying":
            print(f"  retrying since {status.retrying_since}: {status.last_error}")
    return 0


async def _rebuild(runtime: Runtime, args: argparse.Namespace) -> int:
    target = await runtime.store.last_position()
    with Progress(max(target, 1), f"rebuilding {args.name}") as progress:
        done = 0

        def report(position: int, total: int) -> None:
            nonlocal done
            progress.advance(max(0, min(position, target) - done))
            done = max(done, min(position, target))

        reached = await runtime.rebuild(args.name, on_progress=report)
    print(f"{args.name}: rebuilt up to position {reached}")
    return 0


async def _parked(runtime: Runtime, args: argparse.Namespace) -> int:
    events = await runtime.parked(args.name)
    if not events:
        print("no parked events")
    for event in events:
        print(
            f"#{event.id} {event.handler} position {event.position} {event.type} on {event.stream_id!r} "
            f"v{event.version}, {event.attempts} attempts, parked {event.parked_at:%Y-%m-%d %H:%M:%S}Z"
        )
        print(f"    {event.error}")
    return 0


async def _retry(runtime: Runtime, args: argparse.Namespace) -> int:
    try:
        await runtime.retry_parked(args.id)
    except LookupError as exc:
        print(f"actorsrc: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"parked event #{args.id} failed again: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"parked event #{args.id} handled; it is no longer parked")
    return 0


async def _discard(runtime: Runtime, args: argparse.Namespace) -> int:
    try:
        event = await runtime.discard_parked(args.id)
    except LookupError as exc:
        print(f"actorsrc: {exc}", file=sys.stderr)
        return 1
    print(f"discarded parked event #{event.id} ({event.handler}, position {event.position})")
    return 0
