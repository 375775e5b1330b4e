"""x86 from v6.14: a lazily updated ``mm_cpumask``, a superset of the CPUs with the mm *loaded*.

Models arch/x86/mm/tlb.c with 209954cbc7d0 "x86/mm/tlb: Update mm_cpumask lazily", 6db2526c1d69
and 953753db887f (v6.14; Rik van Riel's series), before 83b0177a6c48 (X1, the missing barrier):

- ``switch_mm_irqs_off`` to an mm sets this CPU's bit if it is not set yet ("Leave this CPU in
  prev's mm_cpumask. Atomic writes to mm_cpumask can be expensive under contention. The CPU
  will be removed lazily at TLB flush time."); switching away clears nothing.
- ``flush_tlb_mm_range``: when another CPU is in the mask, ``info->trim_cpumask =
  should_trim_cpumask(mm)`` (true at most once a second per mm, ``mm->context.next_trim_cpumask``,
  kept in the mm record's arch word) and ``native_flush_tlb_multi``: with ``freed_tables`` (the
  exit flush; a munmap with ``--p-free-tables``) ``on_each_cpu_mask``, every CPU in the mask,
  every time; otherwise ``on_each_cpu_cond_mask(should_flush_tlb)``: not a lazy CPU; a CPU with
  the mm loaded; any CPU when trimming.
- ``flush_tlb_func``: "The CPU was left in the mm_cpumask of the target mm. Clear it.": a CPU
  without the mm loaded clears its bit and returns; a lazy CPU with the mm loaded switches to
  init_mm (keeping its bit, since switching away clears nothing).

So the mask holds every CPU that has the mm loaded, but not every CPU lazy on it: a lazy CPU
moved to init_mm by one freed-tables flush (``active_mm`` unchanged) loses its bit at the next
flush that reaches it, while still lazy on the mm. ``for_each_possible_lazymm_cpu`` is the mask
only with ``--x86-unlazy-on-flush`` (the 2022 series' 20/23 and 21/23, see ``emu.arch.x86``),
else every online CPU. x86 never combined this mask with shoot-lazies: a violation of
shoot-lazies here is a finding of the emulator, not a kernel bug.

Interpretations: ``jiffies + HZ`` is one second of the machine's clock (the host's monotonic
clock; the step count in a deterministic mode); the first trim is due a second after the mm's
first multi-CPU flush, not after ``init_new_context`` (the mm record's arch word starts at 0, and
the first look sets it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emu.arch.x86 import FLUSH_TLB_FUNC, X86
from emu.layout import C_LOADED_MM, CPU_WORDS, M_ARCH

if TYPE_CHECKING:
    from emu.cpu import Cpu

TRIM_INTERVAL_NS = 1_000_000_000  # mm->context.next_trim_cpumask = jiffies + HZ


class X86LazyMask(X86):
    name = "x86-lazy-mask"
    summary = "v6.14 lazy mask: bits set on switch, cleared by a flush that finds the mm not loaded"
    clear_on_switch = False  # the bit stays until a flush finds the mm no longer loaded here
    set_only_if_clear = True  # "if (next != &init_mm && !cpumask_test_cpu(cpu, mm_cpumask(next)))"

    def __init__(self, cpu: Cpu) -> None:
        super().__init__(cpu)
        self.loaded_base = cpu.layout.cpu_base + C_LOADED_MM

    def flush_tlb_multi(self, mm: int, cpus: list[int], freed_tables: bool) -> None:
        trim = self.should_trim_cpumask(mm)  # info->trim_cpumask, set for every multi-CPU flush
        if not freed_tables:
            w, loaded, is_lazy = self.w, self.loaded_base, self.is_lazy_base
            # should_flush_tlb: not lazy, and the mm loaded there or a trim due
            cpus = [c for c in cpus if not w[is_lazy + c * CPU_WORDS] and (trim or w[loaded + c * CPU_WORDS] == mm)]
        self.c.irq.on_each_cpu_mask(cpus, FLUSH_TLB_FUNC, mm, wait=True)

    def should_trim_cpumask(self, mm: int) -> bool:
        next_trim = self.mm_record(mm) + M_ARCH
        now = self.c.clock_ns()
        due = self.w[next_trim]
        if not due:  # init_new_context's "next_trim_cpumask = jiffies + HZ", at the first look
            self.w[next_trim] = now + TRIM_INTERVAL_NS
            return False
        if now >= due:  # time_after(jiffies, READ_ONCE(mm->context.next_trim_cpumask))
            self.w[next_trim] = now + TRIM_INTERVAL_NS
            return True
        return False

    def flush_tlb_func_not_loaded(self, mm: int) -> None:
        self.cpumask_clear(mm, self.cpu)  # "The CPU was left in the mm_cpumask of the target mm. Clear it."
