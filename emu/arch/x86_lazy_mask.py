"""x86 from about 6.13: a lazy ``mm_cpumask``, a superset of the CPUs that may use the mm.

- ``switch_mm_irqs_off`` to an mm sets this CPU's bit; switching away clears nothing.
- The exit flush IPIs the CPUs in the mask that have the mm loaded (running it, or lazy on it)
  and, at most once a second per mm, every CPU in the mask so that stale bits are trimmed.
- A target without the mm loaded clears its bit (the only place a bit is cleared); a lazy
  target loads ``init_mm`` but keeps its bit, so a later scan of the mask still finds it.
- So ``for_each_possible_lazymm_cpu`` is the mask here (every other model: online CPUs).
"""

from __future__ import annotations

from collections.abc import Iterable
from time import monotonic_ns

from emu.arch.x86 import X86
from emu.layout import M_ARCH

TRIM_INTERVAL_NS = 1_000_000_000  # mm->context.next_trim_cpumask: once a second


class X86LazyMask(X86):
    name = "x86-lazy-mask"
    summary = "mask is a superset: bits set on switch, cleared only by a flush that finds the mm not loaded"

    def leave_mm_cpumask(self, prev: int) -> None:
        pass  # the bit stays until a flush IPI finds the mm no longer loaded here

    def flush_targets(self, mm: int) -> list[int]:
        next_trim = self.c.layout.mm(mm) + M_ARCH
        now = monotonic_ns()
        if now >= self.w[next_trim]:  # should_trim_cpumask(): IPI every CPU in the mask
            self.w[next_trim] = now + TRIM_INTERVAL_NS
            return self.mm_cpumask_cpus(mm)
        return [c for c in self.mm_cpumask_cpus(mm) if self.loaded_mm(c) == mm]  # should_flush_tlb()

    def flush_tlb_func(self, mm: int) -> None:
        if self.loaded_mm() != mm:
            self.c.count_lazy_ipi(mm)
            self.atomics.cpumask_clear_cpu(self.mm_cpumask(mm), self.cpu)  # a stale bit: trim it
            return
        super().flush_tlb_func(mm)

    def for_each_possible_lazymm_cpu(self, mm: int) -> Iterable[int]:
        """The lazy mask is a superset of the CPUs lazy on the mm: scanning it is enough."""
        return self.mm_cpumask_cpus(mm)
