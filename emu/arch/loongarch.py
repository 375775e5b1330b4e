"""LoongArch: ``mm_cpumask`` set at every switch, cleared by a flush on a CPU without the mm's context.

Models arch/loongarch/include/asm/mmu_context.h, arch/loongarch/mm/tlb.c and the flushes of
arch/loongarch/kernel/smp.c as in mainline (the MIPS-derived per-CPU ASID scheme):

- ``switch_mm_irqs_off``: a new ASID if this CPU's context for ``next`` is of an older version (or
  was zeroed), the PGD and ASID written, then ``cpumask_set_cpu(cpu, mm_cpumask(next))``; nothing is
  cleared, so a lazy CPU (``enter_lazy_tlb`` is a no-op) stays in the mask of the mm it borrows.
- ``drop_mmu_context(mm, cpu)``, with interrupts saved off: if the CPU's current ASID is the mm's
  and ``!current->mm || current->mm == mm`` (a kernel thread lazy on it, or a task running it), a
  new ASID and the bit stays; otherwise ``cpu_context(cpu, mm) = 0`` and the bit is cleared.
- ``local_flush_tlb_range`` (the IPI handler of ``flush_tlb_range``) and ``local_flush_tlb_mm``:
  with a valid context (``asid_valid``), a flush by address for a small range, or
  ``drop_mmu_context`` for a large one; without one, ``cpumask_clear_cpu`` at once, whatever the
  CPU has loaded.
- ``flush_tlb_mm`` returns at once when ``mm_users`` is 0 ("happens as a result of exit_mmap()"):
  **the exit flush does nothing**, no IPI. ``flush_tlb_range``: if ``mm_users != 1 ||
  current->mm != mm``, ``on_each_cpu_mask(mm_cpumask(mm), flush_tlb_range_ipi)``; otherwise (the
  only thread flushes its own mm) every other online CPU's ``cpu_context(cpu, mm)`` is set to 0,
  with no IPI, and the flush is local.

So the bit of a CPU lazy on the mm goes only through the zeroing: a single-threaded process's
own flush zeroes the context of a CPU lazy on it (no IPI, the bit stays), and a later flush that
IPIs the mask (the mm got a second user: a thread, ``kthread_use_mm``) finds that context invalid
and clears the bit while the CPU is still lazy on the mm. TLB-wise that is sound (the CPU takes a
new ASID when it next switches to the mm), but the mask is then not a superset of the lazy CPUs.
LoongArch does not select ``MMU_LAZY_TLB_SHOOTDOWN``: a shoot-lazies violation here is a finding
of the emulator, not a kernel bug.

The same zeroing races with ``kthread_use_mm`` as powerpc's single-threaded trim did (B8, fixed there
by a665eec0a22e): ``flush_tlb_range`` reads ``mm_users == 1``, a kernel thread takes
``mmget_not_zero`` and switches to the mm with the context this CPU still had, and the zeroing then
invalidates that context while the kernel thread uses the mm: the flush, local only, missed it,
and it runs with whatever its TLB held. The model reports it when the next flush by IPI finds the
context of the mm it runs (``current->mm``) zeroed, and clears its bit (``cpumask_missing``). Seen
in 3 of 12 free runs of refcount (8 CPUs, 10-15 s, ``--use-mm-bursts --p-munmap 0.5 --procs 4
--threads 1 --kthreads 2 --p-use-mm 1``), in none of 6 ``--sched pct`` runs: a real window, too
rare for a matrix cell. (arch/mips/kernel/smp.c, whence this code comes, zeroes the other CPUs'
``cpu_context`` in its ``flush_tlb_mm`` the same way.)

The arch mutant ``loongarch-drop-forgets-lazy`` is ``drop_mmu_context`` tested on ``current->mm ==
mm`` alone (a real-shaped slip: it forgets the kernel thread, whose ``current->mm`` is NULL): a
CPU lazy on the mm loses its context and its bit at the first large flush that reaches it.

Interpretations (the literal reading in brackets):

- A context's validity is modelled only for the CPU's loaded mm: the mm record's arch word counts
  the zeroings (the single-threaded flush), and the CPU record's arch word holds the count when
  the CPU took its context; they differ once the context was zeroed [the kernel keeps
  ``mm->context.asid[cpu]`` with a version]. ASID versions and rollover are not modelled: a CPU's
  context for the mm it has loaded changes only by a zeroing or by ``drop_mmu_context``. For a CPU
  without the mm loaded, a small flush keeps the bit (its context taken as valid) and a large one
  clears it (``drop_mmu_context``: not the current ASID) [with an invalid context the kernel clears
  it at a small flush too].
- A munmap that frees page-table pages (``--p-free-tables``) is a large range (above
  ``tlbsize / 8`` pairs: ``drop_mmu_context``); any other is a small one, flushed by address.
- Flushes do not rely on the mask in the oracle's sense (``flush_relies_on_mask`` is false): a
  CPU with the mm loaded and an invalidated context is legitimately out of the mask, which the
  oracle's check of the loaded mm against the mask cannot tell from a missed flush.
- Not modelled, but seen in the reading: ``exec_mmap`` enables interrupts before ``activate_mm``
  (LoongArch does not select ``ARCH_WANT_IRQS_OFF_ACTIVATE_MM``), so a flush IPI can meet
  ``current->mm`` already the new mm while the old borrowed one is still loaded; a window that the
  emulator's ``exec_mmap`` (interrupts off across the switch on every arch) does not open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emu.arch.base import Arch
from emu.checks.oracle import CPUMASK_MISSING, site
from emu.kernel.protocols import CellDecl
from emu.machine.irq import ipi_function
from emu.machine.layout import INIT_MM, M_ARCH, M_USERS
from emu.machine.trace import event

if TYPE_CHECKING:
    from emu.kernel.surface import KernelCpu

FLUSH_TLB_RANGE_IPI = ipi_function("flush_tlb_range_ipi", purpose="ipis_flush")
FLUSH_TLB_RANGE_IPI_LARGE = ipi_function("flush_tlb_range_ipi(large)", purpose="ipis_flush")
EV_CTX_ZEROED = event("la_ctx_zeroed", "flush_tlb_range {mm:a}: its only thread flushes; other CPUs' contexts zeroed, no IPI")
AT_ZEROED_IN_USE = site("loongarch: a flush finds the context of the mm this CPU runs zeroed: it missed that flush")
EV_MASK_CLEAR_LOADED = event("la_mask_clear_loaded", "{mm:a}'s bit cleared with it still loaded here (context invalid or dropped)")


# a large flush (drop_mmu_context) reaches a lazy CPU by IPI from a second thread: two threads, flushing often, and
# no kthread_use_mm, the only way back from one user to two after a single-threaded flush zeroed the lazy CPU's context
NO_SECOND_USER = {"p_munmap": 0.3, "p_free_tables": 1.0, "threads": 2, "procs": 2, "p_use_mm": 0.0}
# and that way: single-threaded processes flushing often (zeroing), kernel threads adopting their mms (a second user)
ZEROED_THEN_SHARED = {"p_munmap": 0.3, "threads": 1, "procs": 2, "p_use_mm": 1.0, "kthreads": 2}


class Loongarch(Arch):
    name = "loongarch"
    summary = "mask set at switch; a flush clears it where the CPU has no valid context (drop_mmu_context); no exit flush"
    source = "arch/loongarch/include/asm/mmu_context.h and arch/loongarch/mm/tlb.c, smp.c (flush_tlb_*) as of v6.14"
    # LoongArch's kernel makes __smp_rmb/__smp_wmb (and __smp_mb) a dbar instruction
    # (arch/loongarch/include/asm/barrier.h), not compiler barriers as on TSO: it reorders too
    memory_model = "weak"
    mm_words = 1  # M_ARCH: the count of zeroings of the mm's contexts (a context taken before the last one is invalid)
    percpu = (("ctx_zeroings", 1),)  # the zeroing count when this CPU took its loaded mm's context
    flush_relies_on_mask = False
    counters = ("mask_clears_loaded",)  # bits cleared of a CPU that still has the mm loaded (lazy on it, or running it)
    labels = {"mask_clears_loaded": "mm_cpumask bits cleared with the mm still loaded"}
    # LoongArch does not select MMU_LAZY_TLB_SHOOTDOWN: the shoot-lazies cells are the emulator's findings
    cells = (
        CellDecl(
            "shoot-lazies",
            "loongarch",
            workload=NO_SECOND_USER,
            why="without a second user after a zeroing no lazy CPU loses its bit: drop_mmu_context keeps it (!current->mm)",
        ),
        # --hotplug: loongson_cpu_disable (arch/loongarch/kernel/smp.c) clears no mm_cpumask, unlike powerpc's __cpu_disable
        CellDecl(
            "shoot-lazies",
            "loongarch",
            options={"hotplug": True},
            workload=NO_SECOND_USER,
            why="the dying CPU leaves its lazy mm before going offline (sched_force_init_mm); its bit stays, and no IPI targets it",
        ),
        CellDecl(
            "shoot-hotplug-race",
            "loongarch",
            "freed_while_lazy",
            options={"hotplug": True},
            workload=NO_SECOND_USER,
            also=("use_after_free",),
            why="B2 without powerpc's mask clear: offline while still lazy, the CPU takes no IPI, so cleanup_lazy_tlbs misses it",
        ),
        CellDecl(
            "shoot-lazies",
            "loongarch",
            "freed_while_lazy",
            workload=ZEROED_THEN_SHARED,
            also=("use_after_free", "cpumask_missing"),  # cpumask_missing: the zeroing's race with kthread_use_mm
            why="finding: an mm's only thread zeroes a lazy CPU's context (no IPI); once kthread_use_mm adds a user, an IPI clears its bit",
        ),
        CellDecl(
            "shoot-lazies",
            "loongarch",
            "freed_while_lazy",
            arch_mutant="loongarch-drop-forgets-lazy",
            workload=NO_SECOND_USER,
            also=("use_after_free",),
            why="drop_mmu_context without !current->mm: a large flush clears a lazy CPU's bit, cleanup_lazy_tlbs misses it",
        ),
        CellDecl(
            "refcount",
            "loongarch",
            arch_mutant="loongarch-drop-forgets-lazy",
            workload=NO_SECOND_USER,
            why="the lazy reference holds; TLB-wise the dropped context is sound (a new ASID at the next switch)",
        ),
        CellDecl(
            "hazptr",
            "loongarch",
            options={"fix": "skip-init-mm,drop-irqs-off"},
            why="H1, H3 fixed by interpretations (drop irqs off, init_mm unpublished): publish, smp_mb, scan, retire",
        ),
    )

    def __init__(self, cpu: KernelCpu) -> None:
        super().__init__(cpu)
        cpu.irq.handlers[FLUSH_TLB_RANGE_IPI] = self.flush_tlb_range_ipi
        cpu.irq.handlers[FLUSH_TLB_RANGE_IPI_LARGE] = self.flush_tlb_range_ipi_large
        self.ctx = cpu.layout.cpu(cpu.cpu) + cpu.layout.arch_field(
            "ctx_zeroings"
        )  # the zeroing count when this CPU took its loaded mm's context

    def ctx_epoch(self, mm: int) -> int:
        """How many times ``mm``'s contexts on other CPUs were zeroed (its record's arch word)."""
        return self.atomics.atomic_read(self.mm_record(mm) + M_ARCH)

    def asid_valid_loaded(self, mm: int) -> bool:
        """``asid_valid(mm, cpu)`` for the mm this CPU has loaded: not zeroed since it took it."""
        return self.w[self.ctx] == self.ctx_epoch(mm)

    # -- asm/mmu_context.h ---------------------------------------------------------------------
    def switch_mm_irqs_off(self, prev: int, next: int) -> None:
        self.lockdep_assert_irqs_disabled(next)
        user_next = next != INIT_MM and next != 0
        if user_next:
            self.w[self.ctx] = self.ctx_epoch(next)  # asid_valid, or get_new_mmu_context: a valid context
        if self.loaded_mm() != next:
            self.load_mm(next)  # atomic_update_pgd_asid (init_mm: invalid_pg_dir)
        if user_next:
            # "Mark current->active_mm as not "active" anymore": the bit is set after the PGD is loaded;
            # a CPU whose context was valid kept its bit, one with a new ASID has nothing stale to miss
            self.atomics.cpumask_set_cpu(self.mm_cpumask(next), self.cpu)

    def drop_mmu_context(self, mm: int) -> None:
        flags = self.irq.local_irq_save()
        if self.loaded_mm() == mm and self.drop_keeps(mm):  # asid == cpu_asid(cpu, mm)
            self.w[self.ctx] = self.ctx_epoch(mm)  # get_new_mmu_context; write_csr_asid
        else:
            if self.loaded_mm() == mm:
                self.w[self.ctx] = -1  # cpu_context(cpu, mm) = 0: "Will get a new context next time"
                self.c.count("mask_clears_loaded")
                self.c.trace(EV_MASK_CLEAR_LOADED, mm)
            self.atomics.cpumask_clear_cpu(self.mm_cpumask(mm), self.cpu)
        self.irq.local_irq_restore(flags)

    def drop_keeps(self, mm: int) -> bool:
        """``!current->mm || current->mm == mm``: a kernel thread lazy on it, or a task running it."""
        cur = self.current_mm()
        return not cur or cur == mm

    # -- mm/tlb.c ------------------------------------------------------------------------------
    def local_flush_tlb_range(self, mm: int, large: bool) -> None:
        # interpretation: the context of an mm not loaded here is taken as valid
        valid = self.asid_valid_loaded(mm) if self.loaded_mm() == mm else not large
        if not valid:
            if self.loaded_mm() == mm:
                self.c.count("mask_clears_loaded")
                self.c.trace(EV_MASK_CLEAR_LOADED, mm)
                if self.current_mm() == mm:
                    # it runs the mm for real: its context was zeroed while in use (the zeroing flush took
                    # it for a single-threaded mm's), so that flush missed it, and it now leaves the mask
                    self.oracle.report(CPUMASK_MISSING, mm, AT_ZEROED_IN_USE, other=self.cpu)
            self.atomics.cpumask_clear_cpu(self.mm_cpumask(mm), self.cpu)
        elif large:
            self.drop_mmu_context(mm)  # "size > tlbsize / 8": bump the ASID instead of flushing by address

    def flush_tlb_range_ipi(self, mm: int) -> None:
        self.count_flush_ipi(mm)
        self.local_flush_tlb_range(mm, large=False)

    def flush_tlb_range_ipi_large(self, mm: int) -> None:
        self.count_flush_ipi(mm)
        self.local_flush_tlb_range(mm, large=True)

    # -- kernel/smp.c --------------------------------------------------------------------------
    def flush_tlb_mm_exit(self, mm: int) -> None:
        """``tlb_flush`` with ``tlb->fullmm``: ``flush_tlb_mm`` returns at once, ``mm_users`` is 0."""

    def flush_tlb_munmap(self, mm: int, freed_tables: bool) -> None:
        self.c.count("tlb_flushes")
        self.flush_tlb_range(mm, large=freed_tables)

    def flush_tlb_range(self, mm: int, large: bool) -> None:
        a = self.atomics
        if a.atomic_read(self.mm_record(mm) + M_USERS) != 1 or self.current_mm() != mm:
            fid = FLUSH_TLB_RANGE_IPI_LARGE if large else FLUSH_TLB_RANGE_IPI
            self.c.irq.on_each_cpu_mask(self.mm_cpumask_cpus(mm), fid, mm, wait=True)
            return
        # "cpu_context(cpu, mm) = 0" for every other online CPU: the zeroing count goes up, and this
        # CPU, whose context is not zeroed, keeps its own. Between the read of mm_users and the zeroing a
        # kthread_use_mm may make the mm shared and load it with the context about to be zeroed (see the docstring)
        self.c.trace(EV_CTX_ZEROED, mm)
        flags = self.irq.local_irq_save()
        a.atomic_inc(self.mm_record(mm) + M_ARCH)
        if self.loaded_mm() == mm:
            self.w[self.ctx] = self.ctx_epoch(mm)
        self.irq.local_irq_restore(flags)
        self.local_flush_tlb_range(mm, large)


class LoongarchDropForgetsLazy(Loongarch):
    name = "loongarch-drop-forgets-lazy"
    summary = "drop_mmu_context keeps the context only for current->mm == mm: a CPU lazy on the mm loses its bit"
    mutant_of = "loongarch"

    def drop_keeps(self, mm: int) -> bool:
        return self.current_mm() == mm  # without "!current->mm ||": a kernel thread borrowing the mm falls through
