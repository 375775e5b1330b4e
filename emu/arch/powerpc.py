"""powerpc book3s64 (radix): ``mm_cpumask`` records every CPU that has used the mm.

- ``switch_mm_irqs_off`` sets this CPU's bit on its first switch to the mm; switching away
  clears nothing, so the mask only grows while the mm lives.
- Bits are cleared only by ``exit_lazy_flush_tlb`` trimming (the shoot-lazies exit flush, on a
  CPU that no longer runs the mm) and by ``cpu_offline`` (the CPU leaves every mask).
- The final full-mm flush is modelled as an IPI to every CPU in the mask but the sender, as the
  reference describes it. (The kernel's radix code uses a tlbie broadcast for fullmm unless
  tlbie is disabled; with ``CONFIG_MMU_LAZY_TLB_SHOOTDOWN`` it IPIs the mask anyway, through
  ``exit_flush_lazy_tlbs``, which is what the scheme piggybacks on.)
- When the scheme selects ``MMU_LAZY_TLB_SHOOTDOWN`` and the radix optimisation is on, the
  exit flush is the scheme's ``exit_flush_lazy_tlbs``: each target leaves the mm for init_mm
  if it is lazy on it and trims itself from the mask.
"""

from __future__ import annotations

from emu.arch.base import Arch
from emu.layout import M_STATE, MM_FREED, MM_WORDS


class Powerpc(Arch):
    name = "powerpc"
    summary = "mask set on first use, cleared only by exit-flush trimming and CPU offline"

    def switch_mm_irqs_off(self, prev: int, next: int) -> None:
        self.lockdep_assert_irqs_disabled(next)
        self.is_lazy = False
        if self.is_user_mm(next) and not self.atomics.cpumask_test_cpu(self.mm_cpumask(next), self.cpu):
            self.atomics.cpumask_set_cpu(self.mm_cpumask(next), self.cpu)  # inc_mm_active_cpus
        if self.loaded_mm() != next:
            self.load_mm(next)

    def flush_tlb_mm_exit(self, mm: int) -> None:
        s = self.c.strategy
        if getattr(s, "MMU_LAZY_TLB_SHOOTDOWN", False) and self.c.cfg.radix_exit_shoot:
            s.exit_flush_lazy_tlbs(mm)  # type: ignore[attr-defined]
        else:
            super().flush_tlb_mm_exit(mm)

    def flush_tlb_mm(self, mm: int) -> None:
        s = self.c.strategy
        if getattr(s, "MMU_LAZY_TLB_SHOOTDOWN", False) and self.c.cfg.radix_exit_shoot:
            self.c.count("tlb_flushes")
            s.radix_flush_tlb_mm(mm)  # type: ignore[attr-defined]
        else:
            super().flush_tlb_mm(mm)

    def cpu_offline(self) -> None:
        """``cleanup_cpu_mmu_context``: this CPU leaves every mm's cpumask."""
        lay, w = self.c.layout, self.w
        for slot in range(1, lay.nmm):
            if w[lay.mm_base + slot * MM_WORDS + M_STATE] != MM_FREED:
                self.atomics.cpumask_clear_cpu(lay.cpumask(slot), self.cpu)
