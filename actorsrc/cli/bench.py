"""`actorsrc bench`: the benchmark harness, which ships in the package as `actorsrc.bench`."""

from __future__ import annotations

import argparse


def add_bench(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from actorsrc.bench.harness import add_arguments

    parser = subparsers.add_parser(
        "bench", help="measure throughput and latency (write, hot, replay, project, saga), optionally against peers"
    )
    add_arguments(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from actorsrc.bench.harness import run

    return run(args)
