"""hazptr: Mathieu Desnoyers' RFC v2, "sched+mm: Use hazard pointers to track lazy active mm
existence" (Oct 2024, 4/4: message id 20241004182734.1761555-5-mathieu.desnoyers@efficios.com;
v1 cover 20241002010205.1341915-1-..., v3 20241008135034.1982519-5-...), as posted.

Every CPU has one hazard slot; the scheme replaces the Kconfig choice on every architecture.
As posted (reference, section 3.5):

- ``mmgrab_lazy_tlb(mm)``: ``smp_mb()`` (for membarrier, before the publish), then
  ``hp_allocate``: a busy slot is not overwritten, the allocation fails, ``WARN_ON(!ctx)`` ("only
  a single lazy mm per CPU") and the new lazy mm is left **unprotected**. init_mm is published like
  any mm.
- ``mmdrop_lazy_tlb(mm)``: ``smp_mb(); WRITE_ONCE(this CPU's slot, NULL)``, unconditionally.
- ``exit_mm``: its ``mmgrab_lazy_tlb`` moves inside the interrupts-off section.
- ``__mmdrop`` -> ``cleanup_lazy_tlbs`` -> ``hp_scan(mm, retire)``: ``smp_mb()`` ("Store A before
  Load B"), then for every possible CPU: if ``smp_load_acquire(slot) == mm``, retire it
  (``smp_call_function_single(cpu, do_shoot_lazy_tlb, mm, 1)``, then ``do_check_lazy_tlb``), and
  busy-wait while the slot still holds the mm. ``do_shoot_lazy_tlb`` clears the slot only when it
  found ``active_mm == mm``.

The RFC's defects as the kernel test robot found them, and what the emulator shows:

- H1 (v2: "BUG: using smp_processor_id() in preemptible" from ``exec_mmap``): ``kthread_use_mm``
  and a kernel thread's ``exec_mmap`` end with ``mmdrop_lazy_tlb(old active_mm)`` with preemption
  enabled; preempted there (``--p-preempt``), the clear runs later, and after a migration on
  another CPU. The old CPU's slot stays stale: its next ``hp_allocate`` fails (the WARN, and a lazy
  mm unprotected), and a scan of the stale mm busy-waits on it (forever if the scanner is that
  CPU: a soft lockup, which the emulator reports after ``--watchdog``/2 seconds). The thread's
  fix (``--fix this-cpu-write``, below) leaves this as it is.
- H3 (from reading the patch, not robot-found): grab-before-drop sequences call
  ``mmgrab_lazy_tlb(&init_mm)`` while the slot still holds the old mm: the WARN fires and the
  publish fails. On the RFC's base that is powerpc's ``exit_lazy_flush_tlb``; through
  ``sched_force_init_mm`` (``--hotplug --fix sched-force-init-mm``) it is what the RFC would meet
  on kernels from Nov 2024 on. The drain runs neither (``emu.kernel.drain``), so x86, arm64 and
  s390 show H3 only with that later hotplug path.
- H4 (from reading the patch on its 6.12-rc1 base, reference 3.5): hotplug as the base had it,
  before "lazy tlb: fix hotplug exit race with MMU_LAZY_TLB_SHOOTDOWN" (Nov 2024, lkml
  20241104142318.3295663-1-herton@redhat.com), is this scheme's default under ``--hotplug``
  (``hotplug_idle_task_exit``, ``emu.kernel.hotplug``): the dying CPU's ``idle_task_exit()`` only
  switches the MMU to init_mm, so its slot keeps the mm, and ``finish_cpu()`` on the control CPU
  runs ``mmdrop_lazy_tlb(mm)``, which clears the control CPU's slot. A later ``hp_scan`` of that mm
  finds the offline CPU's stale slot, its retire IPI is not delivered, and the busy-wait cannot
  end while the CPU is offline: reported as ``liveness`` (the waiting CPU, the offline CPU as
  ``other``, the mm). ``--fix sched-force-init-mm`` selects the later path, where the dying CPU
  clears its own slot (and H3 comes through it).
- H2 (v3, ``hazptr_scan`` in atomic context) needs a ``__mmdrop`` under a spinlock
  (khugepaged), a path the emulator does not have.

Fixes (``--fix``), to separate the symptoms:

- ``this-cpu-write`` (H1, the fix the thread proposed: Desnoyers' reply to the robot,
  f5c749d3-e3ec-4463-9dc2-690b9b719315@efficios.com): ``WRITE_ONCE(this_cpu_ptr(...)->addr, NULL)``
  becomes ``this_cpu_write(...->addr, NULL)``. That silences the ``CONFIG_DEBUG_PREEMPT`` BUG (which
  the emulator does not model), but the write still runs after the preemption point and clears the
  slot of whichever CPU the task resumed on: the emulator's clear is that same write, so under this
  fix the old CPU's slot stays stale and H1 still shows (the matrix cell beside the as-posted one).
- ``drop-irqs-off`` (H1, an interpretation: nobody posted it): ``kthread_use_mm`` / ``exec_mmap``
  drop the old lazy mm inside their interrupts-off section, on the CPU that published, before
  preemption is possible; that closes H1.
- ``skip-init-mm`` (H3: a lazy use of init_mm, which is never freed, publishes nothing; the
  emulator's earlier interpretation, also not posted).

- ``sched-force-init-mm`` (H4): the hotplug path of kernels from Nov 2024 on (above), in place of
  the RFC base's ``idle_task_exit`` + ``finish_cpu``.

With ``drop-irqs-off`` and ``skip-init-mm`` the scheme is expected clean without ``--hotplug``;
under ``--hotplug`` it also needs ``sched-force-init-mm``.

Mutant ``hazptr-no-mb`` (B6): both ``smp_mb`` removed, the publisher's and the scanner's. The
reference (section 3.5) explains why that does not break the lazy-mm use: the grab-side barrier
precedes the publish; the publish reaches the scanner through the fully ordered ``mmput`` /
``mmdrop`` that drops the pin on the mm, or through the release of ``prev->on_cpu`` that a
migrating task's next CPU acquires; and the scanner's ``atomic_dec_and_test`` is fully ordered.
That is message passing, not store buffering; the store-buffering pattern exists only in the
general ``hazptr_load_try_protect`` (publish, ``smp_mb``, re-load), which ``tests/harness/test_litmus.py``
exercises. The mutant stays to check that claim.

Mutant ``hazptr-no-drop-mb``: only the barrier of ``mmdrop_lazy_tlb`` (the one the reference calls
load-bearing) removed, so the clear of the slot may become visible before the lazy use's earlier
accesses: the MMU's last walk of the mm, up to the CR3 write, is a load that nothing then orders
before the clear (the ``prev->on_cpu`` RELEASE of ``finish_task`` orders it before ``on_cpu``'s store
only). Under ``--memory-model weak``, which performs that walk late (``WeakAtomics.mmu_walk``), the
slot is seen empty, the mm freed, and the walk reports ``use_after_free``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from emu.checks.oracle import LIVENESS, SCHEME_WARNING, SOFT_LOCKUP, site
from emu.kernel.protocols import CellDecl
from emu.machine.irq import ipi_function
from emu.machine.layout import INIT_MM
from emu.strategies.base import SCAN_COUNTERS, SCAN_LABELS, Strategy

if TYPE_CHECKING:
    from emu.kernel.surface import KernelCpu

DO_SHOOT_LAZY_TLB = ipi_function("do_shoot_lazy_tlb", purpose="ipis_shootdown")
DO_CHECK_LAZY_TLB = ipi_function("do_check_lazy_tlb", purpose="ipis_check")

AT_HP_ALLOCATE = site("mmgrab_lazy_tlb: WARN_ON(!hp_allocate()) (slot busy)")
AT_HP_CHECK = site("do_check_lazy_tlb: WARN_ON_ONCE(current->active_mm == mm)")
AT_HP_SCAN = site("hp_scan: busy-wait on a slot that keeps the mm")
AT_HP_SCAN_OFFLINE = site("hp_scan: busy-wait on an offline CPU's slot (its retire IPI not delivered)")


class Hazptr(Strategy):
    name = "hazptr"
    source = "20241004182734.1761555-5-mathieu.desnoyers@efficios.com (RFC v2 4/4)"
    # the matrix rows of this scheme and its mutants (emu.harness.matrix), with the verdict each must give and why
    cells = (
        CellDecl(
            "hazptr",
            "x86",
            "scheme_warning",
            why="H1 (real, robot-found in RFC v2): a preempted mmdrop_lazy_tlb leaves a stale slot; the next publish fails",
        ),
        CellDecl(
            "hazptr",
            "x86",
            "scheme_warning",
            options={"fix": "skip-init-mm"},
            why="H1 (real, robot-found, RFC v2): a preempted mmdrop_lazy_tlb leaves a stale slot; the next publish fails",
        ),
        CellDecl(
            "hazptr",
            "x86",
            "scheme_warning",
            options={"fix": "skip-init-mm,this-cpu-write"},
            why="H1 under the thread's fix (f5c749d3-...@efficios.com): this_cpu_write still clears the CPU resumed on; the old slot stays",
        ),
        CellDecl(
            "hazptr",
            "powerpc",
            "scheme_warning",
            options={"fix": "drop-irqs-off"},
            why="H3 (from the patch on its base, not robot-found): "
            "powerpc's exit_lazy_flush_tlb grabs init_mm before dropping the old lazy mm",
        ),
        CellDecl(
            "hazptr",
            "x86",
            "scheme_warning",
            options={"fix": "drop-irqs-off,sched-force-init-mm", "hotplug": True},
            why="H3 (kernels from Nov 2024 on, not the RFC's base): sched_force_init_mm (hotplug) grabs init_mm before dropping the old mm",
        ),
        CellDecl(
            "hazptr",
            "x86",
            "liveness",
            options={"fix": "skip-init-mm,drop-irqs-off", "hotplug": True},
            why="H4 (hotplug on the RFC's 6.12-rc1 base): idle_task_exit keeps the dying CPU's slot, a scan then waits on the offline CPU",
        ),
        CellDecl(
            "hazptr",
            "x86",
            options={"fix": "skip-init-mm,drop-irqs-off,sched-force-init-mm", "hotplug": True},
            why="H4's control: with the Nov 2024 path the dying CPU leaves its lazy mm and clears its own slot",
        ),
        CellDecl(
            "hazptr",
            "x86",
            options={"fix": "drop-irqs-off"},
            why="H3's control: without --hotplug no x86 path grabs init_mm over a busy slot (the drain runs none)",
        ),
        CellDecl(
            "hazptr",
            "x86",
            options={"fix": "skip-init-mm,drop-irqs-off"},
            why="H1, H3 fixed by interpretations (drop irqs off, init_mm unpublished): publish, smp_mb, scan, retire",
        ),
        CellDecl(
            "hazptr",
            "powerpc",
            options={"fix": "skip-init-mm,drop-irqs-off"},
            why="H1, H3 fixed by interpretations (drop irqs off, init_mm unpublished): publish, smp_mb, scan, retire",
        ),
        CellDecl(
            "hazptr",
            "arm64",
            options={"fix": "skip-init-mm,drop-irqs-off"},
            why="H1, H3 fixed by interpretations (drop irqs off, init_mm unpublished): publish, smp_mb, scan, retire",
        ),
        CellDecl(
            "hazptr",
            "s390",
            options={"fix": "skip-init-mm,drop-irqs-off"},
            why="H1, H3 fixed by interpretations (drop irqs off, init_mm unpublished): publish, smp_mb, scan, retire",
        ),
        CellDecl("hazptr", "arm64", options={"fix": "skip-init-mm,drop-irqs-off", "memory_model": "tso"}, why="correct under TSO"),
        CellDecl(
            "hazptr-no-mb",
            "x86",
            options={"fix": "skip-init-mm,drop-irqs-off"},
            why="B6 (synthetic, not a bug in this use): message passing, not store buffering (reference 3.5)",
        ),
        CellDecl(
            "hazptr", "arm64", options={"fix": "skip-init-mm,drop-irqs-off", "memory_model": "weak"}, why="correct under the weak model"
        ),
        CellDecl(
            "hazptr-no-mb",
            "arm64",
            options={"fix": "skip-init-mm,drop-irqs-off", "memory_model": "weak"},
            why="B6: the publish reaches the scanner through fully ordered mmput/mmdrop and the scheduler's handoff (reference 3.5)",
        ),
        # the lazy use's last walk of the mm (the MMU's, up to the CR3 write) before the clear that ends it: a load
        # before a later store, which only a barrier orders (LKMM: no R->W order without one); weak performs it late
        CellDecl(
            "hazptr-no-drop-mb",
            "arm64",
            "use_after_free",
            options={"fix": "skip-init-mm,drop-irqs-off", "memory_model": "weak"},
            why="no smp_mb before the clear: the slot is seen empty, and the mm freed, before the lazy use's last walk of it",
            min_seconds=30.0,
            catch_runs=8,  # 4 and 8 of 10 runs of 30 s caught it in two campaigns (docs/memory-models.md)
        ),
    )
    has_race_window = True
    summary = "RFC v2 as posted: one hazard slot per CPU, hp_scan at __mmdrop retires the holders (H1; H3 on powerpc; H4 --hotplug)"
    percpu = ("hazptr_slot",)
    pins = ("hazptr_slot",)
    shown = ("hazptr_slot",)  # the publish and clear of the slot, the scan's finds
    counters = per_exit = SCAN_COUNTERS
    labels = SCAN_LABELS
    exit_mm_grab_irqs_off = True
    FIXES: ClassVar[dict[str, str]] = {
        "skip-init-mm": "H3: a lazy use of init_mm publishes nothing, so grab-before-drop finds the slot free",
        "this-cpu-write": "H1, the thread's fix (f5c749d3-...@efficios.com), this_cpu_write, still after preemption: H1 stays",
        "drop-irqs-off": "H1, an interpretation (not posted): kthread_use_mm / exec_mmap clear the slot with interrupts off",
        "sched-force-init-mm": "H4: hotplug as from Nov 2024 (sched_force_init_mm on the dying CPU), not the RFC base's finish_cpu",
    }

    def __init__(self, cpu: KernelCpu) -> None:
        super().__init__(cpu)
        cpu.irq.handlers[DO_SHOOT_LAZY_TLB] = self.do_shoot_lazy_tlb
        cpu.irq.handlers[DO_CHECK_LAZY_TLB] = self.do_check_lazy_tlb
        self.slot = self.rq("hazptr_slot")
        self.slots = [self.rq("hazptr_slot", c) for c in range(cpu.ncpus)]
        self.skip_init_mm = "skip-init-mm" in self.fixes
        self.lazy_release_in_irqs_off = "drop-irqs-off" in self.fixes
        # the RFC's base (6.12-rc1) predates the Nov 2024 hotplug fix: idle_task_exit + finish_cpu
        self.hotplug_idle_task_exit = "sched-force-init-mm" not in self.fixes
        # the soft-lockup detector, before the harness's watchdog; a deterministic mode's clock (a
        # microsecond a step) runs about 20 times slower than the host's: a tenth of it, well inside its drain
        watchdog = cpu.scheme_options.watchdog
        self.spin_limit_s = watchdog / 2 if cpu.det is None else watchdog / 20

    # -- the publisher side -------------------------------------------------------------------
    def mmgrab_lazy_tlb(self, mm: int) -> None:
        if self.skip_init_mm and mm == INIT_MM:
            return
        self.smp_mb()  # membarrier: "must provide a full memory barrier", before the publish
        self.race_window()
        if not self.hp_allocate(mm):
            self.c.oracle.report(SCHEME_WARNING, mm, AT_HP_ALLOCATE)  # "only a single lazy mm per CPU"

    def hp_allocate(self, mm: int) -> bool:
        if self.READ_ONCE(self.slot):
            return False  # busy: not overwritten, the new lazy mm stays unprotected
        self.WRITE_ONCE(self.slot, mm)
        self.show("set", "hazptr_slot", mm)
        return True

    def mmdrop_lazy_tlb(self, mm: int) -> None:
        self.smp_mb()  # the lazy use's accesses before the slot is seen empty
        # as posted and under --fix this-cpu-write alike: the slot of the CPU it runs on now (the two
        # differ only in CONFIG_DEBUG_PREEMPT's check, which the emulator does not model)
        self.WRITE_ONCE(self.slot, 0)
        self.show("clear", "hazptr_slot", mm)

    def hazptr_load_try_protect(self, addr_p: int) -> int:
        """Publish ``*addr_p`` in this CPU's slot and re-check it; 0 (slot empty) if it went."""
        a = self.READ_ONCE(addr_p)
        while True:
            self.WRITE_ONCE(self.slot, a)
            self.smp_mb()
            a2 = self.READ_ONCE(addr_p)
            if a2 == a:
                return a
            if not a2:
                self.WRITE_ONCE(self.slot, 0)
                return 0
            a = a2

    # -- the reclaimer side -------------------------------------------------------------------
    def cleanup_lazy_tlbs(self, mm: int) -> None:
        self.smp_mb()  # "Store A before Load B": the unpublishing atomic_dec_and_test before the scan
        self.hp_scan(mm)

    def hp_scan(self, mm: int) -> None:
        me = self.smp_processor_id
        for cpu, slot in enumerate(self.slots):
            self.count("cpus_scanned")
            if cpu != me:
                self.count("remote_slot_reads")
            if self.smp_load_acquire(slot) == mm:
                self.show("read", "hazptr_slot", mm, cpu)
                self.retire(cpu, mm)
                self.busy_wait(slot, mm, cpu)

    def retire(self, cpu: int, mm: int) -> None:
        irq = self.c.irq
        irq.smp_call_function_single(cpu, DO_SHOOT_LAZY_TLB, mm, wait=True)
        irq.smp_call_function_single(cpu, DO_CHECK_LAZY_TLB, mm, wait=True)

    def busy_wait(self, slot: int, mm: int, cpu: int) -> None:
        """``while (smp_load_acquire(slot) == mm) cpu_relax()``, IPIs handled meanwhile. A slot of an
        offline CPU (its retire IPI was not delivered) is cleared only once that CPU is back and
        switches again: reported at once as a wait that cannot end (H4), then spun on as the kernel
        would, up to the soft-lockup detector."""
        deadline = 0.0
        online = self.c.irq.cpu_online
        while self.smp_load_acquire(slot) == mm:
            if not online(cpu):
                self.c.oracle.report(LIVENESS, mm, AT_HP_SCAN_OFFLINE, other=cpu)  # once per (mm, cpu): the oracle dedups
            now = self.c.clock()
            if not deadline:
                deadline = now + self.spin_limit_s
            elif now > deadline:
                self.c.oracle.report(SOFT_LOCKUP, mm, AT_HP_SCAN)  # the kernel would spin on
                return
            self.c.cpu_relax()

    def do_shoot_lazy_tlb(self, mm: int) -> None:
        c = self.c
        shot = c.active_mm() == mm
        super().do_shoot_lazy_tlb(mm)
        if shot:
            self.WRITE_ONCE(self.slot, 0)

    def do_check_lazy_tlb(self, mm: int) -> None:
        if self.c.active_mm() == mm:
            self.c.oracle.report(SCHEME_WARNING, mm, AT_HP_CHECK)


class HazptrNoMb(Hazptr):
    name = "hazptr-no-mb"
    summary = "B6: the smp_mb pair around the hazard slot removed"
    mutant_of = "hazptr"

    def mmgrab_lazy_tlb(self, mm: int) -> None:
        if self.skip_init_mm and mm == INIT_MM:
            return
        self.race_window()  # no smp_mb before the publish
        if not self.hp_allocate(mm):
            self.c.oracle.report(SCHEME_WARNING, mm, AT_HP_ALLOCATE)

    def cleanup_lazy_tlbs(self, mm: int) -> None:
        self.hp_scan(mm)  # no smp_mb before the scan


class HazptrNoDropMb(Hazptr):
    name = "hazptr-no-drop-mb"
    summary = "the smp_mb of mmdrop_lazy_tlb removed: the slot may be seen empty before the lazy use's accesses"
    mutant_of = "hazptr"

    def mmdrop_lazy_tlb(self, mm: int) -> None:
        self.WRITE_ONCE(self.slot, 0)  # no smp_mb before the clear
        self.show("clear", "hazptr_slot", mm)
