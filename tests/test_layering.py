"""The package's layers, read from its source with `ast` (imports anywhere in a module's text count,
under `TYPE_CHECKING` and inside functions too):

- the read side (`actorsrc.readmodel`) imports nothing from the write side (`actorsrc.store`): what both
  need lives in the neutral `actorsrc.sql`;
- no module imports a private name (`_x`) from another module of the package;
- the domain, the stored records and the codec import no database driver and no anyio: a domain's code
  and its events can be loaded, tested and sent between processes without the runtime's machinery.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import actorsrc

PACKAGE = "actorsrc"
ROOT = Path(actorsrc.__file__).parent
DRIVERS_AND_ANYIO = ("aiosqlite", "sqlite3", "asyncpg", "psycopg", "psycopg2", "anyio")
PURE = ("actorsrc.domain", "actorsrc.records", "actorsrc.codec")


def module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def imports(path: Path, name: str) -> Iterator[tuple[str, list[str], int]]:
    """(module imported, names imported from it, line) for every import in `path`, relative ones resolved."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, [alias.name for alias in node.names], node.lineno


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_the_walk_sees_imports() -> None:
    found = {module for module, _, _ in imports(modules()["actorsrc.readmodel.sqlite"], "actorsrc.readmodel.sqlite")}
    assert "actorsrc.sql.encoding" in found
    assert is_private("_MAX")
    assert not is_private("__version__")
    assert not is_private("MAX")
    assert {"actorsrc.records", "actorsrc.errors"} <= reached("actorsrc.codec", modules())


def test_the_read_side_imports_nothing_from_the_write_side() -> None:
    found = [
        f"{name}:{line} imports {module}"
        for name, path in modules().items()
        if within(name, "actorsrc.readmodel")
        for module, _, line in imports(path, name)
        if within(module, "actorsrc.store")
    ]
    assert not found, "actorsrc.readmodel must not import actorsrc.store (use actorsrc.sql):\n" + "\n".join(found)


def test_no_module_imports_a_private_name_from_another() -> None:
    found = [
        f"{name}:{line} imports {private} from {module}"
        for name, path in modules().items()
        for module, names, line in imports(path, name)
        if within(module, PACKAGE) and module != name
        for private in names
        if is_private(private)
    ]
    assert not found, "private names imported across modules:\n" + "\n".join(found)


def reached(start: str, every: dict[str, Path]) -> set[str]:
    """The package's modules `start` imports, directly or through others (a package counts as its
    `__init__`; `from a import b` counts the submodule `a.b` if there is one, else `a`)."""
    seen = {start}
    todo = [start]
    while todo:
        name = todo.pop()
        for module, names, _ in imports(every[name], name):
            targets = [f"{module}.{n}" if f"{module}.{n}" in every else module for n in names] or [module]
            for target in targets:
                if target in every and target not in seen:
                    seen.add(target)
                    todo.append(target)
    return seen


def test_domain_records_and_codec_import_no_driver_and_no_anyio() -> None:
    every = modules()
    found = [
        f"{name} (through {via}:{line}) imports {module}"
        for name in PURE
        for via in sorted(reached(name, every))
        for module, _, line in imports(every[via], via)
        if any(within(module, banned) for banned in DRIVERS_AND_ANYIO)
    ]
    assert not found, "the domain, records and codec must stay free of drivers and anyio:\n" + "\n".join(found)
