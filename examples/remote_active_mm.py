"""remote-active-mm: shoot lazies, with each CPU's lazy mm published where the shooter can check it.

The idea is one of those the comment above ``cleanup_lazy_tlbs`` in kernel/fork.c (v6.3 on, from
2655421ae69f "lazy tlb: shoot lazies, a non-refcounting lazy tlb mm reference handling scheme")
lists to reduce its IPIs: "CPUs store active_mm where it can be remotely checked without a lock,
to filter out false-positives in the cpumask". Nobody posted it; this is a sketch to try it.

- ``mmgrab_lazy_tlb(mm)``: the lazy use takes no reference (as shoot-lazies); the CPU publishes
  ``mm`` in its per-CPU field ``lazy_active_mm`` (``WRITE_ONCE``; init_mm is never freed and
  is not published).
- ``mmdrop_lazy_tlb(mm)``: ``smp_mb()`` (shoot-lazies' barrier), then the field is cleared if it
  still names ``mm``.
- ``cleanup_lazy_tlbs(mm)`` (``__mmdrop``, ``mm_count`` is 0: no new lazy use of ``mm`` can begin):
  ``smp_mb()``, then for each CPU of ``mm_cpumask(mm)`` one ``smp_load_acquire`` of its field; only
  the CPUs whose field names ``mm`` get the ``do_shoot_lazy_tlb`` IPI. The handler switches the CPU
  to init_mm, as shoot-lazies', and clears the field.

The scheme keeps shoot-lazies' reliance on the mask: where the mask misses lazy CPUs (arm64's
is empty; x86 up to v6.13 drops lazy CPUs at a freed-tables flush) the filter cannot help.

Mutant ``remote-active-mm-no-publish``: the context switch to a kernel thread publishes nothing,
so the filter removes every CPU lazy through a context switch and their lazy mm is freed under them
(on s390; powerpc's exit flush, ``exit_flush_lazy_tlbs``, shoots the lazy CPUs before
``cleanup_lazy_tlbs`` runs, and hides it there).

Run it from the repository root (docs/writing-a-scheme.md):
``python -m stress run --strategy examples/remote_active_mm.py:RemoteActiveMm --arch powerpc``
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emu.kernel.protocols import CellDecl
from emu.machine.irq import ipi_function
from emu.machine.layout import INIT_MM
from emu.strategies.base import Strategy

if TYPE_CHECKING:
    from emu.kernel.surface import KernelCpu

DO_SHOOT_LAZY_TLB = ipi_function("do_shoot_lazy_tlb", purpose="ipis_shootdown")


class RemoteActiveMm(Strategy):
    name = "remote-active-mm"
    summary = "shoot lazies, IPIs filtered by each CPU's published lazy mm (kernel/fork.c's idea)"
    source = "the comment above cleanup_lazy_tlbs in kernel/fork.c (2655421ae69f, v6.3)"
    MMU_LAZY_TLB_SHOOTDOWN = True  # powerpc's exit flush shoots lazies itself, as for shoot-lazies
    percpu = ("lazy_active_mm",)
    shown = ("lazy_active_mm",)  # the timeline shows the publish, the clear and the shooter's reads
    counters = ("cpus_filtered",)
    labels = {"cpus_filtered": "CPUs of the mask the published lazy mm spared an IPI"}
    cells = (
        CellDecl("remote-active-mm", "powerpc", why="the mask covers every lazy CPU; the filter only drops CPUs not lazy on the mm"),
        CellDecl("remote-active-mm", "s390", why="the mask is reset to the attached CPUs, lazy ones included"),
        CellDecl("remote-active-mm", "arm64", "use_after_free", why="shoot-lazies' B1: the mask is empty, nothing to filter"),
        CellDecl("remote-active-mm", "x86", "freed_while_lazy", why="as shoot-lazies: a freed-tables flush clears lazy CPUs' bits"),
        CellDecl("remote-active-mm-no-publish", "s390", "freed_while_lazy", also=("use_after_free",), why="every lazy CPU filtered out"),
    )

    def __init__(self, cpu: KernelCpu) -> None:
        super().__init__(cpu)
        cpu.irq.handlers[DO_SHOOT_LAZY_TLB] = self.do_shoot_lazy_tlb
        self.field = self.rq("lazy_active_mm")

    def mmgrab_lazy_tlb(self, mm: int) -> None:
        if mm != INIT_MM:
            self.WRITE_ONCE(self.field, mm)
            self.show("set", "lazy_active_mm", mm)

    def mmdrop_lazy_tlb(self, mm: int) -> None:
        self.smp_mb()  # "mmdrop_lazy_tlb must provide a full memory barrier"
        if self.READ_ONCE(self.field) == mm:
            self.WRITE_ONCE(self.field, 0)
            self.show("clear", "lazy_active_mm", mm)

    def cleanup_lazy_tlbs(self, mm: int) -> None:
        c = self.c
        self.smp_mb()  # the atomic_dec_and_test that got here, before the reads
        lazy = []
        for cpu in c.arch.mm_cpumask_cpus(mm):
            if self.smp_load_acquire(self.rq("lazy_active_mm", cpu)) == mm:
                self.show("read", "lazy_active_mm", mm, cpu)
                lazy.append(cpu)
            else:
                self.count("cpus_filtered")
        c.irq.on_each_cpu_mask(lazy, DO_SHOOT_LAZY_TLB, mm, wait=True)

    def do_shoot_lazy_tlb(self, mm: int) -> None:
        super().do_shoot_lazy_tlb(mm)
        if self.READ_ONCE(self.field) == mm:
            self.WRITE_ONCE(self.field, 0)


class RemoteActiveMmNoPublish(RemoteActiveMm):
    name = "remote-active-mm-no-publish"
    summary = "the switch to a kernel thread publishes nothing: the filter drops every lazy CPU"
    mutant_of = "remote-active-mm"

    def lazy_switch_to_kernel(self, mm: int) -> None:
        pass  # the lazy use begins unpublished
