"""refcount: the classic scheme, Linux's default (``CONFIG_MMU_LAZY_TLB_REFCOUNT=y``): kernel/sched/core.c
``context_switch``/``finish_task_switch`` and include/linux/sched/mm.h ``mmgrab_lazy_tlb``/
``mmdrop_lazy_tlb`` as in mainline since v6.3 (the helpers came with the series of 2655421ae69f;
before it the same paths called ``mmgrab``/``mmdrop`` directly).

Algorithm (reference, section 3.1): every lazy use of an mm holds an ``mm_count`` reference.
``mmgrab_lazy_tlb`` is ``atomic_inc(&mm->mm_count)`` when a CPU switches from a user task to a
kernel thread; ``mmdrop_lazy_tlb`` drops it when the CPU next switches to a user task
(``finish_task_switch``), and the last drop frees the mm. ``cleanup_lazy_tlbs`` has nothing to
do: while any CPU is lazy the count cannot reach zero. Cost: two atomics on the mm's shared
cache line per user -> kernel -> user round trip, the bounce the shoot-lazies series removed.

Mutant ``refcount-no-grab`` (bug B5): the user -> kernel switch takes no reference, so the last
user's exit can free an mm that a CPU is still lazy on.
"""

from __future__ import annotations

from emu.kernel.protocols import CellDecl
from emu.strategies.base import Strategy


class Refcount(Strategy):
    name = "refcount"
    summary = "every lazy use holds an mm_count reference (Linux default)"
    source = "kernel/sched/core.c, include/linux/sched/mm.h (mainline since v6.3)"
    # the matrix rows of this scheme and its mutants (emu.harness.matrix), with the verdict each must give and why
    cells = (
        CellDecl("refcount", "*", why="a lazy use holds a count: correct on every arch"),
        CellDecl("refcount", "powerpc", options={"trim_timer": 1}, why="the radix trimming on every flush is correct arch code"),
        CellDecl(
            "refcount", "x86", options={"x86_idle_leave_mm": True}, why="leave_mm moves an idle lazy CPU to init_mm; the count still holds"
        ),
        CellDecl("refcount-no-grab", "x86", "use_after_free", why="B5: no reference for the lazy use"),
    )

    def mmgrab_lazy_tlb(self, mm: int) -> None:
        self.count("lazy_refcount_atomics")
        self.mmgrab(mm)

    def mmdrop_lazy_tlb(self, mm: int) -> None:
        self.count("lazy_refcount_atomics")
        self.mmdrop(mm)


class RefcountNoGrab(Refcount):
    name = "refcount-no-grab"
    summary = "B5: user -> kernel switch takes no mm_count reference"
    mutant_of = "refcount"

    def lazy_switch_to_kernel(self, mm: int) -> None:
        pass  # the lazy use begins, but nothing pins the mm
