"""kernel/sched/core.c and kernel/exit.c, the parts that decide which mm a CPU runs on.

``schedule`` -> ``context_switch`` -> ``finish_task_switch`` as in the reference's section 2,
with interrupts masked from the pick of the next task until ``finish_task_switch`` unmasks
them; ``exit_mm``, ``kthread_use_mm`` and ``kthread_unuse_mm`` as in kernel/exit.c and
kernel/kthread.c. The scheme is reached only through its hooks; the architecture through
``switch_mm_irqs_off`` and ``enter_lazy_tlb``.

A task's ``active_mm`` is kept per CPU (``rq->curr->active_mm``): a task that is not running
has none, except a user task, whose active_mm is its own mm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emu.layout import INIT_MM, T_MM
from emu.trace import event

if TYPE_CHECKING:
    from emu.cpu import Cpu

EV_SWITCH = event("switch", "switch {task:a} -> {task:b}")
EV_LAZY_ENTER = event("lazy_enter", "lazy on {mm:a} (user -> kernel)")
EV_LAZY_LEAVE = event("lazy_leave", "leaves lazy {mm:a} for {mm:b} (kernel -> user)")
EV_EXIT_MM = event("exit_mm", "exit_mm {mm:a}: {task:b} goes on lazily")
EV_USE_MM = event("kthread_use_mm", "kthread_use_mm {mm:a} (was on {mm:b})")
EV_UNUSE_MM = event("kthread_unuse_mm", "kthread_unuse_mm {mm:a}")
EV_INIT_MM = event("switch_to_init_mm", "idle leaves {mm:a} for init_mm")


class Scheduler:
    """Mixed into ``Cpu``: the scheduler core, on the CPU's own fields."""

    def context_switch(self: Cpu, prev: int, next: int) -> None:
        w = self.w
        prev_mm = w[self.task_base + prev * 8 + T_MM]
        next_mm = w[self.task_base + next * 8 + T_MM]
        active = w[self.ACTIVE]
        #   kernel -> kernel   lazy: the active_mm is handed on, with its lazy reference
        #   user   -> kernel   lazy: a new lazy use begins, mmgrab_lazy_tlb(prev->active_mm)
        #   kernel -> user     switch_mm; the lazy use ends: mmdrop_lazy_tlb in finish_task_switch
        #   user   -> user     switch_mm
        if not next_mm:
            self.arch.enter_lazy_tlb(active)
            if prev_mm:
                self.trace(EV_LAZY_ENTER, active)
                self.strategy.lazy_switch_to_kernel(active)
                w[self.c_lazy_switches] += 1
        else:
            self.arch.switch_mm_irqs_off(active, next_mm)
            w[self.ACTIVE] = next_mm
            if next_mm != active:
                self.mm.note_ran(next_mm)  # staying on its active mm, this CPU has run it already
            if not prev_mm:
                self.trace(EV_LAZY_LEAVE, active, next_mm)
                w[self.PREV_MM] = active  # rq->prev_mm, dropped in finish_task_switch
                self.strategy.lazy_switch_to_user(active)
        w[self.CURR] = next
        self.finish_task_switch()

    def finish_task_switch(self: Cpu) -> None:
        w, irq = self.w, self.irq
        mm = w[self.PREV_MM]
        w[self.PREV_MM] = 0
        irq.disabled = False  # finish_lock_switch: local_irq_enable
        if irq.pending:
            irq.replay()
        if mm:
            self.strategy.mmdrop_lazy_tlb_sched(mm)
        if self.strategy.has_finish_task_switch:
            self.strategy.finish_task_switch()

    def schedule(self: Cpu) -> None:
        w, irq = self.w, self.irq
        irq.disabled = True  # local_irq_disable
        prev = w[self.CURR]
        next = self.pick_next_task()
        if next == prev:
            irq.disabled = False
            if irq.pending:
                irq.replay()
            return
        w[self.c_switches] += 1
        self.trace(EV_SWITCH, prev, next)
        self.context_switch(prev, next)

    # -- kernel/exit.c ---------------------------------------------------------------------
    def exit_mm(self: Cpu, task: int) -> None:
        """The task stops being a user of its mm but runs on, lazily, until its last schedule."""
        t = self.task_base + task * 8
        mm = self.w[t + T_MM]
        self.strategy.mmgrab_lazy_tlb(mm)
        self.irq.local_irq_disable()
        self.w[t + T_MM] = 0  # current->mm = NULL
        self.arch.enter_lazy_tlb(mm)
        self.irq.local_irq_enable()
        self.trace(EV_EXIT_MM, mm, task)
        self.mm.mmput(mm)

    # -- kernel/kthread.c -------------------------------------------------------------------
    def kthread_use_mm(self: Cpu, task: int, mm: int) -> None:
        """Adopt ``mm`` (the caller holds an mm_users reference)."""
        w = self.w
        self.mm.mmgrab(mm)
        self.irq.local_irq_disable()
        active = w[self.ACTIVE]
        w[self.ACTIVE] = mm
        w[self.task_base + task * 8 + T_MM] = mm
        self.arch.switch_mm_irqs_off(active, mm)
        self.mm.note_ran(mm)
        self.irq.local_irq_enable()
        self.trace(EV_USE_MM, mm, active)
        self.strategy.mmdrop_lazy_tlb(active)

    def kthread_unuse_mm(self: Cpu, task: int, mm: int) -> None:
        self.irq.local_irq_disable()
        self.w[self.task_base + task * 8 + T_MM] = 0
        self.strategy.mmgrab_lazy_tlb(mm)  # active_mm is still mm
        self.arch.enter_lazy_tlb(mm)
        self.irq.local_irq_enable()
        self.trace(EV_UNUSE_MM, mm)
        self.mm.mmdrop(mm)

    def sched_force_init_mm(self: Cpu) -> None:
        """The idle task leaves its lazy mm for init_mm, as a CPU going offline does
        (kernel/sched/core.c ``sched_force_init_mm``): a lazy use of init_mm replaces it."""
        active = self.w[self.ACTIVE]
        if active == INIT_MM:
            self.strategy.sched_force_init_mm()
            return
        self.trace(EV_INIT_MM, active)
        self.strategy.mmgrab_lazy_tlb(INIT_MM)
        self.irq.local_irq_disable()
        self.w[self.ACTIVE] = INIT_MM
        self.arch.switch_mm_irqs_off(active, INIT_MM)
        self.irq.local_irq_enable()
        self.strategy.mmdrop_lazy_tlb(active)
        self.strategy.sched_force_init_mm()
