"""`actorsrc streams show`, `actorsrc state` and `actorsrc check`: look at stored history, offline.

They open the event store directly (no runtime, no handlers), so they are safe to run beside a live
process: they only read.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from actorsrc.cli.args import non_negative_int
from actorsrc.errors import ActorsrcError

if TYPE_CHECKING:
    from actorsrc.app import App
    from actorsrc.codec import EventCodec
    from actorsrc.domain import Aggregate
    from actorsrc.records import RecordedEvent
    from actorsrc.recovery import LoadedState

VALUE_WIDTH = 40  # one field's value in the history table
FIELDS_WIDTH = 100  # all of an event's fields in the history table
STATE_VALUE_WIDTH = 200

# `streams show` prints times to the millisecond; an --at copied from it must include its event,
# which was recorded somewhere inside that millisecond.
_TO_THE_MILLISECOND = re.compile(r"\d{2}:\d{2}:\d{2}[.,]\d{3}(?!\d)")


class StreamNotFoundError(ActorsrcError, LookupError):
    """The stream id names no aggregate of the App, or the stream has no events."""


# -- argument declarations ------------------------------------------------------------------------


def add_streams(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("streams", help="inspect stored event streams")
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show",
        help="a stream's history: versions, positions, times, types and the decoded events",
        description="Events are shown decoded and upcast to their current shape; 'schema' is the version stored.",
    )
    show.add_argument("stream", metavar="STREAM", help="a full stream id, e.g. account-acc-1")
    _add_app_options(show)
    show.set_defaults(handler=run_show)


def add_state(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "state",
        help="an aggregate's state as of a moment or a version (default: now)",
        description="Fold a stream's events up to a moment or version and print the state reached.",
    )
    parser.add_argument("stream", metavar="STREAM", help="a full stream id, e.g. account-acc-1")
    _add_app_options(parser)
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--at",
        type=parse_moment,
        metavar="TIME",
        help="ISO 8601 with a timezone, e.g. 2026-07-04T00:00Z; events recorded at or before it count "
        "(a time written to the millisecond, as `streams show` prints it, includes that whole millisecond)",
    )
    when.add_argument("--version", dest="to_version", type=non_negative_int, metavar="N", help="stream version")
    parser.set_defaults(handler=run_state)


def add_check(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check",
        help="warn about vague event names",
        description="Event names should be specific facts in the past tense. Warnings only: exits 0.",
    )
    parser.add_argument("--app", required=True, help="the App to load, as package.module:attribute")
    parser.set_defaults(handler=run_check)


def _add_app_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app", required=True, help="the App to load, as package.module:attribute")
    parser.add_argument("--db", default=None, help="event store file (default: the App's)")


def parse_moment(text: str) -> datetime:
    """An --at value: ISO 8601 with a timezone (`Z` accepted)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r} (e.g. 2026-07-04T00:00Z)") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        example = f"{text}Z" if "T" in text or " " in text else f"{text}T00:00Z"
        raise argparse.ArgumentTypeError(
            f"{text!r} has no timezone, so it is ambiguous; add one, e.g. {example} for UTC or a +02:00 offset"
        )
    if _TO_THE_MILLISECOND.search(text):
        moment += timedelta(microseconds=999)
    return moment


# -- streams show ---------------------------------------------------------------------------------


def run_show(args: argparse.Namespace) -> int:
    from actorsrc.recovery import codec_for

    app = _load(args.app)
    aggregate, _ = find_aggregate(app.aggregates, args.stream)
    db = _db_path(app, args.db)
    records = anyio.run(_read_stream, db, args.stream, backend="asyncio")
    if not records:
        raise StreamNotFoundError(f"stream {args.stream!r} has no events in {db!r}")
    rows = history_rows(codec_for(aggregate), records)
    print(f"{args.stream} ({aggregate.name}): {len(records)} events")
    print(format_table(("version", "position", "recorded_at", "type", "schema", "fields"), rows, right=(0, 1, 4)))
    return 0


async def _read_stream(db: str, stream: str) -> list[RecordedEvent]:
    from actorsrc.store.sqlite import SQLiteEventStore

    async with SQLiteEventStore.open(db) as store:
        return await store.read_stream(stream)


def history_rows(codec: EventCodec, records: Sequence[RecordedEvent]) -> list[tuple[str, ...]]:
    """One table row per stored event; a row that no longer decodes says why instead of aborting."""
    rows: list[tuple[str, ...]] = []
    for record in records:
        name = codec.current_name(record.type)
        shown_type = name if name == record.type else f"{name} (stored as {record.type})"
        try:
            fields = render_fields(codec.decode_record(record), VALUE_WIDTH, FIELDS_WIDTH)
        except ActorsrcError as exc:
            fields = f"<cannot decode: {exc}>"
        rows.append(
            (
                str(record.version),
                str(record.position),
                format_time(record.recorded_at),
                shown_type,
                str(record.schema_version),
                fields,
            )
        )
    return rows


# -- state ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class StateAsOf:
    loaded: LoadedState[Any]
    stream_version: int  # the stream's current length
    reached_at: datetime | None  # when the event at loaded.version was recorded (None at version 0)
    first_at: datetime  # when the stream's first event was recorded


