"""`actorsrc bench`: the benchmark harness, which lives in the repository's benchmarks/ package."""

from __future__ import annotations

import argparse
import sys


def add_bench(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bench", help="measure throughput and latency (write, hot, replay, project, saga), optionally against peers"
    )
    try:
        from benchmarks.harness import add_arguments
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("benchmarks"):
            raise
        parser.add_argument("args", nargs=argparse.REMAINDER)  # whatever was asked, the answer is the message
        parser.set_defaults(handler=_missing)
        return
    add_arguments(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from benchmarks.harness import run

    return run(args)


def _missing(args: argparse.Namespace) -> int:
    print(
        "actorsrc bench needs a source checkout: the harness is the repository's benchmarks/ package, which an "
        "installed wheel does not include. Clone the repository and run it from there (pip install -e .).",
        file=sys.stderr,
    )
    return 2
