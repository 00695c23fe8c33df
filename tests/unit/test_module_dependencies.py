"""The package layering of docs/DESIGN.md §2, checked on the source: `history` imports neither `nexus` nor
`frontend`, `persistence` imports nothing above it, and no module of `history` imports (even for type checking
only) a module that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _imports(package: str) -> dict[str, set[str]]:
    """Module -> the tempyral modules it imports (at any level of the file, TYPE_CHECKING blocks included)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((SRC / package.replace(".", "/")).glob("*.py")):
        module = f"{package}.{path.stem}"
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tempyral"):
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name.startswith("tempyral"))
        graph[module] = found
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph[module]):
            if target not in graph:
                continue
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[module] = 2
        return None

    for module in graph:
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


def test_history_has_no_import_cycle() -> None:
    assert _cycle(_imports("tempyral.history")) is None


def test_history_depends_on_neither_nexus_nor_frontend() -> None:
    offending = {
        module: sorted(t for t in targets if t.startswith(("tempyral.nexus", "tempyral.frontend", "tempyral.config")))
        for module, targets in _imports("tempyral.history").items()
    }
    assert {m: t for m, t in offending.items() if t} == {}


def test_persistence_depends_on_nothing_above_it() -> None:
    above = ("tempyral.history", "tempyral.nexus", "tempyral.frontend", "tempyral.namespace", "tempyral.visibility")
    offending = {
        module: sorted(t for t in targets if t.startswith(above))
        for module, targets in _imports("tempyral.persistence").items()
    }
    assert {m: t for m, t in offending.items() if t} == {}


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
