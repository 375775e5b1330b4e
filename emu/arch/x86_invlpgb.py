"""x86 with AMD's INVLPGB and global ASIDs, as merged in v6.15 (reference section 4.2).

Series v14, 20250226030129.530345-1-riel@surriel.com (Rik van Riel), merged as 4afeb0ed1753
"x86/mm: Enable broadcast TLB invalidation for multi-threaded processes", be88a1dd6112,
c9826613a9cb and siblings, on top of the lazy mask (``emu.arch.x86_lazy_mask``):

- ``flush_tlb_mm_range``: an mm with a global ASID (``mm_global_asid``, an ``smp_load_acquire``)
  goes to ``broadcast_tlb_flush``: INVLPGB for the ASID, ``finish_asid_transition``, TLBSYNC, and
  **no IPI**, the freed-tables exit flush included; otherwise the lazy mask's IPIs, after which
  ``consider_global_asid`` runs when ``(current->pid & 0x1f) == (jiffies & 0x1f)`` and gives the mm
  a global ASID if ``mm_active_cpus_exceeds(mm, 3)``: more than 3 CPUs in the mask with the mm
  loaded and not lazy.
- ``use_global_asid`` under ``global_asid_lock``: ``allocate_global_asid`` (``find_next_zero_bit`` from
  ``last_global_asid``; at the end of the space ``reset_global_asid_space``: the full flush
  ``invlpgb_flush_all_nonglobals``, then the freed ASIDs leave the used bitmap, so a freed ASID is
  reused only after that flush), then ``asid_transition = true`` and the ASID published with
  ``smp_store_release``. ``destroy_context`` frees it (``mm_free_global_asid``: into the freed bitmap).
- ``switch_mm_irqs_off``: ``choose_new_asid`` returns the global ASID with no flush; back on the
  same mm a CPU still on a dynamic ASID reloads onto the global one (``mm_needs_global_asid``); a
  CPU on the global ASID needs no ``tlb_gen`` check. ``cpu_tlbstate.loaded_mm_asid`` is written
  after ``loaded_mm``, both through the memory model.
- ``flush_tlb_func``: after the stale-bit clear and the lazy switch to init_mm, a CPU still on a
  dynamic ASID of a global-ASID mm reloads, and a CPU on a global ASID returns at once ("Broadcast
  ASIDs are always kept up to date with INVLPGB").
- ``finish_asid_transition`` (while ``asid_transition``): for each CPU in the mask, spin while its
  ``loaded_mm`` is ``LOADED_MM_SWITCHING``; if a CPU running the mm is not on the global ASID,
  ``flush_tlb_multi`` to the mask and return; else clear ``asid_transition``.

Consequences for the schemes: under a global ASID no flush IPIs a lazy CPU, so no lazy CPU is
moved to init_mm and no stale bit is trimmed: the mask only grows, a superset of the CPUs lazy
on the mm again (before the mm gets its ASID, the lazy mask's IPIs apply as in v6.14).

Arch mutants: ``x86-invlpgb-no-switching-spin``, ``finish_asid_transition`` without the spin (a
CPU in ``LOADED_MM_SWITCHING`` taken for one not running the mm): the transition ends while that
CPU loads the mm on a dynamic ASID, which no broadcast reaches; ``x86-invlpgb-no-straggler-ipi``,
the transition ended without the IPI to the CPUs still running the mm on a dynamic ASID.

Interpretations (the literal reading in brackets):

- The base is the lazy mask as fixed in 6.17.5 (83b0177a6c48 included) [v6.15 as released still
  had X1], so that the variant's own findings are not X1's.
- A CPU on a global ASID holds ``tlb_gen = TLB_GEN_BROADCAST`` (its per-CPU field): every flush of such an mm is a
  broadcast that reaches every CPU's entries for the ASID by hardware, so its TLB is as new as
  the newest completed flush [the kernel keeps no generation for a global ASID].
- The global ASID space is 57 ASIDs (6 to 62, one word's bitmap), so that wrap-around and its
  full flush happen within a run [the kernel's is thousands]; ``jiffies`` is the machine's clock
  in milliseconds (HZ=1000); ``current->pid`` is the running task's index.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from emu.arch.x86 import FLUSH_TLB_FUNC
from emu.arch.x86_lazy_mask import X86LazyMask
from emu.checks.oracle import CPUMASK_MISSING, MASK_AT_SWITCH_PREV
from emu.kernel.protocols import CellDecl
from emu.machine.layout import (
    CPU_WORDS,
    INIT_MM,
    LOADED_MM_SWITCHING,
    TG_ASID,
    TG_ASID_TRANSITION,
    TG_DONE,
    TG_FREED,
    TG_GEN,
)

if TYPE_CHECKING:
    from emu.kernel.surface import KernelCpu

TLB_GEN_BROADCAST = 1 << 62  # a CPU on a global ASID: kept current by the broadcasts (see the docstring)
TLB_NR_DYN_ASIDS = 6  # arch/x86/include/asm/tlbflush.h: the per-CPU dynamic ASIDs; global ones come after
MAX_ASID_AVAILABLE = 63  # the model's global ASID space (an interpretation: one word's bitmap)
ACTIVE_CPUS_THRESHOLD = 3  # consider_global_asid: mm_active_cpus_exceeds(mm, 3)
# the global allocator's words, on init_mm's tlb_gen line (init_mm is never flushed by an mm range)
G_LAST, G_USED, G_FREED, G_AVAIL = 3, 4, 5, 6


# more than 3 CPUs on one mm at a flush (consider_global_asid): two processes of 16 long-lived threads, few sleeps
INVLPGB_LOAD = {"procs": 2, "threads": 16, "p_exit": 0.002, "p_block": 0.01, "p_kthread": 0.01, "p_munmap": 0.05}
INVLPGB_DET_CPUS = 5  # mm_active_cpus_exceeds(mm, 3) needs 4 CPUs on the mm: more than the deterministic machine's 3


class X86Invlpgb(X86LazyMask):
    name = "x86-invlpgb"
    # cpu_tlbstate.loaded_mm_asid when it is the mm's global ASID, else 0
    percpu = X86LazyMask.percpu + (("loaded_asid", 1),)
    summary = "v6.15 INVLPGB: an mm on more than 3 CPUs gets a global ASID; its flushes are broadcasts, no IPIs"
    source = "arch/x86/mm/tlb.c with the INVLPGB series v14 (20250226030129.530345-1-riel@surriel.com, 4afeb0ed1753 and siblings)"
    in_generic_cells = False  # its rows need a load that puts more than 3 CPUs on an mm: declared below
    counters = ("global_asids", "asid_wraps")
    labels = {"global_asids": "global ASIDs handed out", "asid_wraps": "global ASID space wrap-arounds (full flush)"}
    cells: ClassVar[tuple[CellDecl, ...]] = (
        *(
            CellDecl(s, "x86-invlpgb", options=o, workload=INVLPGB_LOAD, det_cpus=INVLPGB_DET_CPUS, why=f"{s}: {why}")
            for s, o, why in (
                ("refcount", {}, "a lazy use holds a count; every flush of a global-ASID mm is a broadcast that reaches every CPU"),
                ("luto-hazard", {}, "online CPUs scanned: the mask is not used"),
                ("hazptr", {"fix": "skip-init-mm,drop-irqs-off"}, "online CPUs scanned: the mask is not used"),
                ("refcount", {"memory_model": "tso"}, "the transition's walk and loaded_mm_asid's order hold under TSO"),
            )
        ),
        CellDecl(
            "refcount",
            "x86-invlpgb",
            "missed_flush",
            arch_mutant="x86-invlpgb-no-straggler-ipi",
            workload=INVLPGB_LOAD,
            det_cpus=INVLPGB_DET_CPUS,
            why="the transition ends with CPUs still running the mm on dynamic ASIDs, which no broadcast reaches",
        ),
    )
    spin_on_switching: ClassVar[bool] = True  # finish_asid_transition waits out LOADED_MM_SWITCHING
    ipi_stragglers: ClassVar[bool] = True  # finish_asid_transition IPIs the mask while a CPU runs the mm on a dynamic ASID

    def __init__(self, cpu: KernelCpu) -> None:
        super().__init__(cpu)
        loaded_asid = cpu.layout.arch_field("loaded_asid")
        self.loaded_asid = cpu.layout.cpu(cpu.cpu) + loaded_asid  # cpu_tlbstate.loaded_mm_asid, if global
        self.loaded_asid_base = cpu.layout.cpu_base + loaded_asid
        self.g = cpu.layout.tlbgen(INIT_MM)  # global_asid_lock's line: last, used, freed, available
        if cpu.cpu == 0 and not self.w[self.g + G_AVAIL] and not self.w[self.g + G_USED]:
            self.w[self.g + G_LAST] = TLB_NR_DYN_ASIDS
            self.w[self.g + G_AVAIL] = MAX_ASID_AVAILABLE - TLB_NR_DYN_ASIDS

    def mm_global_asid(self, mm: int) -> int:
        return self.atomics.smp_load_acquire(self.tg(mm) + TG_ASID)

    # -- switch_mm_irqs_off -----------------------------------------------------------------------
    def switch_mm_irqs_off(self, prev: int, next: int) -> None:
        irq = self.irq
        if not (irq.disabled or irq.in_irq):
            self.lockdep_assert_irqs_disabled(next)
        w, a = self.w, self.atomics
        real_prev = w[self.loaded]
        was_lazy = a.READ_ONCE(self.is_lazy)
        if was_lazy:
            a.WRITE_ONCE(self.is_lazy, 0)
        user_next = next != INIT_MM and next != 0
        if real_prev == next:
            if user_next and not self.in_mm_cpumask(next):
                self.oracle.report(CPUMASK_MISSING, next, MASK_AT_SWITCH_PREV, other=self.cpu)
                a.cpumask_set_cpu(self.mm_cpumask(next), self.cpu)
            if not user_next:
                return
            ga = self.mm_global_asid(next)
            if ga and a.READ_ONCE(self.loaded_asid) != ga:  # mm_needs_global_asid: reload onto the global ASID
                w[self.tlb_gen] = TLB_GEN_BROADCAST
                a.WRITE_ONCE(self.loaded_asid, ga)
                return
            if a.READ_ONCE(self.loaded_asid):
                return  # "Broadcast TLB invalidation keeps this ASID up to date all the time."
            if was_lazy:
                self.lazy_tlb_gen_check(next)
            return
        a.WRITE_ONCE(self.tlbstate, LOADED_MM_SWITCHING)
        if user_next and not self.in_mm_cpumask(next):
            a.cpumask_set_cpu(self.mm_cpumask(next), self.cpu)
            a.smp_mb__after_atomic()  # x86's set_bit is a locked op, a full barrier
        else:
            self.switch_mm_mb()
        gen = a.atomic_read(self.tg(next) + TG_GEN) if user_next else 0
        ga = self.mm_global_asid(next) if user_next else 0  # choose_new_asid: the global ASID, no flush
        w[self.tlb_gen] = TLB_GEN_BROADCAST if ga else gen
        self.c.tlb_done_at = self.tg(next) + TG_DONE
        self.load_mm(next)
        a.WRITE_ONCE(self.tlbstate, next)
        a.WRITE_ONCE(self.loaded_asid, ga)  # this_cpu_write(cpu_tlbstate.loaded_mm_asid, ns.asid)
        if real_prev != INIT_MM and real_prev != 0 and not self.in_mm_cpumask(real_prev):
            self.oracle.report(CPUMASK_MISSING, real_prev, MASK_AT_SWITCH_PREV, other=self.cpu)

    # -- flushes ---------------------------------------------------------------------------------
    def flush_tlb_mm_range(self, mm: int, freed_tables: bool) -> None:
        tg = self.tg(mm)
        new_gen = self.atomics.atomic_inc_return(tg + TG_GEN)
        if self.mm_global_asid(mm):
            self.broadcast_tlb_flush(mm, freed_tables)
        else:
            multi = any(c != self.cpu for c in self.mm_cpumask_cpus(mm))  # cpumask_any_but(mm_cpumask(mm), cpu) < nr_cpu_ids
            self.flush_tlb_send(mm, freed_tables)
            if multi:
                self.consider_global_asid(mm)
        w = self.w
        if w[tg + TG_DONE] < new_gen:
            w[tg + TG_DONE] = new_gen
        if freed_tables and w[tg + TG_FREED] < new_gen:
            w[tg + TG_FREED] = new_gen

    def broadcast_tlb_flush(self, mm: int, freed_tables: bool) -> None:
        """INVLPGB for the mm's global ASID (every CPU's entries, by hardware), the transition's
        stragglers, then TLBSYNC."""
        self.tlb_broadcast(mm)
        self.finish_asid_transition(mm, freed_tables)

    def finish_asid_transition(self, mm: int, freed_tables: bool) -> None:
        a, tg = self.atomics, self.tg(mm)
        if not a.READ_ONCE(tg + TG_ASID_TRANSITION):
            return
        bc_asid = a.READ_ONCE(tg + TG_ASID)
        cpus = self.mm_cpumask_cpus(mm)
        for c in cpus:
            state = self.tlbstate_base + c * CPU_WORDS
            if self.spin_on_switching:
                while a.READ_ONCE(state) == LOADED_MM_SWITCHING:  # "The remote CPU is context switching."
                    self.c.cpu_relax()
            if a.READ_ONCE(state) != mm:
                continue
            if self.ipi_stragglers and a.READ_ONCE(self.loaded_asid_base + c * CPU_WORDS) != bc_asid:
                self.flush_tlb_multi(mm, cpus, freed_tables)  # "send a TLB flush IPI ... stragglers"
                return
        a.WRITE_ONCE(tg + TG_ASID_TRANSITION, 0)  # mm_clear_asid_transition

    def flush_tlb_func(self, mm: int) -> None:
        self.count_flush_ipi(mm)
        w, a = self.w, self.atomics
        if w[self.loaded] != mm:
            self.flush_tlb_func_not_loaded(mm)
            return
        if a.READ_ONCE(self.is_lazy):
            if self.unlazy:
                self.c.strategy.unlazy_mm_irqs_off()
            else:
                self.switch_mm_irqs_off(0, INIT_MM)
            return
        ga = self.mm_global_asid(mm)
        if ga and a.READ_ONCE(self.loaded_asid) != ga:
            self.switch_mm_irqs_off(0, mm)  # "Reload the ASID if transitioning into or out of a global ASID"
        if a.READ_ONCE(self.loaded_asid):
            return  # "Broadcast ASIDs are always kept up to date with INVLPGB."
        w[self.tlb_gen] = a.atomic_read(self.tg(mm) + TG_GEN)

    # -- the global ASIDs ----------------------------------------------------------------------
    def consider_global_asid(self, mm: int) -> None:
        pid = self.w[self.c.CURR]
        jiffies = self.c.clock_ns() // 1_000_000
        if (pid & 0x1F) != (jiffies & 0x1F):  # "Check every once in a while."
            return
        if self.mm_active_cpus_exceeds(mm, ACTIVE_CPUS_THRESHOLD):
            self.use_global_asid(mm)

    def mm_active_cpus_exceeds(self, mm: int, threshold: int) -> bool:
        cpus = self.mm_cpumask_cpus(mm)
        if len(cpus) <= threshold:
            return False
        a, count = self.atomics, 0
        for c in cpus:
            if a.READ_ONCE(self.tlbstate_base + c * CPU_WORDS) != mm or a.READ_ONCE(self.is_lazy_base + c * CPU_WORDS):
                continue
            count += 1
            if count > threshold:
                return True
        return False

    def use_global_asid(self, mm: int) -> None:
        a, w, g, tg = self.atomics, self.w, self.g, self.tg(mm)
        k = a.lock(g)  # guard(raw_spinlock_irqsave)(&global_asid_lock)
        try:
            if w[tg + TG_ASID] or not w[g + G_AVAIL]:
                return  # already global, or "Ran out of global ASIDs"
            asid = self.allocate_global_asid()
            if not asid:
                return
            w[tg + TG_ASID_TRANSITION] = 1  # before the ASID: finish_asid_transition must see it once it sees the ASID
        finally:
            a.unlock(k)
        a.smp_store_release(tg + TG_ASID, asid)
        self.c.count("global_asids")

    def allocate_global_asid(self) -> int:
        w, g = self.w, self.g
        if w[g + G_LAST] >= MAX_ASID_AVAILABLE - 1:
            self.reset_global_asid_space()
        used, asid = w[g + G_USED], w[g + G_LAST]
        while asid < MAX_ASID_AVAILABLE and (used >> asid) & 1:  # find_next_zero_bit
            asid += 1
        if asid >= MAX_ASID_AVAILABLE:
            return 0
        w[g + G_USED] = used | (1 << asid)
        w[g + G_LAST] = asid
        w[g + G_AVAIL] -= 1
        return asid

    def reset_global_asid_space(self) -> None:
        """The full flush (``invlpgb_flush_all_nonglobals``), then the freed ASIDs may be handed out again."""
        w, g = self.w, self.g
        self.c.count("tlb_broadcasts")
        self.c.count("asid_wraps")
        w[g + G_USED] &= ~w[g + G_FREED]
        w[g + G_FREED] = 0
        w[g + G_LAST] = TLB_NR_DYN_ASIDS

    def destroy_context(self, mm: int) -> None:
        """``mm_free_global_asid``: "The global ASID can be re-used only after flush at wrap-around." """
        a, w, g, tg = self.atomics, self.w, self.g, self.tg(mm)
        k = a.lock(g)
        asid = w[tg + TG_ASID]
        if asid:
            w[g + G_FREED] |= 1 << asid
            w[g + G_AVAIL] += 1
        w[tg + TG_ASID] = w[tg + TG_ASID_TRANSITION] = 0
        a.unlock(k)


class X86InvlpgbNoSwitchingSpin(X86Invlpgb):
    name = "x86-invlpgb-no-switching-spin"
    summary = "finish_asid_transition without its spin on LOADED_MM_SWITCHING: a CPU still switching is skipped"
    mutant_of = "x86-invlpgb"
    spin_on_switching = False


class X86InvlpgbNoStragglerIpi(X86Invlpgb):
    name = "x86-invlpgb-no-straggler-ipi"
    summary = "finish_asid_transition ends the transition without IPIing the CPUs still on a dynamic ASID"
    mutant_of = "x86-invlpgb"
    ipi_stragglers = False


__all__ = ["FLUSH_TLB_FUNC", "X86Invlpgb", "X86InvlpgbNoStragglerIpi", "X86InvlpgbNoSwitchingSpin"]
