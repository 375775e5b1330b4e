"""The layers hold: each folder of ``emu`` imports only the layers below it at run time, and an
architecture model or a scheme touches its CPU only through ``emu.kernel.surface.KernelCpu``."""

from __future__ import annotations

import ast
from pathlib import Path

from emu.kernel.surface import KernelCpu

ROOT = Path(__file__).parent.parent.parent
# bottom up; a layer may import its own and the ones before it (arch, strategies and workload side by side)
LAYERS = {"machine": 0, "checks": 1, "kernel": 2, "arch": 3, "strategies": 3, "workload": 3, "harness": 4, "stress": 5}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "stress":
        return "stress"
    return parts[1] if parts[0] == "emu" and len(parts) > 1 and parts[1] in LAYERS else None


def _runtime_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)
    }
    return [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and id(n) not in typing_only]


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted((ROOT / "emu").rglob("*.py")) + sorted((ROOT / "stress").glob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("").parts
        layer = "stress" if rel[0] == "stress" else (rel[1] if len(rel) > 2 else None)
        if layer:
            out.append((layer, path))
    return out


def test_every_layer_imports_only_the_layers_below_it() -> None:
    wrong = []
    for layer, path in _modules():
        for module in _runtime_imports(path):
            target = _layer(module)
            if target and target != layer and LAYERS[target] >= LAYERS[layer]:
                wrong.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not wrong, wrong


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text(
        "from typing import TYPE_CHECKING\nfrom emu.harness.runner import run\nif TYPE_CHECKING:\n    from emu.kernel.cpu import Cpu\n"
    )
    assert _runtime_imports(f) == ["typing", "emu.harness.runner"]


def _cpu_attributes(path: Path) -> set[str]:
    """Attributes read on the CPU object in a scheme or arch file: ``self.c.X``, and ``cpu.X`` or
    ``c.X`` where ``cpu``/``c`` is the CPU (the constructor's argument, or ``c = self.c``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        v = node.value
        if (
            isinstance(v, ast.Attribute)
            and isinstance(v.value, ast.Name)
            and v.value.id == "self"
            and v.attr == "c"
            or isinstance(v, ast.Name)
            and v.id in ("cpu", "c")
        ):
            found.add(node.attr)
    return found


def test_schemes_and_arch_models_touch_the_cpu_only_through_its_surface() -> None:
    allowed = set(KernelCpu.__annotations__) | {n for n in vars(KernelCpu) if not n.startswith("_")}
    for folder in ("arch", "strategies"):
        for path in sorted((ROOT / "emu" / folder).glob("*.py")):
            extra = _cpu_attributes(path) - allowed
            assert not extra, f"{path.relative_to(ROOT)} uses {sorted(extra)} of its CPU, beyond emu.kernel.surface.KernelCpu"
            text = path.read_text()
            assert "emu.kernel.cpu" not in text, f"{path.relative_to(ROOT)} names emu.kernel.cpu: use emu.kernel.surface"
