"""luto-rfc: Andy Lutomirski's RFC v2 2/2, "[MOCKUP] sched/mm: Lightweight lazy mm refcounting"
(3 Dec 2020, message id e69827244c2f1e534aa83a40334ffa00bafe54c2.1607059162.git.luto@kernel.org),
as posted, defects included, with a ladder of the later series' fixes (``--fix``).

The mockup as posted (reference, section 3.3):

- ``context_switch`` user -> kernel: ``WARN_ON_ONCE(rq->lazy_mm); WRITE_ONCE(rq->lazy_mm,
  next->active_mm)``, no reference. Kernel -> user: ``rq->prev_mm`` is gone, nothing is dropped.
- ``finish_task_switch``: ``if (current->mm && rq->lazy_mm) WRITE_ONCE(rq->lazy_mm, NULL)``, then
  ``drop_extra_mm_refs(rq)`` **unconditionally** ("Do this unconditionally"): if
  ``rq->mm_to_mmdrop`` is set, ``atomic_long_xchg_relaxed`` it to 0 and ``mmdrop`` what it held.
- ``__mmput``: ``exit_mmap``, then ``mm_fixup_lazy_refs``: ``for_each_cpu(cpu, mm_cpumask(mm))``
  (on every architecture: "XXX: this is wrong on arm64", where the mask is empty), one
  ``READ_ONCE(rq->lazy_mm)``; for a CPU lazy on the mm, ``mmgrab`` and ``atomic_long_xchg`` it
  into that CPU's ``mm_to_mmdrop``, ``WARN_ON_ONCE(old == mm)`` and ``mmdrop(old)``: the patch
  argues the target "is definitely done with old".
- Every path the mockup did not touch keeps its classic ``mm_count`` references: ``exit_mm``,
  ``kthread_use_mm``/``kthread_unuse_mm``, ``exec_mmap`` and the idle task settling on init_mm
  (``sched_force_init_mm``, hotplug and the drain) take and drop ``mmgrab``/``mmdrop`` around
  their lazy uses, while the new context switch neither takes nor drops any. So their grabs are
  never dropped (the exiting task's lazy reference leaks) and their drops release counts that
  were never taken (a kernel thread dropping a lazy mm it borrowed through the new switch).

Its defects, each with its own symptom: D1 (the unconditional drop: a CPU lazy on C has C's
parked reference dropped at its next kernel -> kernel switch, while still lazy on C), D2 (the
empty mask on arm64: every lazy CPU is missed), D4 (the untouched paths: leaks, and counts
dropped that were never taken), B3 (the single read of ``lazy_mm``: between it and the ``xchg``
the target may leave the mm, go lazy on another mm C, and have C's own exit park C there; the
``xchg`` displaces C and drops it while the target is lazy on C) and B9 (x86's mask as the hint:
up to v6.13 a lazy CPU leaves the mask at a freed-tables flush, the exiting CPU at its own exit
flush).

The fixes (``--fix NAME[,NAME...]``), each named after what the later series did, each a code
path of its own, so that one at a time shows which symptom belongs to which defect:

- ``drop-check`` (D1): the Jan 2022 series' ``mmdrop_lazy`` (message id
  7c9c388c388df8e88bb5d14828053ac0cb11cf69.1641659630.git.luto@kernel.org): the parked mm is not
  dropped while it is this CPU's ``lazy_mm``, and is taken with ``try_cmpxchg_relaxed``.
- ``scan-online`` (D2, B9): the scan walks ``for_each_possible_lazymm_cpu`` (online CPUs, or a
  mask the architecture model vouches for) instead of ``mm_cpumask``.
- ``integrated`` (D4): every path changes the lazy mm through the scheme's hooks, as the 2022
  series did with one helper: ``exit_mm`` and ``kthread_unuse_mm`` publish ``lazy_mm``,
  ``kthread_use_mm`` and ``exec_mmap`` clear it inside their interrupts-off section, and init_mm is
  never published (the idle task switches to init_mm first, then clears ``lazy_mm``: the 2022
  ``unlazy_mm_irqs_off`` order).

With all three the scheme still has B3, which the 2022 patch documents and closes by re-reading
``lazy_mm`` in ``try_mm_drop_rq_ref``; with that re-read too it is ``luto-hazard``.

Interpretations: the drain (and hotplug) settles every idle CPU on init_mm; in the mockup a
reference parked in ``mm_to_mmdrop`` waits for the CPU's next context switch, which a quiet
emulated machine never makes, so the settling step runs ``drop_extra_mm_refs`` as that switch
would. ``--race-delay`` stalls between the read of ``lazy_mm`` and the ``xchg``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from emu.checks.oracle import SCHEME_WARNING, site
from emu.kernel.protocols import CellDecl
from emu.machine.layout import INIT_MM
from emu.strategies.base import SCAN_COUNTERS, SCAN_LABELS, Strategy

if TYPE_CHECKING:
    from emu.kernel.surface import KernelCpu

AT_PUBLISH = site("context_switch: WARN_ON_ONCE(rq->lazy_mm)")
AT_FIXUP_OLD = site("mm_fixup_lazy_refs: WARN_ON_ONCE(old == mm)")


class LutoRfc(Strategy):
    name = "luto-rfc"
    source = "e69827244c2f1e534aa83a40334ffa00bafe54c2.1607059162.git.luto@kernel.org"
    # the matrix rows of this scheme and its mutants (emu.harness.matrix), with the verdict each must give and why
    cells = (
        CellDecl(
            "luto-rfc",
            "*",
            "use_after_free",
            also=("freed_while_lazy", "count_underflow"),
            why="D4 (integration gap of the posted mockup): untouched paths drop counts the new switch never took; D1 is there too",
        ),
        CellDecl(
            "luto-rfc",
            "x86",
            "use_after_free",
            options={"fix": "drop-check"},
            also=("freed_while_lazy", "count_underflow"),
            why="D4 (integration gap) remains without the integration; D1 is there too",
        ),
        CellDecl(
            "luto-rfc",
            "arm64",
            "use_after_free",
            options={"fix": "drop-check,scan-online"},
            also=("freed_while_lazy", "count_underflow"),
            why="D4 (integration gap) remains without the integration; D1 is there too",
        ),
        CellDecl(
            "luto-rfc",
            "x86",
            "freed_while_lazy",
            options={"fix": "integrated"},
            why="D1 (defect in the posted mockup): the parked mm dropped while the CPU is still lazy on it",
        ),
        CellDecl(
            "luto-rfc",
            "powerpc",
            "freed_while_lazy",
            options={"fix": "integrated"},
            why="D1 (defect in the posted mockup): the parked mm dropped while the CPU is still lazy on it",
        ),
        CellDecl(
            "luto-rfc",
            "arm64",
            "freed_while_lazy",
            options={"fix": "integrated"},
            why="D1 (defect in the posted mockup): the parked mm dropped while the CPU is still lazy on it",
        ),
        CellDecl(
            "luto-rfc",
            "arm64",
            "freed_while_lazy",
            options={"fix": "integrated,scan-online"},
            why="D1 (defect in the posted mockup) alone: the scan is sound",
        ),
        CellDecl(
            "luto-rfc",
            "arm64",
            "freed_while_lazy",
            options={"fix": "drop-check,integrated"},
            why="D2 (the mockup's own XXX): the empty mask misses every lazy CPU",
        ),
        CellDecl(
            "luto-rfc",
            "x86",
            "freed_while_lazy",
            options={"fix": "drop-check,integrated"},
            why="B9 (follows from the mockup's 'mm_cpumask() not being reliable'): x86 up to 6.13 drops lazy CPUs from the mask",
        ),
        CellDecl(
            "luto-rfc",
            "arm64",
            "freed_while_lazy",
            options={"fix": "drop-check,scan-online,integrated", "race_delay": 1.0},
            workload={"threads": 1},
            det_workload={"procs": 4},
            why="B3 (race documented by the 2022 patch): one read of lazy_mm; --race-delay widens it, single threads park on the target",
        ),
        CellDecl(
            "luto-rfc",
            "powerpc",
            "freed_while_lazy",
            options={"fix": "drop-check,scan-online,integrated", "race_delay": 1.0},
            workload={"threads": 1},
            det_workload={"procs": 4},
            why="B3 (race documented by the 2022 patch): one read of lazy_mm; --race-delay widens it, single threads park on the target",
        ),
        CellDecl(
            "luto-rfc",
            "x86",
            "freed_while_lazy",
            options={"fix": "drop-check,scan-online,integrated", "race_delay": 1.0},
            workload={"threads": 1},
            det_workload={"procs": 4},
            why="B3 (race documented by the 2022 patch): one read of lazy_mm; --race-delay widens it, single threads park on the target",
        ),
    )
    has_race_window = True
    summary = "RFC v2 mockup as posted (D1, D2, D4, B3); --fix drop-check,scan-online,integrated"
    percpu = ("lazy_mm", "mm_to_mmdrop")
    pins = ("mm_to_mmdrop",)
    shown = ("lazy_mm", "mm_to_mmdrop")  # the scan's read and the parked references: B3's story
    counters = per_exit = SCAN_COUNTERS
    labels = SCAN_LABELS
    FIXES: ClassVar[dict[str, str]] = {
        "drop-check": "D1: 2022 mmdrop_lazy, never drop the parked mm this CPU is still lazy on",
        "scan-online": "D2/B9: scan for_each_possible_lazymm_cpu, not mm_cpumask",
        "integrated": "D4: exit_mm, kthread_(un)use_mm, exec_mmap, init_mm through the lazy hooks",
    }

    def __init__(self, cpu: KernelCpu) -> None:
        super().__init__(cpu)
        self.lazy_mm = self.rq("lazy_mm")
        self.mm_to_mmdrop = self.rq("mm_to_mmdrop")
        self.drop_check = "drop-check" in self.fixes
        self.scan_online = "scan-online" in self.fixes
        self.integrated = "integrated" in self.fixes
        self.lazy_release_in_irqs_off = self.integrated

    # -- the new context switch ---------------------------------------------------------------
    def lazy_switch_to_kernel(self, mm: int) -> None:
        if self.READ_ONCE(self.lazy_mm):
            self.c.oracle.report(SCHEME_WARNING, mm, AT_PUBLISH)
        self.WRITE_ONCE(self.lazy_mm, mm)

    def mmdrop_lazy_tlb_sched(self, mm: int) -> None:
        pass  # rq->prev_mm is gone: "will release lazy_mm in finish_task_switch()"

    def finish_task_switch(self) -> None:
        if self.c.arch.current_mm() and self.READ_ONCE(self.lazy_mm):
            self.WRITE_ONCE(self.lazy_mm, 0)  # unlazying
        self.drop_extra_mm_refs()  # "Do this unconditionally" (D1)

    # -- the paths the mockup did not touch ---------------------------------------------------
    def mmgrab_lazy_tlb(self, mm: int) -> None:
        if not self.integrated:
            self.mmgrab(mm)  # the classic reference, as before the mockup
        elif mm != INIT_MM:
            self.WRITE_ONCE(self.lazy_mm, mm)

    def mmdrop_lazy_tlb(self, mm: int) -> None:
        if not self.integrated:
            self.mmdrop(mm)  # D4: also where the new context switch took no reference
            return
        if self.READ_ONCE(self.lazy_mm) == mm:
            self.WRITE_ONCE(self.lazy_mm, 0)
        self.drop_extra_mm_refs()

    def sched_force_init_mm(self) -> None:
        self.drop_extra_mm_refs()  # hotplug only: the offline CPU makes no next context switch

    def drop_extra_mm_refs(self) -> None:
        if not self.drop_check:
            if not self.atomic_long_read(self.mm_to_mmdrop):
                return
            old = self.atomic_long_xchg_relaxed(self.mm_to_mmdrop, 0)
        else:  # the 2022 mmdrop_lazy
            old = self.READ_ONCE(self.mm_to_mmdrop)
            while True:
                if not old or old == self.READ_ONCE(self.lazy_mm):
                    return
                ok, old = self.try_cmpxchg_relaxed(self.mm_to_mmdrop, old, 0)
                if ok:
                    break
        if old:
            self.show("take", "mm_to_mmdrop", old)
            self.count("mm_line_atomics")
            self.mmdrop(old)

    # -- __mmput --------------------------------------------------------------------------------
    def mmput_lazy_fixup(self, mm: int) -> None:
        self.mm_fixup_lazy_refs(mm)

    def mm_fixup_lazy_refs(self, mm: int) -> None:
        """mm_users is 0: "no new lazy refs will be taken". Steal a reference for each lazy CPU."""
        arch = self.c.arch
        cpus = arch.for_each_possible_lazymm_cpu(mm) if self.scan_online else arch.mm_cpumask_cpus(mm)  # "XXX: wrong on arm64"
        me = self.smp_processor_id
        for cpu in cpus:
            self.count("cpus_scanned")
            if cpu != me:
                self.count("remote_slot_reads")
            if self.READ_ONCE(self.rq("lazy_mm", cpu)) != mm:
                continue
            self.show("read", "lazy_mm", mm, cpu)
            self.race_window()
            self.count("mm_line_atomics")
            self.mmgrab(mm)
            old = self.atomic_long_xchg(self.rq("mm_to_mmdrop", cpu), mm)
            self.show("park", "mm_to_mmdrop", mm, cpu)
            if not old:
                continue  # "All done!"
            self.show("displace", "mm_to_mmdrop", old, cpu)
            if old == mm:
                self.c.oracle.report(SCHEME_WARNING, mm, AT_FIXUP_OLD)
            self.count("mm_line_atomics")
            self.mmdrop(old)  # "the remote cpu is definitely done with old" (B3: not always)
