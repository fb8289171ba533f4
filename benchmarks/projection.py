"""Projection catch-up throughput and end-to-end lag, on SQLite (the measurements of
`actorsrc bench project`, in `actorsrc.bench.project`, without the harness's report).

    python -m benchmarks.projection --events 1000000 --lag-seconds 10 --rate 2000

catch-up: E events (bank credits over 1,000 accounts) are written first, then a runtime starts with a
projection that upserts a balance per event into an SQLite read model; the figure is events/s until
its checkpoint reaches the end of the log.
lag: commands go in at a steady rate; for each, the time from its reply (events durable) until the
projection has applied them (`wait_for` returns): median and p99.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import anyio
import structlog

from actorsrc.bench.project import catch_up_sqlite, lag_sqlite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--lag-seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=2000.0, help="commands/s during the lag measurement")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    with tempfile.TemporaryDirectory() as tmp:
        result = {
            "catch_up": anyio.run(catch_up_sqlite, Path(tmp), args.events),
            "lag": anyio.run(lag_sqlite, Path(tmp), args.lag_seconds, args.rate),
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    c, g = result["catch_up"], result["lag"]
    print(f"catch-up: {c['events']:,.0f} events in {c['seconds']:.2f} s = {c['events_per_second']:,.0f} events/s")
    print(
        f"lag at {g['rate_per_second']:,.0f} commands/s ({g['commands']:,.0f} commands): "
        f"p50 {g['lag_p50_ms']:.1f} ms, p99 {g['lag_p99_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
