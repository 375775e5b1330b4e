"""RISC-V with ASIDs: ``mm_cpumask`` accumulates every CPU that ran the mm; flushes IPI the mask.

Models arch/riscv/mm/context.c and arch/riscv/mm/tlbflush.c as in mainline since 82dd33fde026
"riscv: asid: Fixup stale TLB entry cause application crash" (2023; cover
20230226150137.1919750-1-geomatsi@gmail.com), with the ASID allocator in use
(``use_asid_allocator``: the hardware has more than twice as many ASIDs as CPUs):

- ``switch_mm``: nothing if ``prev == next`` (a lazy CPU going back to the mm it borrowed reloads
  nothing); else ``set_mm``: ``cpumask_set_cpu(cpu, mm_cpumask(next))`` ("when using asid, keep all
  CPUs footmarks in cpumask() until mm reset"), then ``set_mm_asid`` writes ``satp``. The bit of
  ``prev`` is not cleared (only the no-ASID path clears it). ``enter_lazy_tlb`` is the generic no-op.
  So the mask is a superset of the CPUs lazy on the mm.
- ``tlb_flush`` (arch/riscv/include/asm/tlb.h): ``flush_tlb_mm`` (the whole ASID) for the exit flush
  and a flush that freed page tables; ``flush_tlb_mm_range`` otherwise. Both are
  ``__flush_tlb_range(mm, mm_cpumask(mm), ...)``: nothing if the mask is empty; a local flush if
  this CPU is the only one in it; else ``on_each_cpu_mask(mask, __ipi_flush_tlb_range_asid)``, this
  CPU included, lazy CPUs included (nothing is skipped, and the handler only flushes: it does not
  move a lazy CPU off the mm).

``riscv-trim``: Xu Lu's posted patch, "[PATCH 2/2] riscv: mm: Clear cpu in mm_cpumask after
local_flush_tlb_all_asid" (20250827131444.23893-3-luxu.kernel@bytedance.com, 27 Aug 2025; resent
as 20250901114141.5438-3-luxu.kernel@bytedance.com; not merged). Its exact rule, in
``local_flush_tlb_range_mm`` (the IPI handler and the local flush alike): after a full-ASID flush
(``size == FLUSH_TLB_MAX_SIZE``, i.e. ``flush_tlb_mm``, or a range above ``tlb_flush_all_threshold``)
``if (mm && mm != current->active_mm) cpumask_clear_cpu(raw_smp_processor_id(), mm_cpumask(mm))``.
The test is on ``active_mm``, which a kernel thread borrowing the mm has: **a CPU lazy on the mm
keeps its bit**, and the exiting CPU (lazy on its own mm after ``exit_mm``) too. So the mask stays
a superset of the lazy CPUs, and a scan of it (shoot-lazies' ``cleanup_lazy_tlbs``) misses none.

The arch mutant ``riscv-trim-forgets-lazy`` is the trim tested on ``current->mm`` instead (a
real-shaped slip: the two differ only for a kernel thread): it clears the bit of a lazy CPU that
still has the mm in ``satp``, which then misses the mm's flushes (and shoot-lazies misses it).

Interpretations (the literal reading in brackets):

- A munmap flush that freed no page tables is a range of a few pages, below
  ``tlb_flush_all_threshold`` (64): a flush by address, so the trim never runs there [the kernel
  flushes the whole ASID, and trims, for any range above 64 pages].
- The IPI path is modelled (``riscv_use_sbi_for_rfence()`` false); with the SBI remote fence the
  targets run no kernel code and the trim never runs on them.
- The ASID allocator (versions, rollover, ``context_tlb_flush_pending``) is not modelled; it
  never clears the mask in the code read (mainline's ``__new_context`` has no ``cpumask_clear``).
- Not modelled, but seen in the reading: ``exec_mmap`` (fs/exec.c) enables interrupts before
  ``activate_mm`` on an arch without ``ARCH_WANT_IRQS_OFF_ACTIVATE_MM`` (riscv has none), so a
  flush IPI can find ``active_mm`` already the new mm while ``satp`` still holds the old borrowed
  one; the trim then clears the bit of a CPU that still has that mm loaded. The emulator's
  ``exec_mmap`` keeps interrupts off across the switch on every arch, so this window is not there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from emu.arch.base import Arch
from emu.kernel.protocols import CellDecl
from emu.machine.irq import ipi_function
from emu.machine.layout import INIT_MM

if TYPE_CHECKING:
    from emu.kernel.surface import KernelCpu

IPI_FLUSH_TLB_ALL_ASID = ipi_function("__ipi_flush_tlb_range_asid(all)", purpose="ipis_flush")
IPI_FLUSH_TLB_RANGE_ASID = ipi_function("__ipi_flush_tlb_range_asid", purpose="ipis_flush")


FREQUENT_FREED_TABLES = {"p_munmap": 0.05, "p_free_tables": 1.0}  # every munmap frees page tables, five times as many
HAZPTR_FIXED = "skip-init-mm,drop-irqs-off"
# Under --hotplug, on an arch whose __cpu_disable clears no mm_cpumask (riscv's arch/riscv/kernel/cpu-hotplug.c,
# LoongArch's loongson_cpu_disable: no clear_tasks_mm_cpumask, unlike powerpc): (scheme, expected, also, why)
HOTPLUG_CELLS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    (
        "shoot-lazies",
        "clean",
        (),
        "the dying CPU leaves its lazy mm before going offline (sched_force_init_mm); its bit stays, and no IPI targets it",
    ),
    (
        "shoot-hotplug-race",
        "freed_while_lazy",
        ("use_after_free",),
        "B2 without powerpc's mask clear: offline while still lazy, the CPU takes no IPI, so cleanup_lazy_tlbs misses it",
    ),
)


class Riscv(Arch):
    name = "riscv"
    summary = "ASIDs (82dd33fde026): mask set at switch, never cleared: every CPU that ran the mm; flushes IPI the mask"
    source = "arch/riscv/mm/context.c and tlbflush.c since 82dd33fde026 (20230226150137.1919750-1-geomatsi@gmail.com)"
    # RVWMO lets stores pass stores and loads pass loads, and is other-multi-copy-atomic like ARMv8,
    # which LKMM's ordering (the weak model) covers
    memory_model = "weak"
    # neither RISC-V model selects MMU_LAZY_TLB_SHOOTDOWN: the shoot-lazies cells are the emulator's findings
    cells: ClassVar[tuple[CellDecl, ...]] = (
        CellDecl("shoot-lazies", "riscv", why="82dd33fde026: with ASIDs the mask keeps every CPU that ran the mm, lazy ones included"),
        *(CellDecl(s, "riscv", expect, options={"hotplug": True}, also=also, why=why) for s, expect, also, why in HOTPLUG_CELLS),
        CellDecl(
            "hazptr",
            "riscv",
            options={"fix": HAZPTR_FIXED},
            why="H1, H3 fixed by interpretations (drop irqs off, init_mm unpublished): publish, smp_mb, scan, retire",
        ),
    )
    trim_after_flush_all = False  # Xu Lu's posted trim after local_flush_tlb_all_asid

    def __init__(self, cpu: KernelCpu) -> None:
        super().__init__(cpu)
        cpu.irq.handlers[IPI_FLUSH_TLB_ALL_ASID] = self.ipi_flush_tlb_all_asid
        cpu.irq.handlers[IPI_FLUSH_TLB_RANGE_ASID] = self.ipi_flush_tlb_range_asid

    # -- arch/riscv/mm/context.c ---------------------------------------------------------------
    def switch_mm_irqs_off(self, prev: int, next: int) -> None:
        self.lockdep_assert_irqs_disabled(next)
        if prev == next:
            return  # "if (unlikely(prev == next)) return;"
        if next != INIT_MM and next != 0:
            self.atomics.cpumask_set_cpu(self.mm_cpumask(next), self.cpu)  # set_mm: set, never cleared with ASIDs
        if self.loaded_mm() != next:
            self.load_mm(next)  # set_mm_asid: csr_write(CSR_SATP, ...)

    # -- arch/riscv/mm/tlbflush.c --------------------------------------------------------------
    def flush_tlb_mm_exit(self, mm: int) -> None:
        self.flush_tlb_range(mm, flush_all=True)  # tlb->fullmm: flush_tlb_mm

    def flush_tlb_munmap(self, mm: int, freed_tables: bool) -> None:
        self.c.count("tlb_flushes")
        self.flush_tlb_range(mm, flush_all=freed_tables)  # tlb->freed_tables: flush_tlb_mm; else a few pages

    def flush_tlb_range(self, mm: int, flush_all: bool) -> None:
        """``__flush_tlb_range(mm, mm_cpumask(mm), ...)``."""
        self.oracle.mask_covers_loaded(mm, self.mm_cpumask(mm))
        cpus = self.mm_cpumask_cpus(mm)
        if not cpus:
            return  # cpumask_empty(cmask)
        if all(c == self.cpu for c in cpus):  # cpumask_any_but(cmask, cpu) >= nr_cpu_ids
            self.local_flush_tlb_range_mm(mm, flush_all)
            return
        fid = IPI_FLUSH_TLB_ALL_ASID if flush_all else IPI_FLUSH_TLB_RANGE_ASID
        self.c.irq.on_each_cpu_mask(cpus, fid, mm, wait=True)

    def ipi_flush_tlb_all_asid(self, mm: int) -> None:
        self.count_flush_ipi(mm)
        self.local_flush_tlb_range_mm(mm, flush_all=True)

    def ipi_flush_tlb_range_asid(self, mm: int) -> None:
        self.count_flush_ipi(mm)
        self.local_flush_tlb_range_mm(mm, flush_all=False)

    def local_flush_tlb_range_mm(self, mm: int, flush_all: bool) -> None:
        """The local flush (``sfence.vma``): the TLB is not modelled, only the patch's trim after it."""
        if flush_all and self.trim_after_flush_all and self.trim_applies(mm):
            self.cpumask_clear(mm, self.cpu)

    def trim_applies(self, mm: int) -> bool:
        """Xu Lu's rule: ``mm && mm != current->active_mm``."""
        return mm != self.c.active_mm()


