"""x86 from v6.14: a lazily updated ``mm_cpumask``, a superset of the CPUs with the mm *loaded*.

Models arch/x86/mm/tlb.c with 209954cbc7d0 "x86/mm/tlb: Update mm_cpumask lazily", 6db2526c1d69
and 953753db887f (v6.14; Rik van Riel's series), with the ordering fixes fea4e317f9e7 (v6.15) and
83b0177a6c48 (X1, the missing barrier; its absence is the arch mutant below):

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

The ordering of the switch against a flush (commit 83b0177a6c48 "x86/mm: Fix SMP ordering in
switch_mm_irqs_off()", and fea4e317f9e7 before it): ``switch_mm_irqs_off`` to another mm stores
``cpu_tlbstate.loaded_mm = LOADED_MM_SWITCHING`` (a plain per-CPU store, through the memory model),
sets the bit if it is clear (a locked op, a full barrier on x86) or else issues ``smp_mb()``, then
reads ``next->context.tlb_gen``, loads CR3 and stores ``loaded_mm = next``; a flush increments
``tlb_gen`` (``atomic64_inc_return``, fully ordered) and then, in ``should_flush_tlb``, reads each
CPU's ``loaded_mm`` (``smp_rmb()``, then ``is_lazy``; ``LOADED_MM_SWITCHING`` is flushed). So either
the switch sees the new generation or the flush sees the switch. A lazy CPU switching back to
the same mm re-reads ``tlb_gen`` after an ``smp_mb()``; ``flush_tlb_func`` brings a CPU with the
mm loaded up to the mm's ``tlb_gen``. Each CPU's generation and each mm's ``tlb_gen`` are modelled
(``emu.machine.layout``: ``C_TLB_GEN``, ``TG_GEN``), and a completed flush records its generation, so the
oracle sees a CPU running the mm with an older TLB (``missed_flush``). The arch mutant
``x86-lazy-mask-switch-no-mb`` is the code before 83b0177a6c48 (X1, reference sections 4 and 6):
no barrier when the bit is already set, which TSO's store buffer turns into a missed flush.

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

from typing import TYPE_CHECKING, ClassVar

from emu.arch.x86 import FLUSH_TLB_FUNC, X86
from emu.checks.oracle import CPUMASK_MISSING, MASK_AT_SWITCH_PREV
from emu.kernel.protocols import CellDecl
from emu.machine.layout import (
    C_TLB_GEN,
    C_TLBSTATE_LOADED,
    CPU_WORDS,
    INIT_MM,
    LINE,
    LOADED_MM_SWITCHING,
    M_ARCH,
    MM_SLOT_MASK,
    TG_DONE,
    TG_GEN,
)

if TYPE_CHECKING:
    from emu.kernel.surface import KernelCpu

TRIM_INTERVAL_NS = 1_000_000_000  # mm->context.next_trim_cpumask = jiffies + HZ


class X86LazyMask(X86):
    name = "x86-lazy-mask"
    source = "arch/x86/mm/tlb.c with 209954cbc7d0 (v6.14), fea4e317f9e7, 83b0177a6c48"
    # the matrix rows of this model and its arch mutants (emu.harness.matrix), under the schemes named
    cells = (
        CellDecl(
            "refcount",
            "x86-lazy-mask",
            options={"memory_model": "tso"},
            why="83b0177a6c48: smp_mb() when the bit is already set: the switch sees the new tlb_gen or the flush sees the switch",
        ),
        CellDecl(
            "refcount",
            "x86-lazy-mask",
            "missed_flush",
            options={"memory_model": "tso"},
            arch_mutant="x86-lazy-mask-switch-no-mb",
            why="X1 (real, fixed by 83b0177a6c48): the store of loaded_mm waits in the store buffer past the load of tlb_gen",
        ),
    )
    summary = "v6.14 lazy mask: bits set on switch, cleared by a flush that finds the mm not loaded"
    clear_on_switch = False  # the bit stays until a flush finds the mm no longer loaded here
    set_only_if_clear = True  # "if (next != &init_mm && !cpumask_test_cpu(cpu, mm_cpumask(next)))"
    tracks_tlb_gen: ClassVar[bool] = True

    def __init__(self, cpu: KernelCpu) -> None:
        super().__init__(cpu)
        rec = cpu.layout.cpu(cpu.cpu)
        self.tlbstate, self.tlb_gen = rec + C_TLBSTATE_LOADED, rec + C_TLB_GEN
        self.tlbstate_base = cpu.layout.cpu_base + C_TLBSTATE_LOADED
        self.tlbgen_base = cpu.layout.tlbgen_base

    def tg(self, mm: int) -> int:
        """``&mm->context.tlb_gen`` (``TG_DONE`` follows it)."""
        return self.tlbgen_base + (mm & MM_SLOT_MASK) * LINE

    # -- switch_mm_irqs_off, as of 83b0177a6c48 ---------------------------------------------------
    def switch_mm_irqs_off(self, prev: int, next: int) -> None:
        irq = self.irq
        if not (irq.disabled or irq.in_irq):
            self.lockdep_assert_irqs_disabled(next)
        w, a = self.w, self.atomics
        real_prev = w[self.loaded]
        was_lazy = w[self.is_lazy]
        if was_lazy:
            w[self.is_lazy] = 0
        user_next = next != INIT_MM and next != 0
        if real_prev == next:
            if user_next and not self.in_mm_cpumask(next):
                self.oracle.report(CPUMASK_MISSING, next, MASK_AT_SWITCH_PREV, other=self.cpu)
                a.cpumask_set_cpu(self.mm_cpumask(next), self.cpu)
            if was_lazy and user_next:
                # "Read the tlb_gen to check whether a flush is needed. ... The barrier synchronizes
                # with the tlb_gen increment in the TLB shootdown code."
                a.smp_mb()
                gen = a.atomic_read(self.tg(next) + TG_GEN)
                if w[self.tlb_gen] < gen:  # "TLB contents went out of date while we were in lazy mode"
                    w[self.tlb_gen] = gen
            return
        # "Indicate that CR3 is about to change": should_flush_tlb() flushes a CPU in this state
        a.WRITE_ONCE(self.tlbstate, LOADED_MM_SWITCHING)
        if user_next and not self.in_mm_cpumask(next):
            a.cpumask_set_cpu(self.mm_cpumask(next), self.cpu)  # x86's set_bit is a locked op: a full barrier
        else:
            self.switch_mm_mb()
        gen = a.atomic_read(self.tg(next) + TG_GEN) if user_next else 0  # next_tlb_gen
        w[self.tlb_gen] = gen  # the TLB is flushed up to what was read (before CR3: the oracle's look)
        self.load_mm(next)
        a.WRITE_ONCE(self.tlbstate, next)  # this_cpu_write(cpu_tlbstate.loaded_mm, next)
        if real_prev != INIT_MM and real_prev != 0 and not self.in_mm_cpumask(real_prev):
            self.oracle.report(CPUMASK_MISSING, real_prev, MASK_AT_SWITCH_PREV, other=self.cpu)

    def switch_mm_mb(self) -> None:
        """83b0177a6c48: "Rely on the smp_mb() implied by cpumask_set_cpu()'s atomic operation, or
        explicitly provide one", between the store of ``loaded_mm`` and the load of ``tlb_gen``."""
        self.atomics.smp_mb()

    # -- flushes ---------------------------------------------------------------------------------
    def flush_tlb_mm_range(self, mm: int, freed_tables: bool) -> None:
        tg = self.tg(mm)
        new_gen = self.atomics.atomic_inc_return(tg + TG_GEN)  # inc_mm_tlb_gen(): atomic64_inc_return, fully ordered
        super().flush_tlb_mm_range(mm, freed_tables)
        w = self.w
        if w[tg + TG_DONE] < new_gen:  # the oracle's record: a flush to new_gen has completed
            w[tg + TG_DONE] = new_gen

    def flush_tlb_multi(self, mm: int, cpus: list[int], freed_tables: bool) -> None:
        trim = self.should_trim_cpumask(mm)  # info->trim_cpumask, set for every multi-CPU flush
        if not freed_tables:
            cpus = [c for c in cpus if self.should_flush_tlb(c, mm, trim)]
        self.c.irq.on_each_cpu_mask(cpus, FLUSH_TLB_FUNC, mm, wait=True)

    def should_flush_tlb(self, cpu: int, mm: int, trim: bool = False) -> bool:
        """As of fea4e317f9e7 (v6.15): ``loaded_mm`` read first, ``smp_rmb()``, then ``is_lazy``; a CPU
        in the middle of a switch (``LOADED_MM_SWITCHING``) is flushed."""
        a = self.atomics
        loaded = a.READ_ONCE(self.tlbstate_base + cpu * CPU_WORDS)  # per_cpu(cpu_tlbstate.loaded_mm, cpu)
        a.smp_rmb()
        if self.w[self.is_lazy_base + cpu * CPU_WORDS]:
            return False  # "Lazy TLB will get flushed at the next context switch."
        return loaded in (LOADED_MM_SWITCHING, mm) or trim

    def flush_tlb_func(self, mm: int) -> None:
        w = self.w
        if w[self.loaded] == mm and not w[self.is_lazy]:
            w[self.tlb_gen] = self.atomics.atomic_read(self.tg(mm) + TG_GEN)  # flushed up to mm's tlb_gen
        super().flush_tlb_func(mm)

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


class X86LazyMaskSwitchNoMb(X86LazyMask):
    name = "x86-lazy-mask-switch-no-mb"
    summary = "X1 (fixed by 83b0177a6c48): no full barrier between loaded_mm and tlb_gen once the mask bit is set"
    mutant_of = "x86-lazy-mask"

    def switch_mm_mb(self) -> None:
        pass  # before 83b0177a6c48: only a compiler barrier(), so the store of loaded_mm may pass the load of tlb_gen
