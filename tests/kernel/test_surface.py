"""The layers hold: each folder of ``emu`` imports only the layers below it, by any form of import,
and an architecture model or a scheme touches its CPU only through ``emu.kernel.surface.KernelCpu``,
whatever it calls the CPU.

Every import form is seen: ``import a.b``, ``from a import b``, relative imports,
``importlib.import_module("a.b")`` and ``__import__("a.b")`` with a literal name (a name that is
not a literal cannot be checked, and is refused). Imports under ``if TYPE_CHECKING:`` are
dependencies too (docs/house.md); the upward ones that exist today are listed in
``KNOWN_TYPING_ONLY`` (issue 23 removes them), and any other fails.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from emu.kernel.surface import KernelCpu

ROOT = Path(__file__).parent.parent.parent
# bottom up; a layer may import its own and the ones before it (arch, strategies and workload side by side)
LAYERS = {"machine": 0, "checks": 1, "kernel": 2, "arch": 3, "strategies": 3, "workload": 3, "harness": 4, "stress": 5}
PARTS = ("arch", "strategies", "workload")

# Upward imports made for type annotations only. The house forbids them (a lower layer names a
# higher one's type); issue 23 replaced the seven there were with the kernel's protocols
# (emu/kernel/protocols.py), and the list stays empty: any upward import fails.
KNOWN_TYPING_ONLY: set[tuple[str, str]] = set()
# The one module that imports by a name that is not a literal: the loader of parts from outside the
# package (``--strategy FILE:Class``, entry points). It refuses a module of emu or stress (tested).
OUTSIDE_LOADER = "emu/harness/plugins.py"


@dataclass(frozen=True)
class Import:
    modules: tuple[str, ...]  # what it may import, absolute ("" where a dynamic import's name is not a literal)
    line: int
    typing_only: bool  # under ``if TYPE_CHECKING:``
    how: str  # the source of the statement or call


def _package(path: Path, root: Path) -> list[str]:
    """The package a module file is in: ``emu/kernel/cpu.py`` -> ``["emu", "kernel"]``."""
    return list(path.relative_to(root).with_suffix("").parts[:-1])


def _own_submodule(arg: ast.expr | None) -> bool:
    """``f"{__name__}.{...}"``: a submodule of the package itself, as a registry that scans its own package imports."""
    if not isinstance(arg, ast.JoinedStr) or len(arg.values) < 2:
        return False
    head, dot = arg.values[0], arg.values[1]
    return (
        isinstance(head, ast.FormattedValue)
        and isinstance(head.value, ast.Name)
        and head.value.id == "__name__"
        and isinstance(dot, ast.Constant)
        and str(dot.value).startswith(".")
    )


def imports_of(path: Path, root: Path = ROOT) -> list[Import]:
    """Every import in ``path``, by every form, relative ones resolved: ``import a, b`` is ``a`` and
    ``b``; ``from a import b`` is ``a`` and ``a.b`` (``b`` may be a submodule: ``from emu import harness``)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for n in ast.walk(stmt)
    }
    out: list[Import] = []

    def add(modules: list[str], node: ast.AST) -> None:
        out.append(Import(tuple(modules), getattr(node, "lineno", 0), id(node) in typing_only, ast.unparse(node)))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            add([alias.name for alias in node.names], node)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = _package(path, root)
                base = pkg[: len(pkg) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            add([module, *(f"{module}.{alias.name}" for alias in node.names if alias.name != "*")], node)
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in ("import_module", "__import__"):
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    add([arg.value], node)
                elif _own_submodule(arg) and path.name == "__init__.py":
                    add([".".join(_package(path, root))], node)  # a package scanning itself: its own layer, whatever the name
                else:
                    add([""], node)
    return out


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "stress":
        return "stress"
    return parts[1] if parts[0] == "emu" and len(parts) > 1 and parts[1] in LAYERS else None


def _modules(root: Path = ROOT) -> list[tuple[str, Path]]:
    out = []
    for path in sorted((root / "emu").rglob("*.py")) + sorted((root / "stress").glob("*.py")):
        rel = path.relative_to(root).with_suffix("").parts
        layer = "stress" if rel[0] == "stress" else (rel[1] if len(rel) > 2 else None)
        if layer:
            out.append((layer, path))
    return out


def _upward(layer: str, module: str) -> bool:
    target = layer_of(module)
    if layer in PARTS and module.startswith("emu.kernel.cpu"):
        return True  # a part sees the kernel's surface and protocols, never the CPU loop itself
    return target is not None and target != layer and LAYERS[target] >= LAYERS[layer]


def upward_imports(root: Path = ROOT) -> tuple[list[str], set[tuple[str, str]]]:
    """(the run-time upward imports, as messages; the typing-only ones, as (file, module))."""
    wrong: dict[str, None] = {}  # one message per statement, in order
    typing_only = set()
    for layer, path in _modules(root):
        rel = path.relative_to(root).as_posix()
        for imp in imports_of(path, root):
            if "" in imp.modules and rel != OUTSIDE_LOADER:
                wrong[f"{rel}:{imp.line}: {imp.how}: a dynamic import whose name is not a literal cannot be checked"] = None
                continue
            up = [m for m in imp.modules if _upward(layer, m)]
            if not up:
                continue
            if imp.typing_only:
                typing_only.add((rel, up[0]))
            else:
                wrong[f"{rel}:{imp.line}: {imp.how}"] = None
    return list(wrong), typing_only


def test_every_layer_imports_only_the_layers_below_it() -> None:
    wrong, _ = upward_imports()
    assert not wrong, wrong


def test_no_new_upward_import_for_annotations() -> None:
    _, typing_only = upward_imports()
    new = sorted(typing_only - KNOWN_TYPING_ONLY)
    assert not new, f"upward imports under TYPE_CHECKING (the house forbids them: declare a Protocol in the lower layer): {new}"
    gone = sorted(KNOWN_TYPING_ONLY - typing_only)
    assert not gone, f"no longer imported: delete them from KNOWN_TYPING_ONLY: {gone}"


PLANTED_IMPORTS = {
    "import emu.harness.runner": "emu.harness.runner",
    "import emu.harness.runner as r": "emu.harness.runner",
    "from emu.harness.runner import run": "emu.harness.runner",
    "from emu import harness": "emu.harness",
    "from ..harness import runner": "emu.harness",
    "from ..harness.runner import run": "emu.harness.runner",
    "from .. import harness": "emu.harness",
    "import importlib\nimportlib.import_module('emu.harness.runner')": "emu.harness.runner",
    "from importlib import import_module\nimport_module('emu.strategies.refcount')": "emu.strategies.refcount",
    "__import__('emu.harness.config')": "emu.harness.config",
    "if True:\n    def f():\n        import emu.stress_free, emu.harness.parts": "emu.harness.parts",
}


def _plant(tmp_path: Path, layer: str, source: str) -> Path:
    """A module of ``layer`` in a copy of the tree's shape (emu/<layer>/planted.py) holding ``source``."""
    (tmp_path / "emu" / layer).mkdir(parents=True, exist_ok=True)
    (tmp_path / "stress").mkdir(exist_ok=True)
    path = tmp_path / "emu" / layer / "planted.py"
    path.write_text(source + "\n")
    return path


@pytest.mark.parametrize("source", list(PLANTED_IMPORTS))
def test_the_check_sees_every_form_of_an_upward_import(tmp_path: Path, source: str) -> None:
    path = _plant(tmp_path, "kernel", source)
    assert PLANTED_IMPORTS[source] in {m for i in imports_of(path, tmp_path) for m in i.modules}
    wrong, typing_only = upward_imports(tmp_path)
    assert len(wrong) == 1 and wrong[0].startswith("emu/kernel/planted.py:") and not typing_only, wrong


def test_the_check_reports_an_upward_import_for_annotations_apart(tmp_path: Path) -> None:
    _plant(tmp_path, "kernel", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from emu.harness.config import RunConfig")
    wrong, typing_only = upward_imports(tmp_path)
    assert wrong == [] and typing_only == {("emu/kernel/planted.py", "emu.harness.config")}


def test_the_check_refuses_a_dynamic_import_it_cannot_read_and_passes_downward_ones(tmp_path: Path) -> None:
    _plant(tmp_path, "kernel", "import importlib\nname = 'emu.harness'\nimportlib.import_module(name)")
    wrong, _ = upward_imports(tmp_path)
    assert len(wrong) == 1 and "not a literal" in wrong[0]
    # a package's __init__ that imports its own submodules by a name it builds stays in its layer; anywhere else it is refused
    scan = "import importlib\nfor m in ('a', 'b'):\n    importlib.import_module(f'{__name__}.{m}')\n"
    (tmp_path / "emu" / "kernel" / "planted.py").unlink()
    (tmp_path / "emu" / "kernel" / "scanned").mkdir()
    (tmp_path / "emu" / "kernel" / "scanned" / "__init__.py").write_text(scan)
    assert upward_imports(tmp_path) == ([], set())
    (tmp_path / "emu" / "kernel" / "scanned" / "mod.py").write_text(scan)
    wrong, _ = upward_imports(tmp_path)
    assert len(wrong) == 1 and wrong[0].startswith("emu/kernel/scanned/mod.py:") and "not a literal" in wrong[0]
    (tmp_path / "emu" / "kernel" / "scanned" / "mod.py").unlink()
    _plant(
        tmp_path,
        "kernel",
        "import emu.machine.layout\nfrom ..checks import oracle\nfrom . import mm\nfrom emu.kernel.surface import KernelCpu",
    )
    assert upward_imports(tmp_path) == ([], set())


def test_a_part_may_not_import_the_cpu_loop(tmp_path: Path) -> None:
    _plant(tmp_path, "strategies", "from ..kernel import cpu")
    wrong, _ = upward_imports(tmp_path)
    assert len(wrong) == 1 and "from ..kernel import cpu" in wrong[0], wrong


# -- what a scheme or an arch model uses of its CPU ------------------------------------------------


def _is_cpu_annotation(ann: ast.expr | None) -> bool:
    return ann is not None and "KernelCpu" in ast.unparse(ann)


def _cpu_self_attributes(trees: list[ast.Module]) -> set[str]:
    """The attributes a part keeps its CPU in: ``self.X = p`` where ``p`` is a parameter annotated
    ``KernelCpu`` (whatever either is called), in any class of the parts (a base class's too)."""
    found: set[str] = set()
    for tree in trees:
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            params = {a.arg for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs] if _is_cpu_annotation(a.annotation)}
            for node in ast.walk(fn):
                if isinstance(node, (ast.Assign, ast.AnnAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for t, v in _pairs(targets, node.value):
                        if _is_self_attr(t) and (
                            isinstance(v, ast.Name) and v.id in params or _is_cpu_annotation(getattr(node, "annotation", None))
                        ):
                            found.add(t.attr)  # type: ignore[attr-defined]
    return found


def _is_self_attr(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"


def _pairs(targets: Sequence[ast.expr], value: ast.expr | None) -> list[tuple[ast.expr, ast.expr]]:
    """(target, value) pairs of an assignment, tuples unpacked element by element."""
    out = []
    for t in targets:
        if isinstance(t, ast.Tuple) and isinstance(value, ast.Tuple) and len(t.elts) == len(value.elts):
            out += list(zip(t.elts, value.elts, strict=True))
        elif value is not None:
            out.append((t, value))
    return out


def cpu_attributes(tree: ast.Module, cpu_attrs: set[str]) -> set[str]:
    """Attributes used on the CPU in a module: on ``self.X`` (X one of ``cpu_attrs``), on a
    parameter annotated ``KernelCpu``, and on any local name bound to either (``c = self.c``,
    ``box, w = self.c, self.w``), under whatever names; ``getattr(cpu, "name")`` too."""
    used: set[str] = set()
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        args = fn.args
        aliases = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs] if _is_cpu_annotation(a.annotation)}

        def is_cpu(e: ast.expr, aliases: set[str] = aliases) -> bool:
            return (isinstance(e, ast.Name) and e.id in aliases) or (_is_self_attr(e) and e.attr in cpu_attrs)  # type: ignore[attr-defined]

        body = fn.body if isinstance(fn.body, list) else [fn.body]
        for _ in range(2):  # an alias of an alias, bound later in the text than its use in a loop
            for stmt in body:
                for node in ast.walk(stmt):
                    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)):
                        targets = [node.target] if not isinstance(node, ast.Assign) else node.targets
                        for t, v in _pairs(targets, node.value):
                            if isinstance(t, ast.Name) and (is_cpu(v) or _is_cpu_annotation(getattr(node, "annotation", None))):
                                aliases.add(t.id)
        for stmt in body:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Attribute) and is_cpu(node.value):
                    used.add(node.attr)
                elif isinstance(node, ast.Call) and _reflects_on(node, is_cpu):
                    name = node.args[1] if len(node.args) > 1 else None
                    literal = isinstance(name, ast.Constant) and isinstance(name.value, str)
                    used.add(name.value if literal else "<getattr, not a literal>")  # type: ignore[union-attr]
    return used


