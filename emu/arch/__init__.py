"""Architecture models: how ``switch_mm`` keeps ``mm_cpumask`` and how the exit flush is sent.

Each model is one module with the rules of the reference's section 4 in its docstring. The
registry maps ``--arch`` names to classes.
"""

from __future__ import annotations

from emu.arch.arm64 import Arm64
from emu.arch.base import Arch
from emu.arch.powerpc import Powerpc
from emu.arch.s390 import S390
from emu.arch.x86 import X86
from emu.arch.x86_lazy_mask import X86LazyMask

ARCHES: dict[str, type[Arch]] = {a.name: a for a in (X86, X86LazyMask, Powerpc, Arm64, S390)}

__all__ = ["ARCHES", "Arch"]
