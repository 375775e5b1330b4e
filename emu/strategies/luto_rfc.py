"""luto-rfc: Andy Lutomirski's RFC v2 mockup, Dec 2020 ("Lightweight lazy mm refcounting").

Algorithm (reference, section 3.3), emulated as posted, flaws included: ``rq->lazy_mm`` says
which mm this CPU is lazy on, without a reference (user -> kernel: ``WRITE_ONCE``); when the CPU
runs a user task again, ``finish_task_switch`` clears it and ``drop_extra_mm_refs`` drops any
reference another CPU left in ``rq->mm_to_mmdrop``. At ``__mmput``, after ``exit_mmap``,
``mm_fixup_lazy_refs`` scans the CPUs the architecture hints (``mm_cpumask``; every online CPU
where the mask is not maintained, arm64 and s390) with one ``READ_ONCE(rq->lazy_mm)`` each; for
a CPU lazy on the mm it takes an ``mm_count`` reference and ``xchg``es it into that CPU's
``mm_to_mmdrop``, dropping the reference it displaces: the patch argues the target "is
definitely done with old". Costs: one remote read per scanned CPU per exit, two atomics on the
mm's line per lazy CPU found, none per context switch.

Known flaws the emulator looks for: the single read of ``lazy_mm`` (B3, the race the 2022
version documents: between the read and the ``xchg`` the target may go lazy on the displaced mm
just before that mm's own exit parks it there), and x86's old mask as the hint (B9: the exit
flush makes a lazy CPU load init_mm and clear its bit while it stays lazy on the mm).

Interpretations: the reference's "finish_task_switch: if current.mm and rq.lazy_mm: clear;
drop_extra_mm_refs" is read as dropping the extra reference when the CPU stops being lazy
(the patch's own comment: it happens "when we recently stopped using an mm that is exiting");
``kthread_use_mm`` and the idle task settling on init_mm end a lazy use through the same
``mmdrop_lazy_tlb`` hook, as the 2022 series did. ``--race-delay`` stalls between the read of
``lazy_mm`` and the ``xchg``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emu.strategies.base import Strategy

if TYPE_CHECKING:
    from emu.cpu import Cpu


class LutoRfc(Strategy):
    name = "luto-rfc"
    summary = "RFC v2 mockup: rq->lazy_mm, __mmput scans the hinted CPUs into rq->mm_to_mmdrop"
    percpu = ("lazy_mm", "mm_to_mmdrop")
    counters = ("cpus_scanned", "remote_slot_reads", "mm_line_atomics")

    def __init__(self, cpu: Cpu) -> None:
        super().__init__(cpu)
        self.lazy_mm = self.rq("lazy_mm")
        self.mm_to_mmdrop = self.rq("mm_to_mmdrop")

    def mmgrab_lazy_tlb(self, mm: int) -> None:
        self.WRITE_ONCE(self.lazy_mm, mm)

    def mmdrop_lazy_tlb(self, mm: int) -> None:
        if self.READ_ONCE(self.lazy_mm) == mm:
            self.WRITE_ONCE(self.lazy_mm, 0)
        self.drop_extra_mm_refs()

    def mmdrop_lazy_tlb_sched(self, mm: int) -> None:
        pass  # finish_task_switch below does it

    def finish_task_switch(self) -> None:
        if self.c.arch.current_mm() and self.READ_ONCE(self.lazy_mm):
            self.WRITE_ONCE(self.lazy_mm, 0)
            self.drop_extra_mm_refs()

    def sched_force_init_mm(self) -> None:
        self.drop_extra_mm_refs()

    def drop_extra_mm_refs(self) -> None:
        if not self.READ_ONCE(self.mm_to_mmdrop):
            return
        old = self.xchg(self.mm_to_mmdrop, 0)
        if old:
            self.count("mm_line_atomics")
            self.mmdrop(old)

    def mmput_lazy_fixup(self, mm: int) -> None:
        self.mm_fixup_lazy_refs(mm)

    def mm_fixup_lazy_refs(self, mm: int) -> None:
        """mm_users is 0: no new lazy use of mm can start. Steal a reference for each lazy CPU."""
        c = self.c
        arch = c.arch
        cpus = arch.mm_cpumask_cpus(mm) if arch.maintains_mm_cpumask else c.online_cpus()
        me = self.smp_processor_id
        for cpu in cpus:
            self.count("cpus_scanned")
            if cpu != me:
                self.count("remote_slot_reads")
            if self.READ_ONCE(self.rq("lazy_mm", cpu)) != mm:
                continue
            self.race_window()
            self.count("mm_line_atomics")
            self.mmgrab(mm)
            old = self.xchg(self.rq("mm_to_mmdrop", cpu), mm)  # "we just stole an mm reference from the target CPU"
            if old:
                self.count("mm_line_atomics")
                self.mmdrop(old)  # "it is definitely done with old" (B3: not always)
