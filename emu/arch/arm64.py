"""arm64: ``mm_cpumask`` is never maintained, and TLB invalidation is broadcast in hardware.

Models arch/arm64/include/asm/mmu_context.h and asm/tlbflush.h as of v6.13, where the mask has
not been kept since 38d96287504a "arm64: mm: kill mm_cpumask usage" (2016):

- ``switch_mm`` loads the new ASID/TTBR (``check_and_switch_context``) and touches no mask:
  every mask stays empty. ``enter_lazy_tlb`` is the generic no-op.
- Every flush, the final one in ``exit_mmap`` included, is a broadcast TLBI (inner shareable)
  instruction: no IPI, so nothing on another CPU notices that the mm is going away. It is
  counted as ``tlb_broadcasts``.
- A scheme that relies on the mask to find lazy CPUs finds none (bug B1); a scanning scheme
  must look at every online CPU.

Interpretation: the ASID allocator's own bookkeeping (rollover, ``active_asids``) is not modelled;
it never decides which CPUs a flush reaches.
"""

from __future__ import annotations

from emu.arch.base import Arch


class Arm64(Arch):
    name = "arm64"
    source = "arch/arm64/include/asm/mmu_context.h and asm/tlbflush.h as of v6.13"
    memory_model = "weak"
    summary = "mask never maintained (always empty); every flush is a hardware broadcast, no IPI"
    maintains_mm_cpumask = False
    flush_relies_on_mask = False

    def switch_mm_irqs_off(self, prev: int, next: int) -> None:
        self.lockdep_assert_irqs_disabled(next)
        if self.loaded_mm() != next:
            self.load_mm(next)
