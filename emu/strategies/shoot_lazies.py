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
from emu.kernel.protocols import CellDecl
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
    # the matrix rows of this scheme and its mutants (emu.harness.matrix), with the verdict each must give and why
    cells = (
        CellDecl("shoot-lazies", "powerpc", why="the mask covers every CPU that used the mm and did not trim itself"),
        CellDecl("shoot-lazies", "powerpc", options={"debug_check": True}, why="no CPU is lazy on the mm after cleanup_lazy_tlbs"),
        CellDecl("shoot-lazies", "powerpc", options={"trim_timer": 1}, why="each trim moves a lazy CPU to init_mm before its bit goes"),
        CellDecl("shoot-lazies", "powerpc", options={"hotplug": True}, why="hotplug leaves the lazy mm before the mask"),
        CellDecl("shoot-lazies", "powerpc", options={"use_mm_bursts": True}, why="each CPU trims only itself, never a running kthread"),
        CellDecl("shoot-lazies", "s390", why="the mask is reset to the attached CPUs, lazy ones included"),
        CellDecl("shoot-lazies", "s390", options={"shoot_all": True}, why="IPI every CPU: correct anywhere"),
        CellDecl("shoot-lazies", "arm64", options={"shoot_all": True}, why="no mask: IPI every CPU"),
        CellDecl("shoot-lazies", "arm64", "use_after_free", why="B1: the mask is empty"),
        CellDecl(
            "shoot-lazies", "x86", "freed_while_lazy", why="a freed-tables flush cleared a lazy CPU's bit, the exiting CPU's own included"
        ),
        CellDecl(
            "shoot-lazies",
            "x86",
            options={"x86_unlazy_on_flush": True},
            why="a CPU that loads init_mm also stops being lazy: the v6.13 mask then covers lazies",
        ),
        CellDecl(
            "shoot-lazies",
            "x86-lazy-mask",
            "freed_while_lazy",
            workload={"p_munmap": 0.05, "p_free_tables": 1.0},
            why="finding: a lazy CPU moved to init_mm by one freed-tables flush loses its bit at the next (never combined in the kernel)",
        ),
        CellDecl(
            "shoot-lazies",
            "x86-lazy-mask",
            options={"x86_unlazy_on_flush": True},
            workload={"p_munmap": 0.05, "p_free_tables": 1.0},
            why="a CPU moved to init_mm is no longer lazy",
        ),
        CellDecl(
            "shoot-hotplug-race", "powerpc", "cpumask_missing", options={"hotplug": True}, why="B2: the CPU leaves the masks while lazy"
        ),
    )
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
