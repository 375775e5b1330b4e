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

The TLB-generation protocol (reference section 4.1), as v6.13 has it: ``flush_tlb_mm_range``
bumps ``mm->context.tlb_gen`` (``inc_mm_tlb_gen``, fully ordered) before it reads the mask;
``switch_mm_irqs_off`` to another mm sets its bit (a locked op) and then reads ``tlb_gen`` ("Start
remote flushes and then read tlb_gen"), and its TLB is flushed up to what it read; a lazy CPU
switching back to the same mm re-reads ``tlb_gen`` after ``smp_mb()`` and flushes if it fell
behind; ``flush_tlb_func`` brings a non-lazy CPU with the mm loaded up to the mm's ``tlb_gen``.
Each CPU's flushed generation is its per-CPU field ``tlb_gen`` (``cpu_tlbstate.ctxs[asid].tlb_gen``, one ASID slot:
the loaded mm's), and a completed flush records its generation for the oracle (``TG_DONE``), a
completed freed-tables flush also ``TG_FREED``: a CPU that runs user code of the mm with an older
TLB, or that keeps the mm in CR3 (lazy or not) older than a completed freed-tables flush (its
paging-structure cache may walk the freed tables: 016c4d92cd16 "x86/mm/tlb: Only send page table
free TLB flush to lazy TLB CPUs", v4.19, is why the freed-tables flush reaches lazy CPUs), is a
``missed_flush``. The arch mutant ``x86-freed-tables-skip-lazy`` skips lazy CPUs at a freed-tables
flush too (that commit's other half undone): the lazy CPU keeps the freed tables in CR3 and is
caught at its next page walk. v6.13 writes ``cpu_tlbstate.loaded_mm = LOADED_MM_SWITCHING`` after
the ``tlb_gen`` read, but only for ``nmi_uaccess_okay()``: nothing a flush reads, so it is not modelled
here (``emu.arch.x86_stable`` models it, for the stable trees whose flushes read it).

Interpretations (the literal reading in brackets):

- A flush's other details (ASIDs, the range, partial flushes) are not modelled; the mask, the
  switches to init_mm and the TLB generations are what a lazy mm's lifetime and the flush
  invariant depend on.
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
from emu.kernel.protocols import CellDecl
from emu.machine.atomics import Atomics
from emu.machine.irq import ipi_function
from emu.machine.layout import (
    CPU_WORDS,
    INIT_MM,
    LINE,
    M_ARCH,
    MM_SLOT_MASK,
    TG_DONE,
    TG_FREED,
    TG_GEN,
    TLB_GEN_FIELD,
)

if TYPE_CHECKING:
    from emu.kernel.surface import KernelCpu

FLUSH_TLB_FUNC = ipi_function("flush_tlb_func", purpose="ipis_flush")
TRIM_INTERVAL_NS = 1_000_000_000  # mm->context.next_trim_cpumask = jiffies + HZ


class X86(Arch):
    name = "x86"
    source = "arch/x86/mm/tlb.c as of v6.13"
    memory_model = "tso"  # x86-TSO: only a store before a later load may be reordered
    options = ("x86_unlazy_on_flush", "x86_idle_leave_mm")
    cells: ClassVar[tuple[CellDecl, ...]] = (
        *(
            CellDecl("refcount", "x86", options={"memory_model": m}, why=f"every flush reaches the CPUs it must, under {m} too")
            for m in ("tso", "weak")
        ),
        CellDecl(
            "refcount",
            "x86",
            "missed_flush",
            arch_mutant="x86-freed-tables-skip-lazy",
            why="a freed-tables flush skips a lazy CPU whose CR3 still holds the mm: its page walk may use the freed tables",
        ),
    )
    summary = "mask follows the loaded mm; a freed-tables flush moves lazy CPUs to init_mm and drops their bits (v6.13)"
    lazy_may_load_init_mm = True
    tracks_tlb_gen = True
    # cpu_tlbstate_shared.is_lazy (shared: a flush's sender reads it to skip lazy CPUs) and the TLB's generation
    percpu: ClassVar[tuple[tuple[str, int], ...]] = (("is_lazy", 1), (TLB_GEN_FIELD, 1))
    freed_tables_skip_lazy: ClassVar[bool] = False  # the arch mutant: a freed-tables flush skips lazy CPUs too
    is_lazy_buffered: ClassVar[bool] = False  # is_lazy written through the memory model (read back by READ_ONCE)

    def __init__(self, cpu: KernelCpu) -> None:
        super().__init__(cpu)
        cpu.irq.handlers[FLUSH_TLB_FUNC] = self.flush_tlb_func
        is_lazy = cpu.layout.arch_field("is_lazy")
        self.is_lazy = cpu.layout.cpu(cpu.cpu) + is_lazy  # cpu_tlbstate_shared.is_lazy
        self.is_lazy_base = cpu.layout.cpu_base + is_lazy
        self.unlazy = cpu.arch_options.flag("x86_unlazy_on_flush")
        self.tlb_gen = cpu.layout.cpu(cpu.cpu) + cpu.layout.arch_field(TLB_GEN_FIELD)  # cpu_tlbstate.ctxs[loaded_mm_asid].tlb_gen
        self.tlbgen_base = cpu.layout.tlbgen_base
        self.tg_done_base = self.tlbgen_base + TG_DONE
        assert TG_DONE == TG_GEN + 1  # the switch reads tlb_gen just before TG_DONE
        # sequentially consistent and free-running: the barrier is a no-op and a read is the word itself, so the hot
        # switch reads tlb_gen inline (a deterministic mode keeps every call: each is a point it may switch CPUs at)
        self.plain = type(cpu.atomics) is Atomics and cpu.det is None  # the sc model: the base class itself

    def tg(self, mm: int) -> int:
        """``&mm->context.tlb_gen`` (``TG_DONE``, ``TG_FREED`` follow it)."""
        return self.tlbgen_base + (mm & MM_SLOT_MASK) * LINE

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
        was_lazy = w[self.is_lazy]
        if was_lazy:
            w[self.is_lazy] = 0
        user_next = next != INIT_MM and next != 0
        if real_prev == next:
            # back from lazy to the same mm: "WARN_ON_ONCE(real_prev != &init_mm && !cpumask_test_cpu(...))"
            if user_next and not self.in_mm_cpumask(next):
                self.oracle.report(CPUMASK_MISSING, next, MASK_AT_SWITCH_PREV, other=self.cpu)
                a.cpumask_set_cpu(self.mm_cpumask(next), self.cpu)
            if was_lazy and user_next:
                if self.plain:  # lazy_tlb_gen_check, inline
                    gen = w[self.tg_done_base - 1 + (next & MM_SLOT_MASK) * LINE]
                    if w[self.tlb_gen] < gen:
                        w[self.tlb_gen] = gen
                else:
                    self.lazy_tlb_gen_check(next)
            return
        base, stride = self.cpumask_base, self.cpumask_stride
        slot = next & MM_SLOT_MASK
        done_at = self.tg_done_base + slot * LINE  # &next->context.tlb_gen's TG_DONE
        if user_next:
            # "Start remote flushes and then read tlb_gen": the locked set orders the bit before the read
            a.cpumask_set_cpu(base + slot * stride, self.cpu)
            if self.plain:
                w[self.tlb_gen] = w[done_at - 1]
            else:
                a.smp_mb__after_atomic()  # x86's set_bit is a locked op, a full barrier: so under every memory model
                w[self.tlb_gen] = a.atomic_read(done_at - 1)  # next_tlb_gen: the TLB is flushed up to it
        self.c.tlb_done_at = done_at  # where the kernel's every-quantum look finds the completed flushes
        self.load_mm(next)
        if real_prev != INIT_MM and real_prev != 0:
            prev_mask = base + (real_prev & MM_SLOT_MASK) * stride  # mm_cpumask(real_prev), inline
            if not (w[self.my_cpumask_word - base + prev_mask] >> self.mask_bit) & 1:  # VM_WARN_ON_ONCE(!cpumask_test_cpu(...))
                self.oracle.report(CPUMASK_MISSING, real_prev, MASK_AT_SWITCH_PREV, other=self.cpu)
            a.cpumask_clear_cpu(prev_mask, self.cpu)  # "Stop remote flushes for the previous mm"

    def choose_new_asid(self) -> None:
        """A scheduling point of a deterministic mode that stands for ``choose_new_asid``'s per-CPU reads (v6.13
        arch/x86/mm/tlb.c: ``this_cpu_read(cpu_tlbstate.ctxs[asid].ctx_id)`` for each slot, then the matching slot's
        ``.tlb_gen < next_tlb_gen``: ``need_flush``), between the ``tlb_gen`` read and ``load_new_mm_cr3``, where another
        CPU's flush may interleave. The value read is unused, and cannot be given its meaning here: the model keeps one
        ASID slot and no ``ctx_id``; on this path (``real_prev != next``) that slot holds the mm being left, so the
        kernel's search would find no slot of next's and set ``need_flush``, which ``load_new_mm_cr3`` always does (it
        writes ``next_tlb_gen``). The read is of this CPU's ``tlb_gen`` word through the memory model, so the point is
        declared as a read of it (``P_ACCESS``, for the explorer); free-running there is no point, and no read."""
        if self.c.det is not None:
            self.atomics.READ_ONCE(self.tlb_gen)  # the point; its value is unused

    def load_new_mm_cr3(self, next: int, next_tlb_gen: int) -> None:
        """``this_cpu_write(cpu_tlbstate.ctxs[new_asid].tlb_gen, next_tlb_gen)`` (the oracle's TLB generation: the TLB
        is flushed up to what was read), then ``load_new_mm_cr3``, the CR3 write: in a deterministic mode each a
        scheduling point of its own."""
        det = self.c.det
        if det is not None:
            det.point(True, self.tlb_gen)
        self.w[self.tlb_gen] = next_tlb_gen  # a plain per-CPU write that the oracle reads: never buffered
        if det is not None:
            det.point(True, self.loaded)
        self.load_mm(next)

    def lazy_tlb_gen_check(self, mm: int) -> None:
        """Back from lazy on the same mm, v6.13's "Read the tlb_gen to check whether a flush is needed",
        after the barrier that "synchronizes with the tlb_gen increment in the TLB shootdown code"."""
        a = self.atomics
        if self.plain:
            gen = self.w[self.tg(mm) + TG_GEN]
        else:
            a.smp_mb()
            gen = a.atomic_read(self.tg(mm) + TG_GEN)
        if self.w[self.tlb_gen] < gen:  # "TLB contents went out of date while we were in lazy mode"
            self.w[self.tlb_gen] = gen

    # -- flushes ---------------------------------------------------------------------------------
    def flush_tlb_mm_exit(self, mm: int) -> None:
        self.flush_tlb_mm_range(mm, freed_tables=True)

    def flush_tlb_munmap(self, mm: int, freed_tables: bool) -> None:
        self.c.count("tlb_flushes")
        self.flush_tlb_mm_range(mm, freed_tables)

    def flush_tlb_mm_range(self, mm: int, freed_tables: bool) -> None:
        tg = self.tlbgen_base + (mm & MM_SLOT_MASK) * LINE  # self.tg(mm), inline
        new_gen = self.atomics.atomic_inc_return(tg + TG_GEN)  # inc_mm_tlb_gen(): atomic64_inc_return, fully ordered
        self.flush_tlb_send(mm, freed_tables)
        w = self.w  # flush_done, inline
        if w[tg + TG_DONE] < new_gen:
            w[tg + TG_DONE] = new_gen
        if freed_tables and w[tg + TG_FREED] < new_gen:
            w[tg + TG_FREED] = new_gen

    def flush_done(self, tg: int, new_gen: int, freed_tables: bool) -> None:
        """The oracle's record: a flush to ``new_gen`` has completed (every CPU it was sent to has run it)."""
        w = self.w
        if w[tg + TG_DONE] < new_gen:
            w[tg + TG_DONE] = new_gen
        if freed_tables and w[tg + TG_FREED] < new_gen:
            w[tg + TG_FREED] = new_gen

    def flush_tlb_send(self, mm: int, freed_tables: bool) -> None:
        """``flush_tlb_mm_range`` after the generation bump: IPIs by the mask, or the local flush."""
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
        if not freed_tables or self.freed_tables_skip_lazy:
            cpus = [c for c in cpus if self.should_flush_tlb(c, mm)]
        self.c.irq.on_each_cpu_mask(cpus, FLUSH_TLB_FUNC, mm, wait=True)

    def should_flush_tlb(self, cpu: int, mm: int, trim: bool = False) -> bool:
        """``tlb_is_not_lazy``."""
        return not self.w[self.is_lazy_base + cpu * CPU_WORDS]

    def flush_tlb_func(self, mm: int) -> None:
        """The flush's function, from an IPI or run locally (interrupts off either way)."""
        self.count_flush_ipi(mm)
        w = self.w
        if w[self.loaded] != mm:
            self.flush_tlb_func_not_loaded(mm)
            return
        if not (self.atomics.READ_ONCE(self.is_lazy) if self.is_lazy_buffered else w[self.is_lazy]):
            tg = self.tlbgen_base + (mm & MM_SLOT_MASK) * LINE  # flushed up to the mm's tlb_gen
            w[self.tlb_gen] = w[tg] if self.plain else self.atomics.atomic_read(tg)
        elif self.unlazy:
            self.c.strategy.unlazy_mm_irqs_off()
        else:
            # "We're in lazy mode. We need to at least flush our paging-structure cache ..."
            self.switch_mm_irqs_off(0, INIT_MM)

    def should_trim_cpumask(self, mm: int) -> bool:
        """6db2526c1d69: true at most once a second per mm (``mm->context.next_trim_cpumask``, the mm
        record's arch word)."""
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


class X86FreedTablesSkipLazy(X86):
    name = "x86-freed-tables-skip-lazy"
    summary = "a freed-tables flush skips lazy CPUs too (016c4d92cd16 undone): a lazy CR3 keeps freed page tables"
    mutant_of = "x86"
    freed_tables_skip_lazy = True
