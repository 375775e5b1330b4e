"""x86 from v6.14: a lazily updated ``mm_cpumask``, a superset of the CPUs with the mm *loaded*.

Models arch/x86/mm/tlb.c with 209954cbc7d0 "x86/mm/tlb: Update mm_cpumask lazily", 6db2526c1d69
and 953753db887f (v6.14; Rik van Riel's series), version by version (reference section 4.1):

| ``--arch`` | the code of | should_flush_tlb flushes ``LOADED_MM_SWITCHING`` | smp_mb() when the bit is set | bugs |
|---|---|---|---|---|
| ``x86-v6.14`` | v6.14 up to 6.14.6 | no | no (``barrier()``) | X2 and X1 |
| ``x86-v6.14.7`` | 6.14.7 (fea4e317f9e7, CVE-2025-37964) up to 6.17.4 | yes, after ``smp_rmb()`` | no | X1 |
| ``x86-lazy-mask`` | 6.17.5 and mainline since 83b0177a6c48 (CVE-2025-40174) | yes | yes | none |

X2: between ``load_new_mm_cr3()`` and ``loaded_mm = next`` the CPU already runs on the new CR3, but
``should_flush_tlb()`` skips it (neither lazy nor ``loaded_mm == mm``): a window, caught under
``sc``. X1: with the bit already set nothing orders the store of ``LOADED_MM_SWITCHING`` before the
load of ``tlb_gen``: store buffering, caught under ``tso`` and ``weak`` only. The versions' other
code is the same here; ``flush_tlb_func``'s local path is 953753db887f's in all three ("The CPU
was left in the mm_cpumask of the target mm. Clear it.", also on the flush's own CPU: the robot's
``WARN_ON_ONCE(local_tlb_gen > mm_tlb_gen)`` that it fixed came from the local CPU going on with a
flush of an mm it no longer had loaded, which this model's local path never does). The stable
trees' variant (6.1.y, 6.6.y, 6.12.y: the trim filter without the lazy mask, and X3) is
``emu.arch.x86_stable``.

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

The ordering of the switch against a flush, as of 83b0177a6c48 "x86/mm: Fix SMP ordering in
switch_mm_irqs_off()" (and fea4e317f9e7 before it): ``switch_mm_irqs_off`` to another mm stores
``cpu_tlbstate.loaded_mm = LOADED_MM_SWITCHING`` (a plain per-CPU store, through the memory model),
sets the bit if it is clear (a locked op, a full barrier on x86) or else issues ``smp_mb()``, then
reads ``next->context.tlb_gen``, loads CR3 and stores ``loaded_mm = next``; a flush increments
``tlb_gen`` (``atomic64_inc_return``, fully ordered) and then, in ``should_flush_tlb``, reads each
CPU's ``loaded_mm`` (``smp_rmb()``, then ``is_lazy``; ``LOADED_MM_SWITCHING`` is flushed). ``loaded_mm``,
``is_lazy`` and ``tlb_gen`` all go through the memory model (``is_lazy`` is a plain per-CPU store and
a remote plain load). So either
the switch sees the new generation or the flush sees the switch. A lazy CPU switching back to
the same mm re-reads ``tlb_gen`` after an ``smp_mb()``; ``flush_tlb_func`` brings a CPU with the
mm loaded up to the mm's ``tlb_gen``. Each CPU's generation and each mm's ``tlb_gen`` are modelled
(its per-CPU field ``tlb_gen``, and ``TG_GEN`` in ``emu.machine.layout``), and a completed flush records its generation, so the
oracle sees a CPU running the mm with an older TLB (``missed_flush``). Arch mutants of
``x86-lazy-mask``: ``x86-lazy-mask-switch-no-mb``, the switch before 83b0177a6c48 (X1: the same
code as ``x86-v6.14.7``), and ``x86-lazy-mask-switching-skipped``, X2's window reopened in the
fixed code (``should_flush_tlb`` forgets ``LOADED_MM_SWITCHING``, the barrier kept).

Between the ``tlb_gen`` read and ``loaded_mm = next`` the switch does what the kernel does there, each
step a scheduling point of a deterministic mode where a flush on another CPU may interleave
(``X86.choose_new_asid``, ``X86.load_new_mm_cr3``): the read of the ASID slot's flushed generation, its
write (``cpu_tlbstate.ctxs[new_asid].tlb_gen``), the CR3 write, then the store of ``loaded_mm``.

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
from emu.machine.layout import CPU_WORDS, INIT_MM, LOADED_MM_SWITCHING, TG_DONE, TG_GEN

if TYPE_CHECKING:
    from emu.kernel.surface import KernelCpu


class X86LazyMask(X86):
    name = "x86-lazy-mask"
    # cpu_tlbstate.loaded_mm: the kernel's per-CPU copy of the loaded mm, a plain store through the memory model
    percpu = X86.percpu + (("tlbstate_loaded", 1),)
    source = "arch/x86/mm/tlb.c with 209954cbc7d0 (v6.14), fea4e317f9e7, 83b0177a6c48"
    # the matrix rows of this model and its arch mutants (emu.harness.matrix), under the schemes named
    cells: ClassVar[tuple[CellDecl, ...]] = (
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
        CellDecl(
            "refcount",
            "x86-lazy-mask",
            options={"memory_model": "weak"},
            why="every flush reaches the CPUs it must, under weak too",
        ),
        CellDecl(
            "refcount",
            "x86-lazy-mask",
            "missed_flush",
            arch_mutant="x86-lazy-mask-switching-skipped",
            why="X2's window reopened in the fixed code: a CPU in LOADED_MM_SWITCHING is skipped",
        ),
    )
    summary = "lazy mask, 6.17.5+ (83b0177a6c48): bits set on switch, cleared by a flush that finds the mm not loaded"
    switching_flushed: ClassVar[bool] = True  # fea4e317f9e7: should_flush_tlb() flushes a CPU in LOADED_MM_SWITCHING
    is_lazy_buffered = True

    def __init__(self, cpu: KernelCpu) -> None:
        super().__init__(cpu)
        tlbstate = cpu.layout.arch_field("tlbstate_loaded")  # cpu_tlbstate.loaded_mm
        self.tlbstate = cpu.layout.cpu(cpu.cpu) + tlbstate
        self.tlbstate_base = cpu.layout.cpu_base + tlbstate

    def enter_lazy_tlb(self, mm: int) -> None:
        if self.w[self.loaded] != INIT_MM:
            self.atomics.WRITE_ONCE(self.is_lazy, 1)  # this_cpu_write(cpu_tlbstate_shared.is_lazy, true)

    # -- switch_mm_irqs_off, as of 83b0177a6c48 ---------------------------------------------------
    def switch_mm_irqs_off(self, prev: int, next: int) -> None:
        irq = self.irq
        if not (irq.disabled or irq.in_irq):
            self.lockdep_assert_irqs_disabled(next)
        w, a = self.w, self.atomics
        real_prev = w[self.loaded]
        was_lazy = a.READ_ONCE(self.is_lazy)  # this CPU sees its own buffered store of is_lazy
        if was_lazy:
            a.WRITE_ONCE(self.is_lazy, 0)
        user_next = next != INIT_MM and next != 0
        if real_prev == next:
            if user_next and not self.in_mm_cpumask(next):
                self.oracle.report(CPUMASK_MISSING, next, MASK_AT_SWITCH_PREV, other=self.cpu)
                a.cpumask_set_cpu(self.mm_cpumask(next), self.cpu)
            if was_lazy and user_next:
                self.lazy_tlb_gen_check(next)
            return
        # "Indicate that CR3 is about to change": should_flush_tlb() flushes a CPU in this state
        a.WRITE_ONCE(self.tlbstate, LOADED_MM_SWITCHING)
        if user_next and not self.in_mm_cpumask(next):
            a.cpumask_set_cpu(self.mm_cpumask(next), self.cpu)
            a.smp_mb__after_atomic()  # x86's set_bit is a locked op, a full barrier: so under every memory model
        else:
            self.switch_mm_mb()
        gen = a.atomic_read(self.tg(next) + TG_GEN) if user_next else 0  # next_tlb_gen
        self.choose_new_asid()
        self.c.tlb_done_at = self.tg(next) + TG_DONE
        self.load_new_mm_cr3(next, gen)  # the TLB is flushed up to what was read (before CR3: the oracle's look)
        a.WRITE_ONCE(self.tlbstate, next)  # this_cpu_write(cpu_tlbstate.loaded_mm, next)
        if real_prev != INIT_MM and real_prev != 0 and not self.in_mm_cpumask(real_prev):
            self.oracle.report(CPUMASK_MISSING, real_prev, MASK_AT_SWITCH_PREV, other=self.cpu)

    def switch_mm_mb(self) -> None:
        """83b0177a6c48: "Rely on the smp_mb() implied by cpumask_set_cpu()'s atomic operation, or
        explicitly provide one", between the store of ``loaded_mm`` and the load of ``tlb_gen``."""
        self.atomics.smp_mb()

    # -- flushes ---------------------------------------------------------------------------------
    def flush_tlb_multi(self, mm: int, cpus: list[int], freed_tables: bool) -> None:
        trim = self.should_trim_cpumask(mm)  # info->trim_cpumask, set for every multi-CPU flush
        if not freed_tables:
            cpus = [c for c in cpus if self.should_flush_tlb(c, mm, trim)]
        self.c.irq.on_each_cpu_mask(cpus, FLUSH_TLB_FUNC, mm, wait=True)

    def should_flush_tlb(self, cpu: int, mm: int, trim: bool = False) -> bool:
        """As of fea4e317f9e7 (6.14.7): ``loaded_mm`` read first, ``smp_rmb()``, then ``is_lazy``; a CPU
        in the middle of a switch (``LOADED_MM_SWITCHING``) is flushed. v6.14 reads ``is_lazy`` first
        and flushes only a CPU whose ``loaded_mm`` is the mm (X2)."""
        a = self.atomics
        if not self.switching_flushed:
            if a.READ_ONCE(self.is_lazy_base + cpu * CPU_WORDS):
                return False
            return a.READ_ONCE(self.tlbstate_base + cpu * CPU_WORDS) == mm or trim
        loaded = a.READ_ONCE(self.tlbstate_base + cpu * CPU_WORDS)  # per_cpu(cpu_tlbstate.loaded_mm, cpu)
        a.smp_rmb()
        if a.READ_ONCE(self.is_lazy_base + cpu * CPU_WORDS):
            return False  # "Lazy TLB will get flushed at the next context switch."
        return loaded in (LOADED_MM_SWITCHING, mm) or trim

    def flush_tlb_func_not_loaded(self, mm: int) -> None:
        self.cpumask_clear(mm, self.cpu)  # "The CPU was left in the mm_cpumask of the target mm. Clear it."