def _reflects_on(node: ast.AST, is_cpu: Callable[[ast.expr], bool]) -> bool:
    """``getattr(cpu, ...)``, ``setattr``, ``hasattr`` on the CPU."""
    f = getattr(node, "func", None)
    return (
        isinstance(node, ast.Call)
        and isinstance(f, ast.Name)
        and f.id in ("getattr", "setattr", "hasattr")
        and bool(node.args)
        and is_cpu(node.args[0])
    )


def surface_breaches(paths: list[Path]) -> dict[str, list[str]]:
    allowed = set(KernelCpu.__annotations__) | {n for n in vars(KernelCpu) if not n.startswith("_")}
    trees = {p: ast.parse(p.read_text()) for p in paths}
    attrs = _cpu_self_attributes(list(trees.values()))
    out = {}
    for p, tree in trees.items():
        extra = sorted(cpu_attributes(tree, attrs) - allowed)
        if extra:
            out[p.name] = extra
    return out


def _part_files() -> list[Path]:
    return [p for folder in ("arch", "strategies") for p in sorted((ROOT / "emu" / folder).glob("*.py"))]


def test_schemes_and_arch_models_touch_the_cpu_only_through_its_surface() -> None:
    breaches = surface_breaches(_part_files())
    assert not breaches, f"beyond emu.kernel.surface.KernelCpu: {breaches}"


