"""The lazy-TLB schemes, one per module, and their deliberately broken variants (mutants).

Each module of this package is scanned (``pkgutil``) and every ``Strategy`` subclass it defines
with a ``name`` is registered: a scheme in ``STRATEGIES``, a mutant (``mutant_of`` set) in
``MUTANTS``. A new scheme is one new module here; nothing else names it. Schemes from outside
the package join the same tables through ``emu.harness.plugins``. The mutants that patch an
architecture's code run under any scheme and live with their model (``emu.arch.ARCH_MUTANTS``)."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from emu.strategies.base import Strategy

STRATEGIES: dict[str, type[Strategy]] = {}
MUTANTS: dict[str, type[Strategy]] = {}


def declared_in(module: ModuleType) -> list[type[Strategy]]:
    """The schemes and mutants a module defines (not those it imports), in source order."""
    return [
        c for c in vars(module).values() if isinstance(c, type) and issubclass(c, Strategy) and c.__module__ == module.__name__ and c.name
    ]


def register(cls: type[Strategy], key: str | None = None) -> None:
    (MUTANTS if cls.mutant_of is not None else STRATEGIES)[key or cls.name] = cls


def _scan() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name != "base":
            for cls in declared_in(importlib.import_module(f"{__name__}.{info.name}")):
                register(cls)


_scan()


def resolve(name: str) -> type[Strategy]:
    return STRATEGIES.get(name) or MUTANTS[name]


__all__ = ["MUTANTS", "STRATEGIES", "Strategy", "declared_in", "register", "resolve"]
