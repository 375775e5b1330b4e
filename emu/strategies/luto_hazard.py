"""luto-hazard: Andy Lutomirski's lazy mms as hazard pointers, Jan 2022: 16/23 "sched: Use
lightweight hazard pointers to grab lazy mms" of "mm, sched: Rework lazy mm handling" (message id
7c9c388c388df8e88bb5d14828053ac0cb11cf69.1641659630.git.luto@kernel.org).

Algorithm (reference, section 3.4): ``rq->lazy_mm`` is a hazard pointer, the mm this CPU is
lazy on, written without any atomic (user -> kernel: ``WRITE_ONCE``, still covered by the
user's ``mm_users``; kernel -> user: ``smp_store_release(NULL)``). ``rq->drop_mm`` holds an
``mm_count`` reference that another CPU parked here; ``mmdrop_lazy`` (every
``finish_task_switch``) drops it unless this CPU is still lazy on it. At ``__mmput``, after
``exit_mmap``, ``mm_unlazy_mm_count`` converts the lazy uses into real references: for each CPU
of ``for_each_possible_lazymm_cpu`` (online CPUs; the mask on an x86 model with ``--x86-unlazy-on-flush``) whose ``lazy_mm``
is the mm, it raises ``mm_count`` (``num_possible_cpus()`` at the first hit, the unused part
given back at the end) and parks one reference in that CPU's ``drop_mm`` with
``try_mm_drop_rq_ref``, which re-reads ``lazy_mm`` after ``drop_mm`` (the race the patch
documents, B3) and drops a displaced older mm only if the CPU is provably done with it.
Costs: one remote read per scanned CPU per exit; atomics on the mm's line only per lazy CPU
found, never per context switch.

The same hooks serve every path that changes a CPU's mm (context switch, ``exit_mm``,
``kthread_use_mm``/``kthread_unuse_mm``, ``exec_mmap``, the idle task settling on ``init_mm``), as
the 2022 series did with one helper. Interpretations, where the emulator's generic paths are
mainline's rather than the series': a lazy use of init_mm publishes nothing, so the idle task
switches to init_mm first and clears ``lazy_mm`` after (the series' ``unlazy_mm_irqs_off`` order;
mainline's ``sched_force_init_mm`` grabs init_mm first, which, published literally, would leave
the old mm unprotected while the CPU still runs on it: that literal reading is the mutant
``luto-hazard-init-mm-first``, caught under ``--hotplug --race-delay 1``); ``kthread_use_mm`` and ``exec_mmap`` drop
the old lazy mm preemptibly, as mainline does (a drop on another CPU after a migration leaves a
stale ``lazy_mm`` behind, which only keeps an extra reference parked).

On x86 with the series' 20/23 to 22/23 (``--x86-unlazy-on-flush``; the scan walks the mask), the
series' ``unlazy_mm_irqs_off`` clears the CPU's mask bit in ``switch_mm_irqs_off`` before
``active_mm`` and ``rq->lazy_mm`` leave the mm, so a scan in between misses the CPU and the mm is
freed while both still name it (``freed_while_lazy``: a dangling hazard slot, not dereferenced on
that path). ``leave_mm`` on idle (``--x86-idle-leave-mm``) meets that window; the matrix expects it.

The exchanges of ``try_mm_drop_rq_ref`` are the fully ordered ``try_cmpxchg``/``cmpxchg`` of the
patch; the ``mm_count`` raise and give-back are ``atomic_add``/``atomic_sub``, unordered. Peter
Zijlstra's review rule (reference 3.4: the exchange at least RELEASE, so that the raise is seen
before the parked reference, and ACQUIRE when it returns a displaced mm) is checked by the mutant
``luto-hazard-relaxed-xchg`` (both exchanges ``_relaxed``): under ``--memory-model weak`` the
raise, an RMW without return value, can still sit in the scanner's store buffer when the target
CPU takes the parked reference and drops it. The race windows after each park let the target
run meanwhile (``--race-delay``).

Mutant ``luto-hazard-late-count`` (B4, synthetic: reference section 6): ``mm_count`` is raised only
after the scan has parked the references in the CPUs' ``drop_mm``, so a CPU that leaves the mm
meanwhile drops a reference that was never taken, and the mm is freed while parked. No posted code
had this order: it inverts a rule the 2022 code already kept (16/23 raises ``mm_count`` before any
``try_mm_drop_rq_ref``; Peter Zijlstra asked in June 2021 for a comment saying the count must be
raised before any ``rq->drop_mm`` is set). The mutant checks that the oracle sees the inversion.

Mutant ``luto-hazard-plain-clear``: ``lazy_mm`` cleared with ``WRITE_ONCE`` where 16/23 has
``smp_store_release(&rq->lazy_mm, NULL)``. The RELEASE orders the lazy use's accesses to the mm
(the MMU's walk of its tables up to the CR3 write) before the clear; without it, under
``--memory-model weak``, the clear may be seen by ``mm_unlazy_mm_count``, and the mm freed, before
that walk is performed (``WeakAtomics.mmu_walk``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from emu.checks.oracle import site
from emu.kernel.protocols import CellDecl
from emu.machine.layout import INIT_MM, M_COUNT
from emu.strategies.base import SCAN_COUNTERS, SCAN_LABELS, Strategy

if TYPE_CHECKING:
    from emu.kernel.surface import KernelCpu

AT_UNLAZY_ADD = site("mm_unlazy_mm_count: atomic_add(mm_count)")
AT_UNLAZY_SUB = site("mm_unlazy_mm_count: atomic_sub(mm_count)")


class LutoHazard(Strategy):
    name = "luto-hazard"
    source = "7c9c388c388df8e88bb5d14828053ac0cb11cf69.1641659630.git.luto@kernel.org (16/23)"
    # the matrix rows of this scheme and its mutants (emu.harness.matrix), with the verdict each must give and why
    cells = (
        CellDecl("luto-hazard", "*", why="hazard pointer re-read after drop_mm; online CPUs scanned: correct on every arch"),
        CellDecl(
            "luto-hazard",
            "x86",
            options={"x86_unlazy_on_flush": True},
            why="with 20/23 and 21/23 a scan of the mask finds every lazy CPU; the unlazy window of the leave_mm cell is "
            "reached here only by a flush IPI meeting an exit's scan (not seen in 66 runs with --race-delay 1)",
        ),
        CellDecl(
            "luto-hazard",
            "x86-lazy-mask",
            options={"x86_unlazy_on_flush": True},
            why="with 20/23 and 21/23 a scan of the mask finds every lazy CPU",
        ),
        CellDecl(
            "luto-hazard",
            "x86",
            "freed_while_lazy",
            options={"x86_unlazy_on_flush": True, "x86_idle_leave_mm": True, "race_delay": 1.0},
            why="20/23's unlazy_mm_irqs_off clears the CPU's mask bit (switch_mm_irqs_off) before active_mm and rq->lazy_mm "
            "leave the mm, so 22/23's scan of the mask misses it: the mm is freed while they still name it",
        ),
        CellDecl("luto-hazard", "x86", options={"memory_model": "tso"}, why="correct under TSO too"),
        CellDecl("luto-hazard", "x86-lazy-mask", options={"memory_model": "tso"}, why="correct under TSO too"),
        CellDecl("luto-hazard", "arm64", options={"memory_model": "tso"}, why="correct under TSO too"),
        CellDecl(
            "luto-hazard",
            "arm64",
            options={"race_delay": 1.0},
            workload={"threads": 1},
            det_workload={"procs": 4},
            why="the 2022 re-read closes B3 on the same load",
        ),
        CellDecl(
            "luto-hazard",
            "powerpc",
            options={"race_delay": 1.0},
            workload={"threads": 1},
            det_workload={"procs": 4},
            why="the 2022 re-read closes B3 on the same load",
        ),
        CellDecl(
            "luto-hazard",
            "x86",
            options={"race_delay": 1.0},
            workload={"threads": 1},
            det_workload={"procs": 4},
            why="the 2022 re-read closes B3 on the same load",
        ),
        CellDecl(
            "luto-hazard-init-mm-first",
            "arm64",
            "freed_while_lazy",
            options={"hotplug": True, "race_delay": 1.0},
            min_seconds=4.0,
            why="the literal reading of sched_force_init_mm's order under the 2022 scheme: init_mm published first",
        ),
        CellDecl("luto-hazard", "arm64", options={"hotplug": True, "race_delay": 1.0}, why="switch to init_mm first, then clear lazy_mm"),
        CellDecl(
            "luto-hazard-late-count",
            "x86",
            "use_after_free",
            options={"race_delay": 1.0},
            also=("double_free",),
            why="B4 (synthetic: inverts 16/23's rule, raise mm_count before any drop_mm is set): freed a count early, then touched again",
        ),
        CellDecl(
            "luto-hazard",
            "arm64",
            options={"memory_model": "weak", "race_delay": 1.0},
            why="fully ordered exchanges: the raise is seen first",
        ),
        CellDecl(
            "luto-hazard-relaxed-xchg",
            "arm64",
            "use_after_free",
            options={"memory_model": "weak", "race_delay": 1.0},
            also=("freed_while_lazy", "count_underflow", "dangling_reference"),
            why="relaxed exchanges: the parked reference is seen, and dropped, before the unordered mm_count raise",
        ),
        CellDecl(
            "luto-hazard-relaxed-xchg",
            "x86",
            options={"memory_model": "tso", "race_delay": 1.0},
            why="x86: every locked instruction is a full barrier, so the relaxed exchanges are ordered anyway",
        ),
        CellDecl(
            "luto-hazard-plain-clear",
            "arm64",
            "use_after_free",
            options={"memory_model": "weak"},
            why="WRITE_ONCE for 16/23's smp_store_release: lazy_mm is seen NULL, and the mm freed, before the lazy use's last walk",
            min_seconds=30.0,
            catch_runs=5,  # 6 and 7 of 10 runs of 30 s caught it in two campaigns (docs/memory-models.md)
        ),
    )
    has_race_window = True
    summary = "rq->lazy_mm hazard pointer; __mmput scans lazy CPUs and parks mm_count refs in rq->drop_mm"
    percpu = ("lazy_mm", "drop_mm")
    pins = ("drop_mm",)
    shown = ("lazy_mm", "drop_mm")  # the scan's reads, the parked references and their take-out
    counters = per_exit = SCAN_COUNTERS
    labels = SCAN_LABELS

    def __init__(self, cpu: KernelCpu) -> None:
        super().__init__(cpu)
        self.lazy_mm = self.rq("lazy_mm")
        self.drop_mm = self.rq("drop_mm")

    # -- this CPU's lazy use --------------------------------------------------------------------
    def mmgrab_lazy_tlb(self, mm: int) -> None:
        if mm != INIT_MM:  # never freed: nothing to protect, and the old lazy mm stays published
            self.WRITE_ONCE(self.lazy_mm, mm)  # no atomic: mm_users (or an mmgrab) still covers mm

    def mmdrop_lazy_tlb(self, mm: int) -> None:
        if self.READ_ONCE(self.lazy_mm) == mm:
            self.smp_store_release(self.lazy_mm, 0)
        self.mmdrop_lazy()

    def mmdrop_lazy_tlb_sched(self, mm: int) -> None:
        pass  # lazy_mm was released in context_switch; finish_task_switch runs mmdrop_lazy

    def lazy_switch_to_user(self, mm: int) -> None:
        self.smp_store_release(self.lazy_mm, 0)  # after switch_mm: no longer lazy on mm

    def finish_task_switch(self) -> None:
        self.mmdrop_lazy()

    def sched_force_init_mm(self) -> None:
        self.mmdrop_lazy()

    def mmdrop_lazy(self) -> None:
        old = self.READ_ONCE(self.drop_mm)
        while True:
            if not old or old == self.READ_ONCE(self.lazy_mm):
                return
            ok, old = self.try_cmpxchg_relaxed(self.drop_mm, old, 0)
            if ok:
                break
        self.show("take", "drop_mm", old)
        self.count("mm_line_atomics")
        self.mmdrop(old)

    # -- __mmput: turn lazy uses into references ---------------------------------------------
    def mmput_lazy_fixup(self, mm: int) -> None:
        self.mm_unlazy_mm_count(mm)

    def lazy_cpus(self, mm: int) -> Iterator[int]:
        """The scan: every CPU ``for_each_possible_lazymm_cpu`` whose ``rq->lazy_mm`` is ``mm``."""
        me = self.smp_processor_id
        for cpu in self.c.arch.for_each_possible_lazymm_cpu(mm):
            self.count("cpus_scanned")
            if cpu != me:
                self.count("remote_slot_reads")
            if self.smp_load_acquire(self.rq("lazy_mm", cpu)) == mm:
                self.show("read", "lazy_mm", mm, cpu)
                self.race_window()
                yield cpu

    def mm_unlazy_mm_count(self, mm: int) -> None:
        c = self.c
        drop_count = 0
        for cpu in self.lazy_cpus(mm):
            if drop_count == 0:
                drop_count = self.num_possible_cpus
                self.count("mm_line_atomics")
                c.mm.mm_count_add_unordered(mm, M_COUNT, drop_count, AT_UNLAZY_ADD)  # atomic_add: relaxed
            drop_count -= 1
            while not self.try_mm_drop_rq_ref(cpu, mm):
                pass
        if drop_count:
            self.count("mm_line_atomics")
            c.mm.mm_count_add_unordered(mm, M_COUNT, -drop_count, AT_UNLAZY_SUB)  # atomic_sub: relaxed

    def try_mm_drop_rq_ref(self, cpu: int, mm: int) -> bool:
        """Park one reference to ``mm`` in ``cpu``'s ``drop_mm``; False: lost a race, retry."""
        drop_mm = self.rq("drop_mm", cpu)
        old = self.smp_load_acquire(drop_mm)
        if not old:
            if not self.try_cmpxchg(drop_mm, 0, mm)[0]:
                return False
            self.show("park", "drop_mm", mm, cpu)
            self.race_window()  # parked: the CPU may take it at its next switch
            return True
        # (1) lazy_mm read, (2) it switched to old and went lazy, (3) old parked: re-read
        if self.smp_load_acquire(self.rq("lazy_mm", cpu)) != mm:
            self.count("mm_line_atomics")
            self.mmdrop(mm)  # it left mm meanwhile: the reference is not needed
            return True
        if self.cmpxchg(drop_mm, old, mm) != old:
            return False
        self.show("park", "drop_mm", mm, cpu)
        self.show("displace", "drop_mm", old, cpu)
        self.race_window()
        self.count("mm_line_atomics")
        self.mmdrop(old)
        return True