class X86V614(X86LazyMask):
    name = "x86-v6.14"
    summary = "lazy mask as released in v6.14: X2 (a switching CPU is not flushed) and X1 (no smp_mb once the bit is set)"
    source = "arch/x86/mm/tlb.c as released in v6.14 (209954cbc7d0, before fea4e317f9e7 and 83b0177a6c48)"
    in_generic_cells = False  # X2 and X1 are its own: every scheme's row would find them
    cells: ClassVar[tuple[CellDecl, ...]] = (
        CellDecl(
            "refcount", "x86-v6.14", "missed_flush", why="X2 (CVE-2025-37964): should_flush_tlb() skips a CPU between CR3 and loaded_mm"
        ),
    )
    switching_flushed = False

    def switch_mm_mb(self) -> None:
        pass  # v6.14: only barrier(), a compiler barrier


class X86V6147(X86LazyMask):
    name = "x86-v6.14.7"
    summary = "lazy mask, 6.14.7 to 6.17.4: X2 fixed (fea4e317f9e7), X1 open (no smp_mb once the bit is set)"
    source = "arch/x86/mm/tlb.c in 6.14.7 to 6.17.4: with fea4e317f9e7, before 83b0177a6c48"
    in_generic_cells = False  # X1 is its own (under tso and weak)
    cells: ClassVar[tuple[CellDecl, ...]] = (
        CellDecl(
            "refcount",
            "x86-v6.14.7",
            "missed_flush",
            options={"memory_model": "tso"},
            why="X1 (CVE-2025-40174) open in 6.14.7 to 6.17.4: no smp_mb() between loaded_mm and tlb_gen once the bit is set",
        ),
        CellDecl("refcount", "x86-v6.14.7", why="fea4e317f9e7 flushes a CPU in LOADED_MM_SWITCHING; X1 needs store buffering"),
    )

    def switch_mm_mb(self) -> None:
        pass  # before 83b0177a6c48: only barrier()


class X86LazyMaskSwitchNoMb(X86LazyMask):
    name = "x86-lazy-mask-switch-no-mb"
    summary = "X1 (fixed by 83b0177a6c48): no full barrier between loaded_mm and tlb_gen once the mask bit is set"
    mutant_of = "x86-lazy-mask"

    def switch_mm_mb(self) -> None:
        pass  # before 83b0177a6c48: only a compiler barrier(), so the store of loaded_mm may pass the load of tlb_gen


class X86LazyMaskSwitchingSkipped(X86LazyMask):
    name = "x86-lazy-mask-switching-skipped"
    summary = "X2 reopened: should_flush_tlb() skips a CPU in LOADED_MM_SWITCHING (the barrier of 83b0177a6c48 kept)"
    mutant_of = "x86-lazy-mask"
    switching_flushed = False
