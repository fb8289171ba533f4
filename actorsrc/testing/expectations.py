"""Readable failure messages for the testkits: expected against actual, with a diff of the lists."""

from __future__ import annotations

import difflib
import pprint
from collections.abc import Callable, Sequence
from typing import Any


def show(value: object) -> str:
    """A value as the messages print it: its repr, wrapped at 100 columns."""
    return pprint.pformat(value, width=100, sort_dicts=False)


def _lines(items: Sequence[Any], render: Callable[[Any], str]) -> list[str]:
    return [line for item in items for line in render(item).splitlines()] or ["(none)"]


def list_mismatch(
    what: str, expected: Sequence[Any], actual: Sequence[Any], render: Callable[[Any], str] = show
) -> str | None:
    """None if the lists are equal, else a message with both lists and a line diff (- expected, + actual)."""
    if list(expected) == list(actual):
        return None
    expected_lines, actual_lines = _lines(expected, render), _lines(actual, render)
    diff = difflib.ndiff(expected_lines, actual_lines)
    body = "\n".join(f"    {line}" for line in diff if not line.startswith("?"))
    return (
        f"{what}: expected {len(expected)}, got {len(actual)}\n"
        "  expected:\n" + "\n".join(f"    {line}" for line in expected_lines) + "\n"
        "  actual:\n" + "\n".join(f"    {line}" for line in actual_lines) + "\n"
        "  diff (- expected, + actual):\n" + body
    )


def value_mismatch(what: str, expected: object, actual: object) -> str | None:
    """None if the values are equal, else a message showing both and a line diff."""
    if expected == actual:
        return None
    expected_lines, actual_lines = show(expected).splitlines(), show(actual).splitlines()
    diff = "\n".join(f"    {line}" for line in difflib.ndiff(expected_lines, actual_lines) if not line.startswith("?"))
    return f"{what}:\n  expected: {show(expected)}\n  actual:   {show(actual)}\n  diff (- expected, + actual):\n{diff}"
