"""x86 up to about 6.12: ``mm_cpumask`` follows the loaded mm, and is not reliable for lazies.

- ``switch_mm_irqs_off`` to an mm sets this CPU's bit; switching away to a different mm clears
  the bit of the mm that was loaded.
- A lazy CPU keeps the old mm loaded (``enter_lazy_tlb`` only marks it lazy).
- The final flush in ``exit_mmap`` (page tables freed) IPIs every CPU in the mask but the
  sender. A lazy target (``flush_tlb_func`` with ``is_lazy``) switches its loaded mm to
  ``init_mm``, which clears its bit, while its ``active_mm`` stays the old mm: the case the
  reference calls "mm_cpumask() not being reliable". A scheme that reads the mask afterwards
  misses that CPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emu.arch.base import Arch
from emu.irq import ipi_function
from emu.layout import INIT_MM

if TYPE_CHECKING:
    from emu.cpu import Cpu

FLUSH_TLB_FUNC = ipi_function("flush_tlb_func", purpose="ipis_flush")


class X86(Arch):
    name = "x86"
    summary = "mask follows the loaded mm; a lazy CPU drops its bit at the exit flush (unreliable)"
    lazy_may_load_init_mm = True

    def __init__(self, cpu: Cpu) -> None:
        super().__init__(cpu)
        cpu.irq.handlers[FLUSH_TLB_FUNC] = self.flush_tlb_func

    def switch_mm_irqs_off(self, prev: int, next: int) -> None:
        irq = self.irq
        if not (irq.disabled or irq.in_irq):
            self.lockdep_assert_irqs_disabled(next)  # reports; the test is inline on this hot path
        a = self.atomics
        real_prev = self.w[self.loaded]
        self.is_lazy = False
        user_next = next != INIT_MM and next != 0
        if real_prev == next:
            # back from lazy to the same mm: the exit flush may have cleared our bit meanwhile
            if user_next and not a.cpumask_test_cpu(self.mm_cpumask(next), self.cpu):
                a.cpumask_set_cpu(self.mm_cpumask(next), self.cpu)
            return
        if user_next:
            a.cpumask_set_cpu(self.mm_cpumask(next), self.cpu)
        self.load_mm(next)
        if real_prev != INIT_MM and real_prev != 0:
            self.leave_mm_cpumask(real_prev)

    def leave_mm_cpumask(self, prev: int) -> None:
        self.atomics.cpumask_clear_cpu(self.mm_cpumask(prev), self.cpu)

    def flush_tlb_mm_exit(self, mm: int) -> None:
        self.c.irq.smp_call_function_many(self.flush_targets(mm), FLUSH_TLB_FUNC, mm, wait=True)

    def flush_targets(self, mm: int) -> list[int]:
        return self.mm_cpumask_cpus(mm)

    def flush_tlb_func(self, mm: int) -> None:
        """The flush IPI's handler: a lazy CPU stops using freed page tables by loading init_mm."""
        self.c.count_lazy_ipi(mm)
        if self.loaded_mm() != mm:
            return
        if self.is_lazy:
            # switching to init_mm is barely slower than a paging-structure flush; active_mm stays
            self.switch_mm_irqs_off(0, INIT_MM)
