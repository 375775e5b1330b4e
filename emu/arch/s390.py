"""s390: ``mm_cpumask`` is kept, reset to the attach mask at each full flush; flushes are broadcasts.

Models arch/s390/include/asm/mmu_context.h and asm/tlbflush.h as of v6.13:

- ``switch_mm_irqs_off`` sets this CPU in ``next->context.cpu_attach_mask`` and clears it from
  prev's (if prev != next); ``enter_lazy_tlb`` is a no-op, so a lazy CPU stays attached to the
  mm it borrows.
- ``finish_arch_post_lock_switch`` (after a switch to a task with ``tsk->mm``; also called by
  ``kthread_use_mm``) and ``activate_mm`` set this CPU in ``mm_cpumask(mm)``, after waiting for
  ``mm->context.flush_count`` to drop to zero.
- ``__tlb_flush_mm``: ``flush_count``++, ``cpumask_copy(mm_cpumask(mm),
  &mm->context.cpu_attach_mask)``, then an IDTE (or global) flush, which the hardware broadcasts:
  no IPI; ``flush_count``--.

So the mask holds every CPU that ran the mm since the last reset, and the reset keeps every CPU
still attached: every CPU lazy on the mm is in it, and shoot-lazies' ``cleanup_lazy_tlbs`` finds
them all without ``--shoot-all``. Flushes do not rely on the mask (they are broadcasts), so the
oracle's mask check does not apply here.

Interpretations (the literal reading in brackets):

- The attach mask is exactly "the CPUs whose loaded mm is this mm", so it is derived from the
  CPUs' loaded-mm words instead of being kept as a second bitmap; a CPU whose ``active_mm`` word
  still names the mm counts as attached too. That is a CPU in the middle of a context switch
  away from it (the scheduler updates ``active_mm`` right after ``switch_mm_irqs_off``, within
  the same interrupts-off section): the kernel's reset leaves it out, and a ``__mmdrop`` then
  frees the mm while that CPU's previous task still points at it, harmlessly since nothing
  dereferences it; the emulator's oracle would see that pointer. [Literally: loaded mm only.]
- ``finish_arch_post_lock_switch``'s update is folded into ``switch_mm_irqs_off`` for a user mm:
  every call of it for a user mm here is a switch to a task that owns the mm (a context switch
  to a user task, ``kthread_use_mm``), and it runs right after. [The kernel sets the bit a little
  later, after the run-queue lock is dropped.]
- The exit flush and a munmap's flush always reset the mask [the kernel's ``tlb_flush`` ->
  ``__tlb_flush_mm_lazy`` resets only when ``context.flush_mm`` was set by a PTE change seen by
  other CPUs; without a reset the mask only holds more CPUs]. ``flush_count`` is kept in the mm
  record's arch word.

The first model of s390 took the claim of the RFC thread ("arches that don't track mm_cpumask at
all", said of arm64 and s390 in the shoot-lazies discussion) and modelled s390 like arm64, with
an empty mask, which made shoot-lazies fail on it (a "B1 on s390"); s390's own code contradicts
that claim.
"""

from __future__ import annotations

from emu.arch.base import Arch
from emu.machine.layout import C_ACTIVE_MM, C_LOADED_MM, CPU_WORDS, INIT_MM, M_ARCH


class S390(Arch):
    name = "s390"
    source = "arch/s390/include/asm/mmu_context.h and asm/tlbflush.h as of v6.13"
    # s390 orders everything but a store before a later load, and the kernel agrees
    # (arch/s390/include/asm/barrier.h: __smp_rmb/__smp_wmb compiler barriers, __smp_mb a serialising bcr)
    memory_model = "tso"
    mm_words = 1  # M_ARCH: the flush count
    summary = "mask set on switch to a task's mm, reset to the attached CPUs at each flush; broadcast flushes"
    flush_relies_on_mask = False

    def switch_mm_irqs_off(self, prev: int, next: int) -> None:
        self.lockdep_assert_irqs_disabled(next)
        if self.loaded_mm() != next:
            self.load_mm(next)  # cpu_attach_mask: this CPU joins next's, leaves prev's
        if next != INIT_MM and next != 0:
            self.finish_arch_post_lock_switch(next)

    def finish_arch_post_lock_switch(self, mm: int) -> None:
        flush_count = self.mm_record(mm) + M_ARCH
        while self.atomics.atomic_read(flush_count):
            self.c.cpu_relax()  # a __tlb_flush_mm is copying the attach mask
        self.atomics.cpumask_set_cpu(self.mm_cpumask(mm), self.cpu)

    def flush_tlb_mm_exit(self, mm: int) -> None:
        self.tlb_flush_mm(mm)

    def flush_tlb_munmap(self, mm: int, freed_tables: bool) -> None:
        self.c.count("tlb_flushes")
        self.tlb_flush_mm(mm)

    def tlb_flush_mm(self, mm: int) -> None:
        """``__tlb_flush_mm``: reset the mask to the attached CPUs, then the broadcast flush."""
        a, w, lay = self.atomics, self.w, self.c.layout
        flush_count = self.mm_record(mm) + M_ARCH
        a.atomic_inc(flush_count)
        cpus = range(lay.cpu_base, lay.cpu_base + lay.ncpus * CPU_WORDS, CPU_WORDS)
        attached = [c for c, b in enumerate(cpus) if w[b + C_LOADED_MM] == mm or w[b + C_ACTIVE_MM] == mm]
        mask = self.mm_cpumask(mm)
        for wi in range(lay.cpumask_words):  # cpumask_copy, a word at a time
            bits = 0
            for c in attached:
                if c >> 5 == wi:
                    bits |= 1 << (c & 31)
            k = a.lock(mask + wi)
            w[mask + wi] = bits
            a.unlock(k)
        self.tlb_broadcast(mm)  # IDTE: every CPU's TLB, by the hardware
        a.atomic_dec(flush_count)
