"""shoot-lazies: Nicholas Piggin's ``CONFIG_MMU_LAZY_TLB_SHOOTDOWN`` ("lazy tlb: shoot lazies, a
non-refcounting lazy tlb mm reference handling scheme", commit 2655421ae69f, merged in v6.3;
powerpc book3s64 selects it).

Algorithm (reference, section 3.2; include/linux/sched/mm.h and kernel/fork.c): a lazy use takes
no reference. ``mmgrab_lazy_tlb`` is nothing at all; ``mmdrop_lazy_tlb`` (and the drop in
``finish_task_switch``) is a full barrier, ``smp_mb()`` ("see the membarrier comment in
finish_task_switch"). Just before an mm is freed, ``cleanup_lazy_tlbs`` interrupts every CPU
that may be lazy on it, ``on_each_cpu_mask(mm_cpumask(mm), do_shoot_lazy_tlb, mm, 1)`` (this CPU
included), and each switches to ``init_mm`` if its ``active_mm`` is the mm. The architecture
must keep in ``mm_cpumask`` at least every CPU lazy on the mm; where it does not (arm64), lazy
CPUs are missed (bug B1, the seed thread's hypothetical), unless ``--shoot-all`` IPIs every
online CPU on every exit (the "DoS" cost raised in the RFC thread). ``--debug-check`` adds
``CONFIG_DEBUG_VM_SHOOT_LAZIES``: ``do_check_lazy_tlb`` on every CPU, which WARNs if one is
still lazy on the mm.

The scheme sets ``MMU_LAZY_TLB_SHOOTDOWN``, which architecture code tests as
``IS_ENABLED(CONFIG_MMU_LAZY_TLB_SHOOTDOWN)``: powerpc radix's exit flush then shoots lazies
itself (``exit_flush_lazy_tlbs``), so ``cleanup_lazy_tlbs`` later finds an almost empty mask.
That code, its trimming and its bugs B7 and B8 are arch code, in ``emu.arch.powerpc``.

Mutant ``shoot-hotplug-race`` (bug B2, fixed by "lazy tlb: fix hotplug exit race with
MMU_LAZY_TLB_SHOOTDOWN"): a CPU going down is cleared from the masks by powerpc's
``__cpu_disable`` while it is still lazy on an mm, and leaves that mm only at the end of the
teardown (``idle_task_exit``); an mm freed in between is not shot down on that CPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emu.checks.oracle import SCHEME_WARNING, site
from emu.machine.irq import ipi_function
from emu.strategies.base import Strategy

if TYPE_CHECKING:
    from emu.kernel.surface import KernelCpu

DO_SHOOT_LAZY_TLB = ipi_function("do_shoot_lazy_tlb", purpose="ipis_shootdown")
DO_CHECK_LAZY_TLB = ipi_function("do_check_lazy_tlb", purpose="ipis_check")

AT_CHECK = site("do_check_lazy_tlb: WARN_ON_ONCE(current->active_mm == mm)")


class ShootLazies(Strategy):
    name = "shoot-lazies"
    summary = "no lazy reference; IPI the CPUs in mm_cpumask to leave the mm before it is freed"
    source = "2655421ae69f (v6.3)"
    MMU_LAZY_TLB_SHOOTDOWN = True
    options = ("shoot_all", "debug_check")

    def __init__(self, cpu: KernelCpu) -> None:
        super().__init__(cpu)
        cpu.irq.handlers[DO_SHOOT_LAZY_TLB] = self.do_shoot_lazy_tlb
        cpu.irq.handlers[DO_CHECK_LAZY_TLB] = self.do_check_lazy_tlb
        self.shoot_all = cpu.scheme_options.flag("shoot_all")
        self.debug_check = cpu.scheme_options.flag("debug_check")

    def mmgrab_lazy_tlb(self, mm: int) -> None:
        pass  # "if (IS_ENABLED(CONFIG_MMU_LAZY_TLB_REFCOUNT)) mmgrab(mm)": nothing, not even a barrier

    def mmdrop_lazy_tlb(self, mm: int) -> None:
        self.smp_mb()  # "mmdrop_lazy_tlb must provide a full memory barrier"

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


class ShootHotplugRace(ShootLazies):
    name = "shoot-hotplug-race"
    summary = "B2: hotplug clears the CPU from the masks before it leaves its lazy mm"
    mutant_of = "shoot-lazies"

    def takedown_cpu(self) -> None:
        c = self.c
        c.set_cpu_online(False)  # __cpu_disable ...
        c.arch.cpu_offline()  # ... clears this CPU from the masks of live mms, still lazy
        c.cpuhp_teardown()
        c.sched_force_init_mm()  # idle_task_exit, at the very end
