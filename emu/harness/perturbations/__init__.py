"""The perturbations: one module each, found by scanning this package (as ``emu.strategies`` and
``emu.arch`` are); each declares itself in one ``PerturbationKind`` subclass (``base.py``). The
flags, the configuration checks, the events of both modes and the matrix hunt's columns are
derived from these declarations; ``register`` adds one from elsewhere (a test, a plug-in)."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from types import ModuleType

from emu.harness.perturbations.base import PerturbationKind

KINDS: dict[str, type[PerturbationKind]] = {}


def register(cls: type[PerturbationKind]) -> type[PerturbationKind]:
    if not cls.name:
        raise ValueError(f"{cls.__qualname__}: a perturbation needs a name")
    KINDS[cls.name] = cls
    return cls


def _declared(mod: ModuleType) -> None:
    for obj in vars(mod).values():
        if isinstance(obj, type) and issubclass(obj, PerturbationKind) and obj is not PerturbationKind and obj.__module__ == mod.__name__:
            register(obj)


def _scan() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            _declared(importlib.import_module(f"{__name__}.{info.name}"))


def load(path: str) -> None:
    """The perturbations declared in one file outside the package (a test's, a developer's)."""
    name = f"_lazytlb_perturbation_{Path(path).stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"'{path}': not a Python file")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    _declared(mod)


def kinds() -> list[type[PerturbationKind]]:
    """Every perturbation, in the order their events go at one moment (then by name)."""
    return sorted(KINDS.values(), key=lambda k: (k.order, k.name))


def enabled(cfg: object) -> list[type[PerturbationKind]]:
    return [k for k in kinds() if k.enabled(cfg)]


_scan()

__all__ = ["KINDS", "PerturbationKind", "enabled", "kinds", "load", "register"]