class RiscvTrim(Riscv):
    name = "riscv-trim"
    summary = "riscv with Xu Lu's posted trim (20250827131444.23893-3): a CPU clears its bit after a full-ASID flush unless active_mm"
    source = "riscv, with 20250827131444.23893-3-luxu.kernel@bytedance.com (posted, not merged)"
    trim_after_flush_all = True
    cells: ClassVar[tuple[CellDecl, ...]] = (
        CellDecl("shoot-lazies", "riscv-trim", why="Xu Lu's trim tests active_mm: a CPU lazy on the mm keeps its bit"),
        *(CellDecl(s, "riscv-trim", expect, options={"hotplug": True}, also=also, why=why) for s, expect, also, why in HOTPLUG_CELLS),
        CellDecl(
            "shoot-lazies",
            "riscv-trim",
            workload=FREQUENT_FREED_TABLES,
            why="every munmap flushes the whole ASID and trims: still no lazy CPU",
        ),
        *(
            CellDecl(
                s,
                "riscv-trim",
                "cpumask_missing",
                arch_mutant="riscv-trim-forgets-lazy",
                why="the trim tested on current->mm: a lazy CPU leaves the mask",
            )
            for s in ("refcount", "shoot-lazies")
        ),
    )


class RiscvTrimForgetsLazy(RiscvTrim):
    name = "riscv-trim-forgets-lazy"
    summary = "the trim tested on current->mm, not active_mm: a lazy CPU clears its bit with the mm still in satp"
    mutant_of = "riscv-trim"

    def trim_applies(self, mm: int) -> bool:
        return mm != self.current_mm()  # a kernel thread has no mm: the CPU lazy on mm is trimmed