class LutoHazardLateCount(LutoHazard):
    name = "luto-hazard-late-count"
    summary = "B4 (synthetic): mm_count raised after the references are parked in rq->drop_mm, inverting 16/23's order"
    mutant_of = "luto-hazard"

    def mm_unlazy_mm_count(self, mm: int) -> None:
        c = self.c
        parked = 0
        for cpu in self.lazy_cpus(mm):
            while not self.try_mm_drop_rq_ref(cpu, mm):
                pass
            parked += 1
        if parked:  # too late: a parked reference may already have been dropped
            self.count("mm_line_atomics")
            c.mm.mm_count_add(mm, M_COUNT, parked, AT_UNLAZY_ADD)


class LutoHazardRelaxedXchg(LutoHazard):
    name = "luto-hazard-relaxed-xchg"
    summary = "Peter Zijlstra's rule broken: the exchanges of try_mm_drop_rq_ref relaxed (no RELEASE, no ACQUIRE)"
    mutant_of = "luto-hazard"

    def try_mm_drop_rq_ref(self, cpu: int, mm: int) -> bool:
        drop_mm = self.rq("drop_mm", cpu)
        old = self.smp_load_acquire(drop_mm)
        if not old:
            if not self.try_cmpxchg_relaxed(drop_mm, 0, mm)[0]:  # may be seen before the mm_count raise
                return False
            self.show("park", "drop_mm", mm, cpu)
            self.race_window()
            return True
        if self.smp_load_acquire(self.rq("lazy_mm", cpu)) != mm:
            self.count("mm_line_atomics")
            self.mmdrop(mm)
            return True
        if self.cmpxchg_relaxed(drop_mm, old, mm) != old:
            return False
        self.show("park", "drop_mm", mm, cpu)
        self.show("displace", "drop_mm", old, cpu)
        self.race_window()
        self.count("mm_line_atomics")
        self.mmdrop(old)
        return True


class LutoHazardPlainClear(LutoHazard):
    name = "luto-hazard-plain-clear"
    summary = "lazy_mm cleared with WRITE_ONCE, not smp_store_release: the clear may be seen before the lazy use's last walk"
    mutant_of = "luto-hazard"

    def mmdrop_lazy_tlb(self, mm: int) -> None:
        if self.READ_ONCE(self.lazy_mm) == mm:
            self.WRITE_ONCE(self.lazy_mm, 0)  # no RELEASE
        self.mmdrop_lazy()

    def lazy_switch_to_user(self, mm: int) -> None:
        self.WRITE_ONCE(self.lazy_mm, 0)  # no RELEASE: the walk of mm's tables at the CR3 write may be performed after it


class LutoHazardInitMmFirst(LutoHazard):
    name = "luto-hazard-init-mm-first"
    summary = "literal reading: init_mm published before the switch away from the old lazy mm (sched_force_init_mm's order)"
    mutant_of = "luto-hazard"

    def mmgrab_lazy_tlb(self, mm: int) -> None:
        self.WRITE_ONCE(self.lazy_mm, mm)  # init_mm too: the old lazy mm is unpublished while still in use
        if mm == INIT_MM:
            self.race_window()
