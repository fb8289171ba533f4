"""The `actorsrc` command line.

Each subcommand is a pair of small functions: ``_add_<name>(subparsers)`` declares its arguments
and binds ``_run_<name>(args) -> exit code``. Heavy modules are imported inside the run functions,
so ``actorsrc --help`` stays fast and one subcommand's dependencies never break another.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import structlog

from actorsrc import ActorsrcError, __version__
from actorsrc.cli.args import non_negative_int, positive_int
from actorsrc.cli.bench import add_bench
from actorsrc.cli.cluster import add_cluster
from actorsrc.cli.projections import add_projections
from actorsrc.cli.streams import add_check, add_state, add_streams
from actorsrc.tuning import tune_gc

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace], int]


def main(argv: list[str] | None = None) -> int:
    """Run the command line with `argv` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on bad usage (2) and after --help (0)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    configure_logging()
    tune_gc()  # the command line is an application: it may tune the process (see actorsrc.tuning)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("actorsrc: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ActorsrcError as exc:
        print(f"actorsrc: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def configure_logging() -> None:
    """Human-readable warnings and errors on stderr; the library itself never configures structlog."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S"),
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="actorsrc", description="Event-sourced aggregates as async actors over an event store."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_demo(subparsers)
    add_projections(subparsers)
    add_streams(subparsers)
    add_state(subparsers)
    add_check(subparsers)
    add_bench(subparsers)
    add_cluster(subparsers)
    return parser


# -- demo -----------------------------------------------------------------------------------------


def _add_demo(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run the bank example under load on an SQLite file and check every balance",
        description=(
            "Open N bank accounts, send N*M random credits, debits and interest runs through C "
            "concurrent callers, then check each balance against its stored events, and again "
            "after reopening the store. Needs a source checkout (it uses examples.bank)."
        ),
    )
    demo.add_argument("--db", type=Path, default=Path("actorsrc-demo.db"), help="SQLite file (default: %(default)s)")
    demo.add_argument("--accounts", type=positive_int, default=1000, metavar="N", help="default: %(default)s")
    demo.add_argument(
        "--commands", type=non_negative_int, default=20, metavar="M", help="per account (default: %(default)s)"
    )
    demo.add_argument(
        "--concurrency", type=positive_int, default=200, metavar="C", help="caller tasks (default: %(default)s)"
    )
    demo.add_argument("--seed", type=int, default=None, help="seed for the random commands")
    demo.add_argument("--fresh", action="store_true", help="delete the database file first")
    demo.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    try:
        import actorsrc.cli.demo as demo
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("examples"):
            raise
        print(
            "actorsrc demo needs a source checkout: it runs the bank example from the repository's "
            "examples/ directory, which an installed wheel does not include. Clone the repository "
            "and run it from there (pip install -e .).",
            file=sys.stderr,
        )
        return EXIT_USAGE
    options = demo.DemoOptions(
        db=args.db,
        accounts=args.accounts,
        commands=args.commands,
        concurrency=args.concurrency,
        fresh=args.fresh,
        seed=args.seed,
    )
    return EXIT_OK if demo.run_demo(options) else EXIT_FAILED
