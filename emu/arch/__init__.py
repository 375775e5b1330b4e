"""Architecture models: how ``switch_mm`` keeps ``mm_cpumask`` and how flushes reach other CPUs.

Each model is one module with the rules of the reference's section 4 in its docstring, and the
kernel files and commits it follows. ``ARCHES`` maps ``--arch`` names to classes;
``ARCH_MUTANTS`` maps the names of deliberately broken variants of an architecture's code
(``--mutant NAME``, valid with any scheme on the architecture it patches, ``Arch.mutant_of``)
to theirs. A run has one mutant at most: a scheme's or an architecture's.
"""

from __future__ import annotations

from emu.arch.arm64 import Arm64
from emu.arch.base import Arch
from emu.arch.loongarch import Loongarch, LoongarchDropForgetsLazy
from emu.arch.powerpc import Powerpc, PowerpcExitIrqsEnabled, PowerpcTrimVsKthread
from emu.arch.riscv import Riscv, RiscvTrim, RiscvTrimForgetsLazy
from emu.arch.s390 import S390
from emu.arch.x86 import X86
from emu.arch.x86_lazy_mask import X86LazyMask, X86LazyMaskSwitchNoMb

ARCHES: dict[str, type[Arch]] = {a.name: a for a in (X86, X86LazyMask, Powerpc, Arm64, S390, Riscv, RiscvTrim, Loongarch)}
ARCH_MUTANTS: dict[str, type[Arch]] = {
    a.name: a
    for a in (
        PowerpcExitIrqsEnabled,
        PowerpcTrimVsKthread,
        X86LazyMaskSwitchNoMb,
        RiscvTrimForgetsLazy,
        LoongarchDropForgetsLazy,
    )
}


def resolve_arch(arch: str, mutant: str | None = None) -> type[Arch]:
    """The model a run instantiates: the arch mutant if ``mutant`` is one, else the arch."""
    if mutant in ARCH_MUTANTS:
        return ARCH_MUTANTS[mutant]
    return ARCHES[arch]


__all__ = ["ARCHES", "ARCH_MUTANTS", "Arch", "resolve_arch"]
