"""The optional `bench` extra: what `--compare` and `--plot` need beyond actorsrc's own dependencies."""

from __future__ import annotations

INSTALL_BENCH_EXTRA = "pip install 'actorsrc[bench]' (in a checkout: pip install -e '.[bench]')"


class MissingExtra(RuntimeError):
    """A package the asked-for measurement needs is not installed; the message says how to install it."""
