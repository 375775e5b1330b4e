"""x86 up to v6.13: ``mm_cpumask`` follows the loaded mm (CR3), and is not reliable for lazies.

Models arch/x86/mm/tlb.c as of v6.13 (before 209954cbc7d0 made the mask lazy; that is
``emu.arch.x86_lazy_mask``):

- ``switch_mm_irqs_off`` to an mm sets this CPU's bit; switching away to a different mm clears
  the bit of the mm that was loaded (``real_prev``), after a ``VM_WARN_ON_ONCE`` that it was
  set; back from lazy to the same mm nothing changes (the kernel WARNs if the bit is gone). It
  clears ``cpu_tlbstate_shared.is_lazy``.
- ``enter_lazy_tlb`` only sets ``is_lazy`` (unless init_mm is loaded): a lazy CPU keeps the old
  mm loaded and stays in its mask. ``is_lazy`` lives in the shared segment (the CPU record's
  word 7), because a flush's sender reads it.
- ``flush_tlb_mm_range``: if another CPU is in the mask, ``flush_tlb_multi`` ->
  ``native_flush_tlb_multi`` over the mask, which includes this CPU: with ``freed_tables``
  ``on_each_cpu_mask`` (every CPU in it), else ``on_each_cpu_cond_mask(tlb_is_not_lazy)``
  (lazy CPUs skipped: "They will flush the CPU themselves at the next context switch");
  otherwise, if this CPU has the mm loaded, ``flush_tlb_func`` locally, interrupts off.
- ``flush_tlb_func`` on a CPU that has the mm loaded and is lazy: ``switch_mm_irqs_off(NULL,
  &init_mm)`` ("switching to init_mm is barely slower than a minimal flush"): CR3 becomes
  init_mm and the bit is cleared while ``active_mm`` stays the old mm, the case the RFC thread
  calls "mm_cpumask() not being reliable". A remote CPU without the mm loaded returns at once.
- Which flushes free page tables: the exit flush (``exit_mmap``: ``tlb->fullmm``, page tables
  freed) always; a munmap with probability ``--p-free-tables`` (a workload choice: a munmap that
  frees whole page-table pages is a freed-tables flush). So every lazy CPU in the mask at such a
  flush, the exiting CPU itself included (it is lazy after ``exit_mm`` and still has the mm
  loaded), loads init_mm and drops its bit: bug B9 for the mask-hinted scans.
- ``leave_mm`` (``--x86-idle-leave-mm``, off by default): ``cpuidle_enter_state`` calls it
  before an idle state marked ``CPUIDLE_FLAG_TLB_FLUSHED`` (ACPI C3, some intel_idle states);
  a lazy idle CPU then loads init_mm and clears its bit in the same way. Interpretation: every
  idle wait is such a state when the option is on [the cpuidle governor picks one only for
  long idle periods, and only some platforms mark their states so].
- ``--x86-unlazy-on-flush``: Lutomirski's 2022 series, 20/23 "x86/mm: Remove leave_mm() in
  favor of unlazy_mm_irqs_off()" and 21/23 "x86/mm: Use unlazy_mm_irqs_off() in TLB flush IPIs"
  (message ids 5e80aa6deb3f0a7bdcba5e9f20c48df50b752fd3.1641659630.git.luto@kernel.org and
  3f3daaf3df26e963a38f4d7d05069e866cb6e3e7.1641659630.git.luto@kernel.org): the lazy CPU's
  flush (and ``leave_mm``) calls ``unlazy_mm_irqs_off()``, which also ends the lazy use
  (``active_mm = &init_mm`` and the scheme's lazy drop, ``Strategy.unlazy_mm_irqs_off``), so
  ``mm_cpumask`` keeps every CPU lazy on the mm and, as 22/23 does,
  ``for_each_possible_lazymm_cpu`` may return the mask. Without it, it returns every online CPU.

Interpretations (the literal reading in brackets):

- A flush's other details (tlb_gen, ASIDs, the range) are not modelled; the mask and the
  switches to init_mm are what a lazy mm's lifetime depends on.
- ``switch_mm_irqs_off`` sets next's bit and loads next before it clears the bit of the mm it
  left, so that at every moment a CPU with an mm loaded is in its mask, which the oracle checks
  [v6.13 clears prev's bit, sets next's, then writes CR3 and ``loaded_mm``, all with interrupts
  off; the order matters only to a flush racing with the switch, which tlb_gen covers].
- Whether a munmap frees page tables is a draw (``--p-free-tables``) [the kernel knows it from
  what was unmapped].
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from emu.arch.base import Arch
from emu.checks.oracle import CPUMASK_MISSING, MASK_AT_SWITCH_PREV
from emu.machine.irq import ipi_function
from emu.machine.layout import C_IS_LAZY, CPU_WORDS, INIT_MM, MM_SLOT_MASK

if TYPE_CHECKING:
    from emu.kernel.surface import KernelCpu

FLUSH_TLB_FUNC = ipi_function("flush_tlb_func", purpose="ipis_flush")


class X86(Arch):
    name = "x86"
    source = "arch/x86/mm/tlb.c as of v6.13"
    memory_model = "tso"  # x86-TSO: only a store before a later load may be reordered
    options = ("x86_unlazy_on_flush", "x86_idle_leave_mm")
    summary = "mask follows the loaded mm; a freed-tables flush moves lazy CPUs to init_mm and drops their bits (v6.13)"
    lazy_may_load_init_mm = True
    clear_on_switch: ClassVar[bool] = True  # switching away clears the bit of the mm that was loaded
    set_only_if_clear: ClassVar[bool] = False  # the switch to an mm tests the bit before setting it

    def __init__(self, cpu: KernelCpu) -> None:
        super().__init__(cpu)
        cpu.irq.handlers[FLUSH_TLB_FUNC] = self.flush_tlb_func
        self.is_lazy = cpu.layout.cpu(cpu.cpu) + C_IS_LAZY  # cpu_tlbstate_shared.is_lazy
        self.is_lazy_base = cpu.layout.cpu_base + C_IS_LAZY
        self.unlazy = cpu.arch_options.flag("x86_unlazy_on_flush")

    def enter_lazy_tlb(self, mm: int) -> None:
        w = self.w
        if w[self.loaded] != INIT_MM:
            w[self.is_lazy] = 1

    def switch_mm_irqs_off(self, prev: int, next: int) -> None:
        irq = self.irq
        if not (irq.disabled or irq.in_irq):
            self.lockdep_assert_irqs_disabled(next)  # reports; the test is inline on this hot path
        w, a = self.w, self.atomics
        real_prev = w[self.loaded]
        if w[self.is_lazy]:
            w[self.is_lazy] = 0
        user_next = next != INIT_MM and next != 0
        if real_prev == next:
            # back from lazy to the same mm: "WARN_ON_ONCE(real_prev != &init_mm && !cpumask_test_cpu(...))"
            if user_next and not self.in_mm_cpumask(next):
                self.oracle.report(CPUMASK_MISSING, next, MASK_AT_SWITCH_PREV, other=self.cpu)
                a.cpumask_set_cpu(self.mm_cpumask(next), self.cpu)
            return
        base, stride, bit = self.cpumask_base, self.cpumask_stride, self.mask_bit
        # "Start remote flushes and then read tlb_gen" (v6.13: always; the lazy mask: if not set yet)
        if user_next and (not self.set_only_if_clear or not (w[self.my_cpumask_word + (next & MM_SLOT_MASK) * stride] >> bit) & 1):
            a.cpumask_set_cpu(base + (next & MM_SLOT_MASK) * stride, self.cpu)
        self.load_mm(next)
        if real_prev != INIT_MM and real_prev != 0:
            prev_mask = base + (real_prev & MM_SLOT_MASK) * stride  # mm_cpumask(real_prev), inline
            if not (w[self.my_cpumask_word - base + prev_mask] >> bit) & 1:  # VM_WARN_ON_ONCE(!cpumask_test_cpu(...))
                self.oracle.report(CPUMASK_MISSING, real_prev, MASK_AT_SWITCH_PREV, other=self.cpu)
            if self.clear_on_switch:
                a.cpumask_clear_cpu(prev_mask, self.cpu)  # "Stop remote flushes for the previous mm"

    # -- flushes ---------------------------------------------------------------------------------
    def flush_tlb_mm_exit(self, mm: int) -> None:
        self.flush_tlb_mm_range(mm, freed_tables=True)

    def flush_tlb_munmap(self, mm: int, freed_tables: bool) -> None:
        self.c.count("tlb_flushes")
        self.flush_tlb_mm_range(mm, freed_tables)

    def flush_tlb_mm_range(self, mm: int, freed_tables: bool) -> None:
        mask = self.mm_cpumask(mm)
        self.oracle.mask_covers_loaded(mm, mask)
        cpus = self.mm_cpumask_cpus(mm)
        if any(c != self.cpu for c in cpus):  # cpumask_any_but(mm_cpumask(mm), cpu) < nr_cpu_ids
            self.flush_tlb_multi(mm, cpus, freed_tables)
        elif self.w[self.loaded] == mm:
            flags = self.irq.local_irq_save()
            self.flush_tlb_func(mm)
            self.irq.local_irq_restore(flags)

    def flush_tlb_multi(self, mm: int, cpus: list[int], freed_tables: bool) -> None:
        """``native_flush_tlb_multi``: this CPU runs the function too if it is in ``cpus``."""
        if not freed_tables:
            cpus = [c for c in cpus if self.should_flush_tlb(c, mm)]
        self.c.irq.on_each_cpu_mask(cpus, FLUSH_TLB_FUNC, mm, wait=True)

    def should_flush_tlb(self, cpu: int, mm: int) -> bool:
        """``tlb_is_not_lazy``."""
        return not self.w[self.is_lazy_base + cpu * CPU_WORDS]

    def flush_tlb_func(self, mm: int) -> None:
        """The flush's function, from an IPI or run locally (interrupts off either way)."""
        self.count_flush_ipi(mm)
        w = self.w
        if w[self.loaded] != mm:
            self.flush_tlb_func_not_loaded(mm)
            return
        if w[self.is_lazy]:
            # "We're in lazy mode. We need to at least flush our paging-structure cache ..."
            if self.unlazy:
                self.c.strategy.unlazy_mm_irqs_off()
            else:
                self.switch_mm_irqs_off(0, INIT_MM)

    def flush_tlb_func_not_loaded(self, mm: int) -> None:
        """A remote CPU that no longer has the mm loaded: "Can only happen on remote CPUs"."""

    def leave_mm(self) -> None:
        flags = self.irq.local_irq_save()
        if self.w[self.loaded] != INIT_MM:
            if self.unlazy:
                self.c.strategy.unlazy_mm_irqs_off()
            else:
                self.switch_mm_irqs_off(0, INIT_MM)  # switch_mm(NULL, &init_mm, NULL)
        self.irq.local_irq_restore(flags)

    def for_each_possible_lazymm_cpu(self, mm: int) -> Iterable[int]:
        """22/23 "x86/mm: Optimize for_each_possible_lazymm_cpu()": the mask, which holds every lazy
        CPU only once a flush ends the lazy use too (``--x86-unlazy-on-flush``); else every online CPU."""
        return self.mm_cpumask_cpus(mm) if self.unlazy else self.c.online_cpus()
