"""What every architecture model provides to the generic scheduler and mm code."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from emu.irq import ipi_function
from emu.layout import C_LOADED_MM, INIT_MM, MM_SLOT_MASK, T_MM
from emu.oracle import LOCKDEP, SWITCH_MM_IRQS_ON
from emu.trace import event

if TYPE_CHECKING:
    from emu.cpu import Cpu

EV_SWITCH_MM = event("switch_mm", "switch_mm {mm:a} -> {mm:b}")
EV_TLB_BROADCAST = event("tlb_broadcast", "exit flush of {mm:a} by hardware broadcast (no IPI)")

# The plain final flush: the target flushes its TLB for the mm; nothing about lazy mms.
FLUSH_TLB_MM = ipi_function("flush_tlb_mm_ipi", purpose="ipis_flush")
# A flush of a live mm after munmap: nothing to do with lazy CPUs, so neither useful nor wasted.
FLUSH_TLB_RANGE = ipi_function("flush_tlb_mm_range", purpose="ipis_flush")


class Arch:
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    counters: ClassVar[tuple[str, ...]] = ()
    maintains_mm_cpumask: ClassVar[bool] = True  # False: every mask stays empty (arm64); else a CPU with an mm loaded is in its mask
    flush_by_ipi: ClassVar[bool] = True  # the exit flush interrupts the CPUs in mm_cpumask
    lazy_may_load_init_mm: ClassVar[bool] = False  # a lazy CPU may run on init_mm's tables while active_mm stays

    def __init__(self, cpu: Cpu) -> None:
        self.c = cpu
        self.w = cpu.w
        self.atomics = cpu.atomics
        self.cpu = cpu.cpu
        self.loaded = cpu.layout.cpu(cpu.cpu) + C_LOADED_MM
        self.irq = cpu.irq
        self.cpumask_base, self.cpumask_stride = cpu.layout.cpumask_base, cpu.layout.cpumask_stride
        self.is_lazy = False  # this CPU runs a kernel thread on a borrowed mm
        cpu.irq.handlers[FLUSH_TLB_MM] = self.flush_tlb_mm_ipi
        cpu.irq.handlers[FLUSH_TLB_RANGE] = lambda mm: None

    def loaded_mm(self, cpu: int | None = None) -> int:
        if cpu is None:
            return self.w[self.loaded]
        return self.w[self.c.layout.cpu(cpu) + C_LOADED_MM]

    def load_mm(self, mm: int) -> None:
        """Point the MMU at ``mm``'s page tables (write CR3 / the PID register)."""
        self.c.trace(EV_SWITCH_MM, self.w[self.loaded], mm)
        self.w[self.loaded] = mm

    def mm_cpumask(self, mm: int) -> int:
        return self.cpumask_base + (mm & MM_SLOT_MASK) * self.cpumask_stride  # layout.cpumask(mm), inline

    def mm_cpumask_cpus(self, mm: int) -> list[int]:
        return list(self.atomics.for_each_cpu(self.mm_cpumask(mm), self.c.ncpus))

    def current_mm(self) -> int:
        """``current->mm``: the running task's own mm (0 for a kernel thread)."""
        w = self.w
        return w[self.c.task_base + w[self.c.CURR] * 8 + T_MM]

    @staticmethod
    def is_user_mm(mm: int) -> bool:
        return mm != INIT_MM and mm != 0

    def lockdep_assert_irqs_disabled(self, mm: int) -> None:
        irq = self.irq
        if not (irq.disabled or irq.in_irq):
            self.c.oracle.report(LOCKDEP, mm, SWITCH_MM_IRQS_ON)

    # -- hooks ---------------------------------------------------------------------------------
    def switch_mm_irqs_off(self, prev: int, next: int) -> None:
        """Load ``next`` and keep the mask; every model starts with lockdep_assert_irqs_disabled()."""
        raise NotImplementedError

    def enter_lazy_tlb(self, mm: int) -> None:
        self.is_lazy = True

    def flush_tlb_mm_exit(self, mm: int) -> None:
        """The final full-mm flush in ``exit_mmap``, after the page tables' contents are freed."""
        if self.flush_by_ipi:
            self.c.irq.smp_call_function_many(self.mm_cpumask_cpus(mm), FLUSH_TLB_MM, mm, wait=True)
        else:
            self.c.trace(EV_TLB_BROADCAST, mm)
            self.c.count("tlb_broadcasts")

    def flush_tlb_mm(self, mm: int) -> None:
        """A flush of a live mm (after munmap): every CPU that may cache its entries, by the mask."""
        self.c.count("tlb_flushes")
        if self.flush_by_ipi:
            self.c.irq.smp_call_function_many(self.mm_cpumask_cpus(mm), FLUSH_TLB_RANGE, mm, wait=True)
        else:
            self.c.count("tlb_broadcasts")

    def flush_tlb_mm_ipi(self, mm: int) -> None:
        """A flush IPI's handler: this CPU's TLB entries for ``mm`` go; nothing else changes."""
        self.c.count_lazy_ipi(mm)

    def for_each_possible_lazymm_cpu(self, mm: int) -> Iterable[int]:
        """The CPUs a scanning scheme must look at: every online CPU unless the mask is exact."""
        return self.c.online_cpus()

    def cpu_offline(self) -> None:
        """The arch's hook as a CPU goes down (powerpc clears it from every mm_cpumask)."""
