"""Where the cluster tests find NATS: ACTORSRC_TEST_NATS (set by .ci/with-nats), and a private server.

Without it they are skipped locally, and fail under CI=true: CI must never skip them silently.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

NATS_URL = os.environ.get("ACTORSRC_TEST_NATS")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_nats() -> str:
    if NATS_URL:
        return NATS_URL
    if _in_ci():
        pytest.fail("ACTORSRC_TEST_NATS is not set under CI: run the tests through .ci/with-nats")
    pytest.skip("no NATS: run `bash .ci/with-postgres bash .ci/with-nats .venv/bin/pytest` to include these tests")


def nats_server_binary() -> str:
    found = os.environ.get("ACTORSRC_NATS_SERVER") or shutil.which("nats-server")
    if found:
        return found
    if _in_ci():
        pytest.fail("nats-server is not installed under CI: .ci/with-nats installs it")
    pytest.skip("nats-server is not installed (apt-get install -y nats-server)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def private_nats_server(*, jetstream: bool = True, port: int | None = None) -> Iterator[str]:
    """A NATS server of the test's own on 127.0.0.1 (to stop, restart, or run without JetStream)."""
    binary = nats_server_binary()
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="actorsrc-nats-") as store_dir:
        args = [binary, "-a", "127.0.0.1", "-p", str(port), "-sd", store_dir]
        if jetstream:
            args.insert(1, "-js")
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"nats-server did not start on 127.0.0.1:{port}") from None
                    time.sleep(0.05)
            yield f"nats://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=10)
