"""A `main` for `actorsrc.cores.run` in the launcher test: a runtime on cores that records its pid per
part (`<dir>/pid-<part>`) and then runs until SIGTERM (which `run` turns into a clean stop)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from actorsrc import Runtime
from actorsrc.cores import Cores
from examples.bank import account


async def serve(directory: Path) -> None:
    async with Runtime.for_cores(Cores(directory / "parts", 2), [account]) as runtime:
        (directory / f"pid-{runtime.cores_part}").write_text(str(os.getpid()))
        await asyncio.Event().wait()


def main() -> None:
    asyncio.run(serve(Path(os.environ["CORES_TEST_DIR"])))


if __name__ == "__main__":
    from actorsrc.cores import run

    codes = run(2, main)
    sys.exit(0 if all(code == 0 for code in codes.values()) else 1)
