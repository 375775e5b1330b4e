"""Architecture models: how ``switch_mm`` keeps ``mm_cpumask`` and how the exit flush is sent.

Each model is one module with the rules of the reference's section 4 in its docstring. The
registry maps ``--arch`` names to classes.
"""

from __future__ import annotations

from emu.arch.base import Arch
from emu.arch.x86 import X86

ARCHES: dict[str, type[Arch]] = {a.name: a for a in (X86,)}

__all__ = ["ARCHES", "Arch"]