def test_the_walk_finds_the_cpu_the_parts_keep() -> None:
    """It must find something to check: the CPU attribute the base classes keep, and its uses."""
    trees = [ast.parse(p.read_text()) for p in _part_files()]
    attrs = _cpu_self_attributes(trees)
    assert "c" in attrs
    used = set().union(*(cpu_attributes(t, attrs) for t in trees))
    assert {"atomics", "irq", "w", "layout", "count"} <= used, used


PLANTED_SURFACE = {
    "renamed parameter": "    def __init__(self, machine: KernelCpu) -> None:\n        self.box = machine\n"
    "    def f(self) -> None:\n        self.box.runqueue.clear()",
    "local alias": "    def f(self) -> None:\n        m = self.c\n        m.sleepers.clear()",
    "alias of an alias": "    def f(self) -> None:\n        a, b = self.c, 1\n        z = a\n        z.kthread_mm.clear()",
    "annotated helper": "    def f(self, other: KernelCpu) -> None:\n        other.schedule()",
    "getattr": "    def f(self) -> None:\n        getattr(self.c, 'going_down')",
    "walrus": "    def f(self) -> None:\n        if (q := self.c):\n            q.drain_inbox()",
}


@pytest.mark.parametrize("how", list(PLANTED_SURFACE))
def test_the_surface_check_is_not_fooled_by_what_the_cpu_is_called(tmp_path: Path, how: str) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(f"class Planted(Base):\n{PLANTED_SURFACE[how]}\n")
    breaches = surface_breaches([*_part_files(), planted])
    assert list(breaches) == ["planted.py"] and len(breaches["planted.py"]) == 1, breaches
