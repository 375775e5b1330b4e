"""The ``stress`` package's modules import each other without a circle: the options the commands share
live in ``stress.options``, which no subcommand module needs ``stress.cli`` for."""

from __future__ import annotations

import ast
from pathlib import Path

import stress

PACKAGE = Path(stress.__file__).parent


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package's modules ``path`` imports, at the top or inside a function (a deferred import
    closes a circle all the same: it only hides it until the call)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in modules:
                found.add(node.module)
            # ``from stress import hunt``: the submodule itself
            found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules}
    return found


def graph() -> dict[str, set[str]]:
    modules = {f"stress.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__"} | {"stress"}
    graph = {m: imports_of(PACKAGE / f"{m.removeprefix('stress.') or '__init__'}.py", modules) for m in modules if m != "stress"}
    graph["stress"] = imports_of(PACKAGE / "__init__.py", modules)
    return {m: deps - {m} for m, deps in graph.items()}


def cycle(g: dict[str, set[str]]) -> list[str]:
    """One circle of imports in ``g`` (its modules in order, the first repeated at the end), or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str]:
        state[m] = 1
        path.append(m)
        for d in sorted(g[m]):
            if state.get(d) == 1:
                return path[path.index(d) :] + [d]
            if d not in state and (found := visit(d)):
                return found
        state[m] = 2
        path.pop()
        return []

    for m in sorted(g):
        if m not in state and (found := visit(m)):
            return found
    return []


def test_the_stress_package_has_no_import_cycle() -> None:
    g = graph()
    assert "stress.options" in g["stress.hunt"] and "stress.hunt" in g["stress.cli"], "the graph sees deferred imports"
    assert cycle(g) == [], " -> ".join(cycle(g))


def test_the_cycle_check_finds_a_circle() -> None:
    # as the package was: cli imported the subcommands, and they took cli's option helpers back
    assert cycle({"stress.cli": {"stress.hunt"}, "stress.hunt": {"stress.output", "stress.cli"}, "stress.output": set()}) == [
        "stress.cli",
        "stress.hunt",
        "stress.cli",
    ]
