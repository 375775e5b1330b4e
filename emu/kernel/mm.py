"""The mm lifecycle, as in kernel/fork.c: two counts, two teardown stages.

``mm_users`` counts the tasks that use the address space; when it drops to zero ``__mmput``
tears it down (``exit_mmap`` with its final TLB flush) and drops the single ``mm_count``
reference that all users share. ``mm_count`` counts that reference, lazy users (in the
refcount scheme) and ``mmgrab`` holders; when it drops to zero ``__mmdrop`` runs the scheme's
``cleanup_lazy_tlbs`` and frees the mm.

Every count change is a checked read-modify-write: under the mm's cache-line lock it first
verifies that the handle's generation is current and the record not freed, so a count touched
after ``__mmdrop`` is reported as a use-after-free, not silently applied to a reused slot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emu.checks.oracle import COUNT_UNDERFLOW, DOUBLE_FREE, USE_AFTER_FREE, site
from emu.machine.atomics import Atomics
from emu.machine.layout import (
    INIT_MM,
    M_ARCH,
    M_COUNT,
    M_FREED_BY,
    M_GEN,
    M_SERIAL,
    M_STATE,
    M_T_MMPUT,
    M_USERS,
    MM_EXITED,
    MM_FREED,
    MM_LIVE,
    MM_SLOT_BITS,
    MM_SLOT_MASK,
    MM_UNUSED,
    MM_WORDS,
    POISON,
    mm_gen,
)
from emu.machine.trace import event

if TYPE_CHECKING:
    from emu.kernel.cpu import Cpu

EV_MMGRAB = event("mmgrab", "mm_count({mm:a}) +1 -> {n:b}")
EV_MMDROP = event("mmdrop", "mm_count({mm:a}) -1 -> {n:b}")
EV_MMGET = event("mmget", "mm_users({mm:a}) +1 -> {n:b}")
EV_MMPUT = event("mmput", "mm_users({mm:a}) -1 -> {n:b}")
EV_MMPUT_LAST = event("__mmput", "__mmput({mm:a}): exit_mmap, last user gone")
EV_MMDROP_LAST = event("__mmdrop", "__mmdrop({mm:a}): cleanup_lazy_tlbs, free")
EV_FREED = event("free_mm", "freed {mm:a}")
EV_ALLOC = event("mm_alloc", "mm_alloc {mm:a} for {n:b} threads")

AT_MMGRAB = site("mmgrab (mm_count +1)")
AT_MMDROP = site("mmdrop (mm_count -1)")
AT_MMGET = site("mmget (mm_users +1)")
AT_MMPUT = site("mmput (mm_users -1)")
AT_FREE = site("__mmdrop")


class MmOps:
    """The mm operations as one CPU performs them."""

    def __init__(self, cpu: Cpu) -> None:
        self.c = cpu
        self.w = cpu.w
        self.layout = cpu.layout
        self.atomics = cpu.atomics
        self.oracle = cpu.oracle
        self.trace = cpu.trace
        self._serial = 0
        self.mm_base = cpu.layout.mm_base
        self.ran_base, self.mask_stride = cpu.layout.ran_base, cpu.layout.cpumask_stride
        self.mask_word, self.mask_bit = cpu.mask_word, cpu.mask_bit
        self.tearing_down = 0  # inside __mmput or __mmdrop: the IPIs sent are an exit's cost
        # a model whose smp_mb does something beyond what every locked op does (weak: lock() orders nothing)
        self.weak = type(cpu.atomics).smp_rmb is not Atomics.smp_rmb

    # -- the checked read-modify-write ---------------------------------------------------
    def mm_count_add(self, mm: int, field: int, delta: int, where: int, ordered: bool = False) -> int | None:
        """Add ``delta`` to a count of a live mm; None (and a report) if the mm is freed. ``ordered``:
        a fully ordered RMW (``atomic_dec_and_test`` in ``mmdrop``/``mmput``), else an unordered
        one (``atomic_inc`` in ``mmgrab``/``mmget``); only a weak memory model tells them apart."""
        b = self.mm_base + (mm & MM_SLOT_MASK) * MM_WORDS  # layout.mm(mm), inline: a hot path
        a = self.atomics
        if ordered and self.weak:
            a.smp_mb()
        k = a.lock_rmw(b)
        w = self.w
        if w[b + M_GEN] != mm >> MM_SLOT_BITS or w[b + M_STATE] == MM_FREED:
            a.unlock(k)
            self.oracle.report(USE_AFTER_FREE, mm, where)
            return None
        v = w[b + field] + delta
        w[b + field] = v
        a.unlock(k)
        if ordered and self.weak:
            a.smp_mb()
        if v < 0:
            self.oracle.report(COUNT_UNDERFLOW, mm, where, aux=v)
        return v

    def mm_count_add_unordered(self, mm: int, field: int, delta: int, where: int) -> None:
        """``atomic_add``/``atomic_sub`` on a count: an RMW without a return value, unordered (a weak
        model may make it visible after later accesses); checked like ``mm_count_add`` when applied."""
        b = self.mm_base + (mm & MM_SLOT_MASK) * MM_WORDS
        self.atomics.rmw_no_return(b + field, lambda: self.mm_count_add(mm, field, delta, where))

    # -- allocation (fork) -----------------------------------------------------------------
    def mm_alloc(self, users: int) -> int:
        """A new mm from this CPU's slots, with ``users`` users and their one mm_count; 0 if full."""
        w = self.w
        a = self.atomics
        for slot in self.layout.mm_slots_of(self.c.cpu):
            b = self.layout.mm_base + slot * MM_WORDS
            if w[b + M_STATE] not in (MM_UNUSED, MM_FREED):
                continue
            k = a.lock(b)
            gen = w[b + M_GEN] + 1
            mm = (gen << MM_SLOT_BITS) | slot
            mask, ran = self.layout.cpumask(mm), self.layout.ran_mask(mm)
            for i in range(self.layout.cpumask_words):
                w[mask + i] = w[ran + i] = 0
            w[b + M_GEN], w[b + M_USERS], w[b + M_COUNT] = gen, users, 1
            w[b + M_ARCH], w[b + M_FREED_BY], w[b + M_T_MMPUT] = 0, -1, 0
            self._serial += 1
            w[b + M_SERIAL] = self._serial
            w[b + M_STATE] = MM_LIVE
            a.unlock(k)
            self.trace(EV_ALLOC, mm, users)
            self.c.count("mm_created")
            return mm
        return 0

    def note_ran(self, mm: int) -> None:
        """Record that this CPU ran ``mm`` (for the footprint metric; not an arch mask)."""
        word = self.ran_base + (mm & MM_SLOT_MASK) * self.mask_stride + self.mask_word  # layout.ran_mask(mm) + ours
        if not (self.w[word] >> self.mask_bit) & 1:
            self.atomics.cpumask_set_cpu(word - self.mask_word, self.c.cpu)

    # -- mm_users ------------------------------------------------------------------------
    def mmget(self, mm: int) -> None:
        v = self.mm_count_add(mm, M_USERS, 1, AT_MMGET)
        self.trace(EV_MMGET, mm, -1 if v is None else v)

    def mmget_not_zero(self, mm: int) -> bool:
        """Take a user reference if the mm still has users: a lookup, never a dereference of a freed mm."""
        b = self.layout.mm(mm)
        a = self.atomics
        if self.weak:
            a.smp_mb()
        k = a.lock(b)
        w = self.w
        ok = w[b + M_GEN] == mm_gen(mm) and w[b + M_STATE] == MM_LIVE and w[b + M_USERS] > 0
        if ok:
            w[b + M_USERS] += 1
        a.unlock(k)
        if ok and self.weak:
            a.smp_mb()  # atomic_inc_not_zero: fully ordered when it increments
        return ok

    def mmput(self, mm: int) -> None:
        v = self.mm_count_add(mm, M_USERS, -1, AT_MMPUT, ordered=True)
        self.trace(EV_MMPUT, mm, -1 if v is None else v)
        if v == 0:
            self.__mmput(mm)

    def __mmput(self, mm: int) -> None:
        b = self.layout.mm(mm)
        self.w[b + M_T_MMPUT] = self.c.clock_ns()
        self.w[b + M_STATE] = MM_EXITED
        self.c.count("mm_exits")
        self.c.count("footprint_cpus", self.atomics.cpumask_weight(self.layout.ran_mask(mm), self.layout.ncpus))
        self.trace(EV_MMPUT_LAST, mm)
        self.tearing_down += 1
        try:
            self.exit_mmap(mm)
            self.c.strategy.mmput_lazy_fixup(mm)
            self.mmdrop(mm)
        finally:
            self.tearing_down -= 1

    def exit_mmap(self, mm: int) -> None:
        """Unmap everything, free the page tables' contents, and flush every TLB that may hold them."""
        self.c.arch.flush_tlb_mm_exit(mm)

    # -- mm_count ------------------------------------------------------------------------
    def mmgrab(self, mm: int) -> None:
        v = self.mm_count_add(mm, M_COUNT, 1, AT_MMGRAB)
        self.trace(EV_MMGRAB, mm, -1 if v is None else v)

    def mmdrop(self, mm: int) -> None:
        v = self.mm_count_add(mm, M_COUNT, -1, AT_MMDROP, ordered=True)
        self.trace(EV_MMDROP, mm, -1 if v is None else v)
        if v == 0:
            self.__mmdrop(mm)

    def __mmdrop(self, mm: int) -> None:
        self.trace(EV_MMDROP_LAST, mm)
        self.tearing_down += 1
        try:
            self.c.strategy.cleanup_lazy_tlbs(mm)
        finally:
            self.tearing_down -= 1
        self.oracle.check_free(mm, AT_FREE)
        self.c.arch.destroy_context(mm)
        self.free_mm(mm)

    def free_mm(self, mm: int) -> None:
        """Free and poison the record; a second free of the same handle is a double free."""
        if mm == INIT_MM:
            self.oracle.report(DOUBLE_FREE, mm, AT_FREE)
            return
        b = self.layout.mm(mm)
        a = self.atomics
        k = a.lock(b)
        w = self.w
        if w[b + M_GEN] != mm_gen(mm) or w[b + M_STATE] == MM_FREED:
            a.unlock(k)
            self.oracle.report(DOUBLE_FREE, mm, AT_FREE)
            return
        w[b + M_STATE] = MM_FREED
        w[b + M_USERS] = w[b + M_COUNT] = POISON
        w[b + M_FREED_BY] = self.c.cpu
        t_put = w[b + M_T_MMPUT]
        a.unlock(k)
        self.trace(EV_FREED, mm)
        self.c.count("mm_freed")
        if t_put:
            ns = self.c.clock_ns() - t_put
            self.c.count("exit_to_free_ns_sum", ns)
            self.c.record_exit_to_free(ns)
