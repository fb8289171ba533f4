"""A `main` for `actorsrc.cores.run` in the launcher tests: a runtime on cores that records its pid per
part (`<dir>/pid-<part>`) and then runs until SIGTERM (which `run` turns into a clean stop). The launcher
prints the exit codes by part as JSON. ``CORES_TEST_STUBBORN=<part>``: that part's process ignores
SIGTERM; ``CORES_TEST_GRACE``: the launcher's `stop_grace`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from actorsrc import Runtime
from actorsrc.cores import Cores
from examples.bank import account


async def serve(directory: Path) -> None:
    if os.environ.get("CORES_TEST_STUBBORN") == str(os.environ.get("ACTORSRC_CORES_PART")):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # this part's process will not stop when asked
    async with Runtime.for_cores(Cores(directory / "parts", 2), [account]) as runtime:
        # Written aside, then renamed: the test never reads a file that exists but is still empty.
        draft = directory / f".pid-{runtime.cores_part}.{os.getpid()}"
        draft.write_text(str(os.getpid()))
        draft.rename(directory / f"pid-{runtime.cores_part}")
        await asyncio.Event().wait()


def main() -> None:
    asyncio.run(serve(Path(os.environ["CORES_TEST_DIR"])))


if __name__ == "__main__":
    from actorsrc.cores import run

    codes = run(2, main, stop_grace=float(os.environ.get("CORES_TEST_GRACE", "30")))
    print(json.dumps({str(part): code for part, code in codes.items()}), flush=True)
    sys.exit(0 if all(code == 0 for code in codes.values()) else 1)
