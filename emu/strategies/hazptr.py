"""hazptr: Mathieu Desnoyers' hazard pointers for lazy mms (2024 RFC, "Track lazy active mm
existence with hazard pointers").

Algorithm (reference, section 3.5): every CPU has one hazard slot. A lazy use takes no
reference; it publishes the mm in the slot, after a full barrier (``mmgrab_lazy_tlb``:
``smp_mb(); slot = mm``; the slot must have been empty), and ends by clearing it
(``mmdrop_lazy_tlb``: ``smp_mb(); WRITE_ONCE(slot, NULL)``). ``__mmdrop`` runs
``cleanup_lazy_tlbs``: a full barrier, then a scan of every possible CPU's slot; each CPU whose
slot holds the mm gets a targeted IPI, ``do_shoot_lazy_tlb``, which moves it to ``init_mm`` and
clears its slot, as shoot-lazies does but only where the slot says so. Costs: one remote slot
read per CPU per free, no atomics on the mm's line, IPIs only to the CPUs really lazy on it.

``init_mm`` is never freed, so a lazy use of it publishes nothing (interpretation: the slot
keeps the one mm that can go away). ``hazptr_load_try_protect`` is the general form (publish,
full barrier, re-check); the lazy-mm paths never need its retry, because the mm being
published is always pinned by a user or an ``mmgrab`` at that moment.

Mutant ``hazptr-no-mb`` (bug B6): both ``smp_mb`` removed, the publisher's and the scanner's.
On a sequentially consistent machine nothing changes; the reference expects the
store-buffering pattern to surface under ``--memory-model tso``. In this machine it does not:
every path that publishes a lazy mm (user -> kernel switch, ``exit_mm``, ``kthread_unuse_mm``)
does so while a user (or an ``mmgrab``) pins the mm, and that pin can only go after a locked
read-modify-write on the publishing CPU (``mmput``, ``mmdrop``, or the run-queue lock of a
migration), which drains its store buffer first; the scan runs after the last such drop. So the
pair is redundant under TSO here; the reference's pseudo-code has no load after the publish
for a store-buffering pattern to reorder (a weaker model, where a lock acquire does not order
an earlier store before later loads, would be needed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emu.irq import ipi_function
from emu.layout import INIT_MM
from emu.oracle import SCHEME_WARNING, site
from emu.strategies.base import Strategy

if TYPE_CHECKING:
    from emu.cpu import Cpu

DO_SHOOT_LAZY_TLB = ipi_function("do_shoot_lazy_tlb", purpose="ipis_shootdown")

AT_SLOT_BUSY = site("hazptr: WARN_ON_ONCE(slot already in use)")


class Hazptr(Strategy):
    name = "hazptr"
    summary = "one hazard slot per CPU; __mmdrop scans every slot and IPIs only the CPUs holding the mm"
    percpu = ("hazptr_slot",)
    counters = ("cpus_scanned", "remote_slot_reads", "mm_line_atomics")

    def __init__(self, cpu: Cpu) -> None:
        super().__init__(cpu)
        cpu.irq.handlers[DO_SHOOT_LAZY_TLB] = self.do_shoot_lazy_tlb
        self.slot = self.rq("hazptr_slot")
        self.slots = [self.rq("hazptr_slot", c) for c in range(cpu.ncpus)]

    # -- the publisher side -------------------------------------------------------------------
    def mmgrab_lazy_tlb(self, mm: int) -> None:
        if mm == INIT_MM:
            return
        self.smp_mb()  # pairs with cleanup_lazy_tlbs' smp_mb: the store-buffering pattern
        self.race_window()
        if self.READ_ONCE(self.slot):
            self.c.oracle.report(SCHEME_WARNING, mm, AT_SLOT_BUSY)
        self.WRITE_ONCE(self.slot, mm)

    def mmdrop_lazy_tlb(self, mm: int) -> None:
        if mm == INIT_MM:
            return
        self.smp_mb()  # the lazy use's accesses before the slot is seen empty
        if self.READ_ONCE(self.slot) == mm:  # not if do_shoot_lazy_tlb cleared it already
            self.WRITE_ONCE(self.slot, 0)

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
        c = self.c
        self.smp_mb()  # the free decision before the scan's loads
        me = self.smp_processor_id
        for cpu, slot in enumerate(self.slots):
            self.count("cpus_scanned")
            if cpu != me:
                self.count("remote_slot_reads")
            if self.smp_load_acquire(slot) == mm:
                c.irq.smp_call_function_single(cpu, DO_SHOOT_LAZY_TLB, mm, wait=True)

    def do_shoot_lazy_tlb(self, mm: int) -> None:
        super().do_shoot_lazy_tlb(mm)
        if self.READ_ONCE(self.slot) == mm:
            self.WRITE_ONCE(self.slot, 0)


class HazptrNoMb(Hazptr):
    name = "hazptr-no-mb"
    summary = "B6: the smp_mb pair around the hazard slot removed"
    mutant_of = "hazptr"

    def mmgrab_lazy_tlb(self, mm: int) -> None:
        if mm == INIT_MM:
            return
        self.race_window()
        if self.READ_ONCE(self.slot):
            self.c.oracle.report(SCHEME_WARNING, mm, AT_SLOT_BUSY)
        self.WRITE_ONCE(self.slot, mm)  # no smp_mb before the publish

    def cleanup_lazy_tlbs(self, mm: int) -> None:
        c = self.c
        me = self.smp_processor_id
        for cpu, slot in enumerate(self.slots):  # no smp_mb before the scan
            self.count("cpus_scanned")
            if cpu != me:
                self.count("remote_slot_reads")
            if self.smp_load_acquire(slot) == mm:
                c.irq.smp_call_function_single(cpu, DO_SHOOT_LAZY_TLB, mm, wait=True)
