"""Architecture models: how ``switch_mm`` keeps ``mm_cpumask`` and how flushes reach other CPUs.

Each model is one module with the rules of the reference's section 4 in its docstring, and the
kernel files and commits it follows. Each module of this package is scanned (``pkgutil``) and
every ``Arch`` subclass it defines with a ``name`` is registered: ``ARCHES`` maps ``--arch``
names to classes; ``ARCH_MUTANTS`` maps the names of deliberately broken variants of an
architecture's code (``--mutant NAME``, valid with any scheme on the architecture it patches,
``Arch.mutant_of``) to theirs. A run has one mutant at most: a scheme's or an architecture's.
Models from outside the package join the same tables through ``emu.harness.plugins``.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from emu.arch.base import Arch

ARCHES: dict[str, type[Arch]] = {}
ARCH_MUTANTS: dict[str, type[Arch]] = {}


def declared_in(module: ModuleType) -> list[type[Arch]]:
    """The models and arch mutants a module defines (not those it imports), in source order."""
    return [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, Arch) and c.__module__ == module.__name__ and c.name]


def register(cls: type[Arch], key: str | None = None) -> None:
    (ARCH_MUTANTS if cls.mutant_of is not None else ARCHES)[key or cls.name] = cls


def _scan() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name != "base":
            for cls in declared_in(importlib.import_module(f"{__name__}.{info.name}")):
                register(cls)


_scan()


def resolve_arch(arch: str, mutant: str | None = None) -> type[Arch]:
    """The model a run instantiates: the arch mutant if ``mutant`` is one, else the arch."""
    if mutant in ARCH_MUTANTS:
        return ARCH_MUTANTS[mutant]
    return ARCHES[arch]


__all__ = ["ARCHES", "ARCH_MUTANTS", "Arch", "declared_in", "register", "resolve_arch"]