def run_state(args: argparse.Namespace) -> int:
    app = _load(args.app)
    aggregate, aggregate_id = find_aggregate(app.aggregates, args.stream)
    db = _db_path(app, args.db)
    found = anyio.run(_state_as_of, db, aggregate, aggregate_id, args.at, args.to_version, backend="asyncio")
    if found is None:
        raise StreamNotFoundError(f"stream {args.stream!r} has no events in {db!r}")
    if args.to_version is not None and args.to_version > found.stream_version:
        raise StreamNotFoundError(
            f"{args.stream!r} has {found.stream_version} events; --version {args.to_version} is past its end"
        )
    print("\n".join(state_lines(args.stream, aggregate, found, args.at, args.to_version)))
    return 0


async def _state_as_of(
    db: str, aggregate: Aggregate[Any, Any, Any], aggregate_id: str, at: datetime | None, to_version: int | None
) -> StateAsOf | None:
    from actorsrc.recovery import load_state
    from actorsrc.store.sqlite import SQLiteEventStore

    stream = aggregate.stream_id(aggregate_id)
    async with SQLiteEventStore.open(db) as store:
        first = await store.read_stream(stream, 1, 1)
        if not first:
            return None
        stream_version = await store.stream_version(stream)
        loaded = await load_state(store, aggregate, aggregate_id, to_version=to_version, at=at)
        reached = await store.read_stream(stream, loaded.version, loaded.version) if loaded.version else []
    return StateAsOf(loaded, stream_version, reached[0].recorded_at if reached else None, first[0].recorded_at)


def state_lines(
    stream: str, aggregate: Aggregate[Any, Any, Any], found: StateAsOf, at: datetime | None, to_version: int | None
) -> list[str]:
    loaded = found.loaded
    as_of = format_time(at) if at is not None else f"version {to_version}" if to_version is not None else "now"
    if found.reached_at is None:
        reached = f"before the first event (recorded {format_time(found.first_at)})"
    else:
        reached = f"recorded {format_time(found.reached_at)}, position {loaded.position}"
    lines = [
        f"{stream} ({aggregate.name}) as of {as_of}",
        f"version {loaded.version} of {found.stream_version}: {reached}",
        f"state {type(loaded.state).__qualname__}:",
    ]
    pairs = fields_of(loaded.state)
    width = max((len(name) for name, _ in pairs), default=0)
    lines += [f"  {name:<{width}} = {shorten(repr(value), STATE_VALUE_WIDTH)}" for name, value in pairs]
    return lines


# -- check ----------------------------------------------------------------------------------------


def run_check(args: argparse.Namespace) -> int:
    from actorsrc.lint import check_event_names

    warnings = check_event_names(_load(args.app).aggregates)
    for warning in warnings:
        print(f"warning: {warning}")
    if warnings:
        print(f"{len(warnings)} event name(s) to reconsider (warnings only)")
    else:
        print("no naming problems")
    return 0  # naming is advice: it never fails a build


# -- shared ---------------------------------------------------------------------------------------


def _load(spec: str) -> App:
    from actorsrc.app import load_app

    return load_app(spec)


def _db_path(app: App, db: str | None) -> str:
    path = db or app.db
    if not Path(path).exists():  # opening would create an empty store: say so instead
        raise StreamNotFoundError(f"no event store at {path!r}; pass --db")
    return path


def find_aggregate(aggregates: Sequence[Aggregate[Any, Any, Any]], stream: str) -> tuple[Aggregate[Any, Any, Any], str]:
    """The aggregate owning `stream` (stream ids are ``f"{name}-{id}"``) and the instance id."""
    # Aggregate names cannot contain '-', so the first one ends the name.
    name, _, aggregate_id = stream.partition("-")
    owner = next((aggregate for aggregate in aggregates if aggregate.name == name), None)
    if owner is not None and aggregate_id:
        return owner, aggregate_id
    known = ", ".join(sorted(a.name for a in aggregates)) or "none"
    raise StreamNotFoundError(
        f"no aggregate of this App owns stream {stream!r}; stream ids look like NAME-ID with NAME one of: {known}"
    )


def format_time(moment: datetime) -> str:
    """UTC, ISO 8601, to the millisecond: 2026-07-04T09:30:00.123Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fields_of(value: object) -> list[tuple[str, Any]]:
    """(name, value) of a dataclass's, msgspec Struct's or mapping's fields; anything else is one value."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(field.name, getattr(value, field.name)) for field in dataclasses.fields(value)]
    if isinstance(value, msgspec.Struct):
        return [(name, getattr(value, name)) for name in value.__struct_fields__]
    if isinstance(value, Mapping):
        return [(str(key), item) for key, item in value.items()]
    return [("value", value)]


def render_fields(value: object, value_width: int, total_width: int) -> str:
    """A compact one-line rendering, e.g. ``amount=100 currency='EUR'``, long values truncated."""
    text = " ".join(f"{name}={shorten(repr(item), value_width)}" for name, item in fields_of(value))
    return shorten(text, total_width)


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else f"{text[: width - 3]}..."


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(width) if index in right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        padded[-1] = padded[-1].rstrip()
        return "  ".join(padded)

    return "\n".join(line(cells) for cells in (headers, *rows))
