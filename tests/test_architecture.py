"""The package's shape: no import circle, and every package says what it holds and may import."""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "workbench"


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every workbench module ``name`` imports, at module level or inside functions (a late import is
    still a dependency), except under ``if TYPE_CHECKING:``. ``from ..data import X`` depends on the
    package ``workbench.data`` (its ``__init__``), ``from ..data.base import X`` on that module."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def add(target: str) -> None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] == "workbench":
                    for alias in child.names:
                        add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "workbench":
                        add(alias.name)
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_the_cycle_finder_finds_a_planted_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_sees_late_and_relative_imports():
    graph = import_graph()
    assert "workbench.validation" in graph["workbench.presets"]  # a module-level relative import
    assert "workbench.objectives" in graph["workbench.validation"]  # a late import inside a function
    assert "workbench.objectives" in graph["workbench.training.module"]  # a package, through its __init__


def test_no_import_circle_in_the_workbench():
    assert cycles(import_graph()) == []


def test_the_core_does_not_import_the_layers_above_it():
    graph = import_graph()
    core = ("workbench.config", "workbench.errors", "workbench.atomic", "workbench.models", "workbench.losses",
            "workbench.diagnostics", "workbench.objectives", "workbench.data", "workbench.views", "workbench.masks")
    above = ("workbench.training", "workbench.analysis", "workbench.figures", "workbench.widgets", "workbench.bench",
             "workbench.cli")
    for name, imported in graph.items():
        if name.startswith(core):
            bad = sorted(i for i in imported if i.startswith(above))
            assert not bad, f"{name} imports {bad}"


@pytest.mark.parametrize("package", sorted(p.parent.name for p in ROOT.glob("*/__init__.py")))
def test_every_package_has_a_docstring(package):
    module = importlib.import_module(f"workbench.{package}")
    assert module.__doc__ and len(module.__doc__.split()) >= 15, f"workbench.{package} needs a docstring"
