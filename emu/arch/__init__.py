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

from emu.arch.base import Arch
from emu.kernel.catalogue import Catalogue

ARCHES: dict[str, type[Arch]] = {}
ARCH_MUTANTS: dict[str, type[Arch]] = {}
CATALOGUE = Catalogue(Arch, ARCHES, ARCH_MUTANTS)
declared_in, register = CATALOGUE.declared_in, CATALOGUE.register
CATALOGUE.scan(__path__, lambda m: importlib.import_module(f"{__name__}.{m}"))


def resolve_arch(arch: str, mutant: str | None = None) -> type[Arch]:
    """The model a run instantiates: the arch mutant if ``mutant`` is one, else the arch."""
    if mutant in ARCH_MUTANTS:
        return ARCH_MUTANTS[mutant]
    return ARCHES[arch]


__all__ = ["ARCHES", "ARCH_MUTANTS", "CATALOGUE", "Arch", "declared_in", "register", "resolve_arch"]
