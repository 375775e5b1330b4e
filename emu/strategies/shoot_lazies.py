"""shoot-lazies: Nicholas Piggin's ``CONFIG_MMU_LAZY_TLB_SHOOTDOWN`` ("lazy tlb: shoot lazies, a
non-refcounting lazy tlb mm reference handling scheme", merged for 6.2; powerpc book3s64 selects it).

Algorithm (reference, section 3.2): a lazy use takes no reference; ``mmgrab_lazy_tlb`` and
``mmdrop_lazy_tlb`` are only full barriers. Just before an mm is freed, ``cleanup_lazy_tlbs``
interrupts every CPU that may be lazy on it, ``on_each_cpu_mask(mm_cpumask(mm),
do_shoot_lazy_tlb, mm, 1)`` (this CPU included), and each switches to ``init_mm`` if its
``active_mm`` is the mm. The architecture must keep in ``mm_cpumask`` at least every CPU lazy on
the mm; where it does not (arm64), lazy CPUs are missed (bug B1), unless ``--shoot-all`` IPIs
every online CPU on every exit (the "DoS" cost raised in the RFC thread). ``--debug-check``
adds ``CONFIG_DEBUG_VM_SHOOT_LAZIES``: ``do_check_lazy_tlb`` on every CPU, which WARNs if one
is still lazy on the mm.

powerpc radix piggybacks on its final flush (``radix__tlb_flush`` with fullmm ->
``exit_flush_lazy_tlbs``): each CPU in the mask leaves the mm for init_mm if lazy on it and
trims itself from the mask (``exit_lazy_flush_tlb``), so ``cleanup_lazy_tlbs`` later finds an
almost empty mask. ``__flush_all_mm`` -> ``flush_type_needed`` runs ``exit_lazy_flush_tlb``
locally too when only this CPU is left in the mask and it does not run the mm (the kernel on a
trim clock, about one flush in a thousand; here every time, so the path is exercised).

Mutant ``shoot-hotplug-race`` (bug B2, fixed by "lazy tlb: fix hotplug exit race with
MMU_LAZY_TLB_SHOOTDOWN"): a CPU going down is cleared from every mask by powerpc's
``__cpu_disable`` while it is still lazy on an mm, and leaves that mm only at the end of the
teardown (``idle_task_exit``); an mm freed in between is not shot down on that CPU.

Mutant ``powerpc-trim-vs-kthread`` (bug B8, fixed by "powerpc/64s: Fix mm_cpumask trimming race
vs kthread_use_mm"): the trimming of a single-threaded mm's mask is done by the sender after
the IPIs (``mm_reset_thread_local``: clear the mask, set only itself), assuming nobody else can
start using the mm; a kernel thread that took ``mmget_not_zero`` and ran ``kthread_use_mm``
meanwhile loses its bit and runs the mm outside its mask, so later flushes miss it. The fix has
each CPU trim only itself, and only if it does not run the mm.

Mutant ``shoot-irqs-enabled`` (bug B7, fixed by "powerpc/64s/radix: Fix exit lazy tlb mm switch
with irqs enabled"): that local ``exit_lazy_flush_tlb`` switches ``active_mm`` and the loaded
mm with interrupts enabled, so an IPI can land between the two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emu.arch.base import FLUSH_TLB_RANGE
from emu.irq import ipi_function
from emu.layout import INIT_MM, M_USERS
from emu.oracle import SCHEME_WARNING, site
from emu.strategies.base import Strategy

if TYPE_CHECKING:
    from emu.cpu import Cpu

DO_SHOOT_LAZY_TLB = ipi_function("do_shoot_lazy_tlb", purpose="ipis_shootdown")
DO_CHECK_LAZY_TLB = ipi_function("do_check_lazy_tlb", purpose="ipis_check")
DO_EXIT_FLUSH_LAZY_TLB = ipi_function("do_exit_flush_lazy_tlb", purpose="ipis_flush")

AT_CHECK = site("do_check_lazy_tlb: WARN_ON_ONCE(current->active_mm == mm)")
AT_EXIT_FLUSH = site("exit_lazy_flush_tlb: WARN_ON_ONCE(current->mm)")


class ShootLazies(Strategy):
    name = "shoot-lazies"
    summary = "no lazy reference; IPI the CPUs in mm_cpumask to leave the mm before it is freed"
    MMU_LAZY_TLB_SHOOTDOWN = True

    def __init__(self, cpu: Cpu) -> None:
        super().__init__(cpu)
        cpu.irq.handlers[DO_SHOOT_LAZY_TLB] = self.do_shoot_lazy_tlb
        cpu.irq.handlers[DO_CHECK_LAZY_TLB] = self.do_check_lazy_tlb
        cpu.irq.handlers[DO_EXIT_FLUSH_LAZY_TLB] = self.do_exit_flush_lazy_tlb
        self.shoot_all = cpu.cfg.shoot_all
        self.debug_check = cpu.cfg.debug_check

    def mmgrab_lazy_tlb(self, mm: int) -> None:
        self.smp_mb()

    def mmdrop_lazy_tlb(self, mm: int) -> None:
        self.smp_mb()

    def cleanup_lazy_tlbs(self, mm: int) -> None:
        c = self.c
        # the mask must cover every lazy CPU; without one, only every online CPU is safe
        cpus = c.online_cpus() if self.shoot_all else c.arch.mm_cpumask_cpus(mm)
        c.irq.on_each_cpu_mask(cpus, DO_SHOOT_LAZY_TLB, mm, wait=True)
        if self.debug_check:
            c.irq.on_each_cpu_mask(c.online_cpus(), DO_CHECK_LAZY_TLB, mm, wait=True)

    def do_check_lazy_tlb(self, mm: int) -> None:
        if self.c.active_mm() == mm:
            self.c.oracle.report(SCHEME_WARNING, mm, AT_CHECK)

    # -- powerpc radix: shoot lazies during the final flush -----------------------------------
    def radix_flush_tlb_mm(self, mm: int) -> None:
        """``radix__flush_tlb_mm`` -> ``flush_type_needed``: a single-threaded mm being flushed by
        its own thread first flushes every other CPU out of its mask ("powerpc/64s/radix: flush
        remote CPUs out of single-threaded mm_cpumask")."""
        c = self.c
        if self.READ_ONCE(c.layout.mm(mm) + M_USERS) <= 1 and c.arch.current_mm() == mm:
            self.trim_single_threaded(mm)
        else:
            c.irq.smp_call_function_many(c.arch.mm_cpumask_cpus(mm), FLUSH_TLB_RANGE, mm, wait=True)

    def trim_single_threaded(self, mm: int) -> None:
        """Each CPU in the mask trims itself, unless it runs the mm (the fixed form)."""
        self.exit_flush_lazy_tlbs(mm)

    def exit_flush_lazy_tlbs(self, mm: int) -> None:
        c = self.c
        c.irq.smp_call_function_many(c.arch.mm_cpumask_cpus(mm), DO_EXIT_FLUSH_LAZY_TLB, mm, wait=True)
        if c.arch.mm_cpumask_cpus(mm) == [c.cpu] and c.arch.current_mm() != mm:
            self.exit_lazy_flush_tlb(mm)  # flush_type_needed's trim, not from an IPI

    def do_exit_flush_lazy_tlb(self, mm: int) -> None:
        self.c.count_lazy_ipi(mm)
        self.exit_lazy_flush_tlb(mm)

    def exit_lazy_flush_tlb(self, mm: int) -> None:
        c = self.c
        if c.arch.current_mm() == mm:
            return  # a kthread_use_mm that raced with the exit: it runs the mm for real
        if c.active_mm() == mm:
            flags = c.irq.local_irq_save()  # not always called from an IPI
            self.switch_lazy_to_init_mm(mm)
            c.irq.local_irq_restore(flags)
        self.trim_mm_cpumask(mm)

    def switch_lazy_to_init_mm(self, mm: int) -> None:
        c = self.c
        if c.arch.current_mm():
            c.oracle.report(SCHEME_WARNING, mm, AT_EXIT_FLUSH)
        self.mmgrab_lazy_tlb(INIT_MM)
        c.set_active_mm(INIT_MM)
        c.arch.switch_mm_irqs_off(mm, INIT_MM)
        self.mmdrop_lazy_tlb(mm)

    def trim_mm_cpumask(self, mm: int) -> None:
        c = self.c
        mask = c.arch.mm_cpumask(mm)
        if c.atomics.cpumask_test_cpu(mask, c.cpu):
            c.atomics.cpumask_clear_cpu(mask, c.cpu)  # dec_mm_active_cpus


class ShootIrqsEnabled(ShootLazies):
    name = "shoot-irqs-enabled"
    summary = "B7: powerpc exit-flush lazy switch runs with interrupts enabled"
    mutant_of = "shoot-lazies"

    def exit_lazy_flush_tlb(self, mm: int) -> None:
        c = self.c
        if c.arch.current_mm() == mm:
            return
        if c.active_mm() == mm:
            self.switch_lazy_to_init_mm(mm)  # no local_irq_save: an IPI may land mid-switch
        self.trim_mm_cpumask(mm)


class ShootHotplugRace(ShootLazies):
    name = "shoot-hotplug-race"
    summary = "B2: hotplug clears the CPU from the masks before it leaves its lazy mm"
    mutant_of = "shoot-lazies"

    def takedown_cpu(self) -> None:
        c = self.c
        c.set_cpu_online(False)  # __cpu_disable ...
        c.arch.cpu_offline()  # ... clears this CPU from every mm_cpumask, still lazy
        c.cpuhp_teardown()
        c.sched_force_init_mm()  # idle_task_exit, at the very end


class PowerpcTrimVsKthread(ShootLazies):
    name = "powerpc-trim-vs-kthread"
    summary = "B8: the sender trims a single-threaded mm's mask, racing with kthread_use_mm"
    mutant_of = "shoot-lazies"

    def trim_single_threaded(self, mm: int) -> None:
        c = self.c
        c.irq.smp_call_function_many(c.arch.mm_cpumask_cpus(mm), DO_EXIT_FLUSH_LAZY_TLB, mm, wait=True)
        self.mm_reset_thread_local(mm)

    def mm_reset_thread_local(self, mm: int) -> None:
        """ "It's possible for mm_access to take a reference on mm_users ... but it's not allowed
        to set mm_cpumask": the assumption kthread_use_mm broke."""
        c = self.c
        mask = c.arch.mm_cpumask(mm)
        for cpu in c.arch.mm_cpumask_cpus(mm):
            if cpu != c.cpu:
                c.atomics.cpumask_clear_cpu(mask, cpu)
        c.atomics.cpumask_set_cpu(mask, c.cpu)
