"""No module of `actorsrc` imports another in a cycle, counting imports under `TYPE_CHECKING` and
inside functions: a cycle ties pieces together that the runtime must be able to move apart."""

from __future__ import annotations

import ast
from pathlib import Path

import actorsrc

PACKAGE = "actorsrc"
ROOT = Path(actorsrc.__file__).parent


def module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, name: str, modules: set[str]) -> set[str]:
    """The package's modules `path` imports, anywhere in its text (a package counts as its `__init__`).

    Only the module named counts: `from actorsrc.store.base import X` depends on `store.base`, not on what
    the packages above it re-export, though Python runs their `__init__` first."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from a import b`: the submodule `a.b` if there is one, else the module `a` that defines `b`.
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else base)
    found.discard(name)
    return found & modules


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in ROOT.rglob("*.py")}
    modules = set(paths)
    return {name: imported_modules(path, name, modules) for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def edges_within(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    members = set(component)
    return [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]


def test_the_graph_sees_the_package() -> None:
    graph = import_graph()
    assert "actorsrc.runtime.actor" in graph
    assert "actorsrc.runtime.outcome" in graph["actorsrc.runtime.actor"]


def test_cycles_are_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_another_in_a_cycle() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles in actorsrc:\n" + "\n".join(
        f"- {', '.join(component)}: {'; '.join(edges_within(graph, component))}" for component in found
    )
