"""The public face holds: every name the README and the examples import from `actorsrc` is importable from
where they say, every dotted `actorsrc.x.y` the README's prose names exists, and `actorsrc.__all__` is true."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from types import ModuleType

import pytest

import actorsrc

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"

_PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)
_IMPORT_LINE = re.compile(r"^[ \t]*(?:from actorsrc[\w.]* import (?:\([^)]*\)|[^\n]*)|import actorsrc[^\n]*)", re.M)
_DOTTED = re.compile(r"\bactorsrc(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def _actorsrc_imports(source: str, where: str) -> list[tuple[str, str, str]]:
    """(module, name, where) for each `from actorsrc... import name` and `import actorsrc...` in `source`."""
    try:
        tree = ast.parse(source, where)
    except SyntaxError:  # a sketch with `...` in it: its import lines still have to be true
        lines = (match.group(0).strip() for match in _IMPORT_LINE.finditer(source))
        tree = ast.parse("\n".join(lines), where)
    found: list[tuple[str, str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "actorsrc" or node.module.startswith("actorsrc."):
                found.extend((node.module, alias.name, f"{where}:{node.lineno}") for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend(
                (alias.name, "", f"{where}:{node.lineno}")
                for alias in node.names
                if alias.name == "actorsrc" or alias.name.startswith("actorsrc.")
            )
    return found


def _readme_imports() -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    for number, match in enumerate(_PYTHON_BLOCK.finditer(README.read_text(encoding="utf-8")), 1):
        found.extend(_actorsrc_imports(match.group(1), f"README.md python block {number}"))
    return found


def _example_imports() -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    for path in sorted(EXAMPLES.rglob("*.py")):
        found.extend(_actorsrc_imports(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT))))
    return found


def _resolve(dotted: str) -> object:
    """The object `dotted` names, importing submodules on the way (`actorsrc.testing.FaultyStore`)."""
    parts = dotted.split(".")
    target: object = importlib.import_module(parts[0])
    for index, part in enumerate(parts[1:], 1):
        if hasattr(target, part):
            target = getattr(target, part)
        elif isinstance(target, ModuleType):
            target = importlib.import_module(".".join(parts[: index + 1]))
        else:
            raise AttributeError(f"{'.'.join(parts[:index])} has no attribute {part!r}")
    return target


def _assert_importable(module: str, name: str, where: str) -> None:
    try:
        imported = importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"{where}: `{module}` does not import: {exc}")
    if name and not hasattr(imported, name):
        try:
            importlib.import_module(f"{module}.{name}")
        except ImportError:
            pytest.fail(f"{where}: `from {module} import {name}` fails: {module} has no {name!r}")


def test_the_readme_and_the_examples_import_from_actorsrc() -> None:
    # Guards the collectors: if they found nothing, the tests below would pass vacuously.
    readme = _readme_imports()
    assert ("actorsrc", "Runtime") in {(module, name) for module, name, _ in readme}
    assert len({module for module, _, _ in readme}) >= 3
    assert len(_example_imports()) >= 10


@pytest.mark.parametrize(("module", "name", "where"), _readme_imports(), ids=lambda value: str(value))
def test_every_readme_import_works(module: str, name: str, where: str) -> None:
    _assert_importable(module, name, where)


@pytest.mark.parametrize(("module", "name", "where"), _example_imports(), ids=lambda value: str(value))
def test_every_example_import_works(module: str, name: str, where: str) -> None:
    _assert_importable(module, name, where)


@pytest.mark.parametrize("dotted", sorted(set(_DOTTED.findall(README.read_text(encoding="utf-8")))))
def test_every_dotted_name_in_the_readme_exists(dotted: str) -> None:
    try:
        _resolve(dotted)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"the README names `{dotted}`, which does not exist: {exc}")


@pytest.mark.parametrize("name", actorsrc.__all__)
def test_every_name_in_all_exists(name: str) -> None:
    assert hasattr(actorsrc, name), f"actorsrc.__all__ lists {name!r}, which actorsrc does not define"


def test_all_has_no_duplicates_and_covers_the_first_names() -> None:
    assert len(actorsrc.__all__) == len(set(actorsrc.__all__))
    first = {"Aggregate", "App", "Runtime", "SQLiteEventStore", "Projection", "ProcessManager", "EventEnvelope"}
    first |= {"HandlerStatus", "load_state", "stream_history", "replay_projection", "ActorsrcError", "DomainError"}
    assert first <= set(actorsrc.__all__)
