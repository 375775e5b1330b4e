"""What every architecture model provides to the generic scheduler and mm code."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from emu.layout import C_LOADED_MM, INIT_MM
from emu.trace import event

if TYPE_CHECKING:
    from emu.cpu import Cpu

EV_SWITCH_MM = event("switch_mm", "switch_mm {mm:a} -> {mm:b}")


class Arch:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    counters: ClassVar[tuple[str, ...]] = ()
    flush_by_ipi: ClassVar[bool] = True  # the final exit flush is an IPI (else a hardware broadcast)

    def __init__(self, cpu: Cpu) -> None:
        self.c = cpu
        self.w = cpu.w
        self.atomics = cpu.atomics
        self.cpu = cpu.cpu
        self.loaded = cpu.layout.cpu(cpu.cpu) + C_LOADED_MM
        self.is_lazy = False  # this CPU runs a kernel thread on a borrowed mm

    def loaded_mm(self) -> int:
        return self.w[self.loaded]

    def load_mm(self, mm: int) -> None:
        """Point the MMU at ``mm``'s page tables (write CR3 / the PID register)."""
        self.c.trace(EV_SWITCH_MM, self.w[self.loaded], mm)
        self.w[self.loaded] = mm

    def mm_cpumask(self, mm: int) -> int:
        return self.c.layout.cpumask(mm)

    # -- hooks -----------------------------------------------------------------------------
    def switch_mm_irqs_off(self, prev: int, next: int) -> None:
        raise NotImplementedError

    def enter_lazy_tlb(self, mm: int) -> None:
        self.is_lazy = True

    def flush_tlb_mm_exit(self, mm: int) -> None:
        """The final full-mm flush in ``exit_mmap``, after the page tables' contents are freed."""
        raise NotImplementedError

    def for_each_possible_lazymm_cpu(self, mm: int) -> Iterable[int]:
        """The CPUs a scanning scheme must look at: every online CPU unless the mask is exact."""
        return self.c.online_cpus()

    def cpu_offline(self) -> None:
        """The arch's hook as a CPU goes down (powerpc clears it from every mm_cpumask)."""

    @staticmethod
    def is_user_mm(mm: int) -> bool:
        return mm != INIT_MM and mm != 0
