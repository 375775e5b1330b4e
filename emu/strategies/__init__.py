"""The lazy-TLB schemes, one per module, and their deliberately broken variants (mutants).

Each module of this package is scanned (``pkgutil``) and every ``Strategy`` subclass it defines
with a ``name`` is registered: a scheme in ``STRATEGIES``, a mutant (``mutant_of`` set) in
``MUTANTS``. A new scheme is one new module here; nothing else names it. Schemes from outside
the package join the same tables through ``emu.harness.plugins``. The mutants that patch an
architecture's code run under any scheme and live with their model (``emu.arch.ARCH_MUTANTS``)."""

from __future__ import annotations

import importlib

from emu.kernel.catalogue import Catalogue
from emu.strategies.base import Strategy

STRATEGIES: dict[str, type[Strategy]] = {}
MUTANTS: dict[str, type[Strategy]] = {}
CATALOGUE = Catalogue(Strategy, STRATEGIES, MUTANTS)
declared_in, register = CATALOGUE.declared_in, CATALOGUE.register
CATALOGUE.scan(__path__, lambda m: importlib.import_module(f"{__name__}.{m}"))


def resolve(name: str) -> type[Strategy]:
    return STRATEGIES.get(name) or MUTANTS[name]


__all__ = ["CATALOGUE", "MUTANTS", "STRATEGIES", "Strategy", "declared_in", "register", "resolve"]
