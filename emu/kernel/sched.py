"""kernel/sched/core.c and kernel/exit.c, the parts that decide which mm a CPU runs on.

``schedule`` -> ``context_switch`` -> ``finish_task_switch`` as in the reference's section 2,
with interrupts masked from the pick of the next task until ``finish_task_switch`` unmasks
them; ``exit_mm``, ``kthread_use_mm``, ``kthread_unuse_mm`` and ``exec_mmap`` as in kernel/exit.c,
kernel/kthread.c and fs/exec.c. The scheme is reached only through its hooks; the architecture
through ``switch_mm_irqs_off`` and ``enter_lazy_tlb``.

Preemption points: ``kthread_use_mm`` and ``exec_mmap`` (from a kernel thread) end with
``mmdrop_lazy_tlb(old active_mm)`` with interrupts and preemption enabled. With probability
``--p-preempt`` the task is preempted there (``might_resched``): what is left of the path is
kept in the task's record (``T_RESUME``) and runs when the task next runs, on whichever CPU
that is (a user task may have migrated meanwhile; per-CPU kernel threads are bound to theirs).
A scheme whose series releases the lazy mm inside the interrupts-off section
(``lazy_release_in_irqs_off``) has no such point.

A task's ``active_mm`` is kept per CPU (``rq->curr->active_mm``): a task that is not running
has none, except a user task, whose active_mm is its own mm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emu.machine.layout import (
    INIT_MM,
    KIND_RESUMING,
    RESUME_KERNEL_EXECVE,
    RESUME_MMDROP_LAZY_TLB,
    RESUME_NONE,
    T_KIND,
    T_MM,
    T_RESUME,
    T_RESUME_ARG,
)
from emu.machine.trace import event

if TYPE_CHECKING:
    from emu.kernel.core import CpuCore

EV_SWITCH = event("switch", "switch {task:a} -> {task:b}")
EV_LAZY_ENTER = event("lazy_enter", "lazy on {mm:a} (user -> kernel)")
EV_LAZY_LEAVE = event("lazy_leave", "leaves lazy {mm:a} for {mm:b} (kernel -> user)")
EV_EXIT_MM = event("exit_mm", "exit_mm {mm:a}: {task:b} goes on lazily")
EV_USE_MM = event("kthread_use_mm", "kthread_use_mm {mm:a} (was on {mm:b})")
EV_UNUSE_MM = event("kthread_unuse_mm", "kthread_unuse_mm {mm:a}")
EV_INIT_MM = event("switch_to_init_mm", "idle leaves {mm:a} for init_mm")
EV_EXEC = event("exec_mmap", "exec_mmap {mm:a} (was on {mm:b})")
EV_PREEMPT = event("preempt", "{task:a} preempted before mmdrop_lazy_tlb({mm:b})")
EV_RESUME = event("resume", "{task:a} resumes: mmdrop_lazy_tlb({mm:b})")


class Scheduler:
    """Mixed into ``Cpu``: the scheduler core, on the CPU's own fields."""

    def context_switch(self: CpuCore, prev: int, next: int) -> None:
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
            w[self.ACTIVE] = next_mm  # rq->curr is next already: its active_mm is its mm
            self.arch.switch_mm_irqs_off(active, next_mm)
            if next_mm != active:
                self.mm.note_ran(next_mm)  # staying on its active mm, this CPU has run it already
            if not prev_mm:
                self.trace(EV_LAZY_LEAVE, active, next_mm)
                w[self.PREV_MM] = active  # rq->prev_mm, dropped in finish_task_switch
                self.strategy.lazy_switch_to_user(active)
        w[self.CURR] = next
        self.finish_task_switch()

    def finish_task_switch(self: CpuCore) -> None:
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

    def schedule(self: CpuCore) -> None:
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
    def exit_mm(self: CpuCore, task: int) -> None:
        """The task stops being a user of its mm but runs on, lazily, until its last schedule."""
        t = self.task_base + task * 8
        mm = self.w[t + T_MM]
        grab_irqs_off = self.strategy.exit_mm_grab_irqs_off
        if not grab_irqs_off:
            self.strategy.mmgrab_lazy_tlb(mm)
        self.irq.local_irq_disable()
        if grab_irqs_off:
            self.strategy.mmgrab_lazy_tlb(mm)
        self.w[t + T_MM] = 0  # current->mm = NULL
        self.arch.enter_lazy_tlb(mm)
        self.irq.local_irq_enable()
        self.trace(EV_EXIT_MM, mm, task)
        self.mm.mmput(mm)

    # -- preemption points --------------------------------------------------------------------
    def might_resched(self: CpuCore, task: int, resume: int, arg: int) -> bool:
        """A preemption point before the rest of a kernel path: True if the task is preempted
        here, with the rest (``resume``, ``arg``) left in its record for wherever it runs next."""
        if not self.driver.preempted_in_kernel_path():
            return False
        t = self.task_base + task * 8
        self.w[t + T_RESUME_ARG] = arg
        self.w[t + T_RESUME] = resume
        self.w[t + T_KIND] |= KIND_RESUMING  # the run loop dispatches it to run_resuming
        self.trace(EV_PREEMPT, task, arg)
        self.count("preemptions")
        return True

    def resume_kernel_path(self: CpuCore, task: int) -> bool:
        """The task runs again (here, wherever it was preempted or created): finish its kernel path
        first. True if it is preempted again on the way (the caller schedules away)."""
        t = self.task_base + task * 8
        w = self.w
        resume, arg = w[t + T_RESUME], w[t + T_RESUME_ARG]
        w[t + T_RESUME] = RESUME_NONE
        if resume == RESUME_MMDROP_LAZY_TLB:
            self.trace(EV_RESUME, task, arg)
            self.strategy.mmdrop_lazy_tlb(arg)  # this_cpu: the CPU it resumed on
            return False
        if resume == RESUME_KERNEL_EXECVE:
            return self.exec_mmap(task, arg)
        return False

    def drop_old_lazy_mm(self: CpuCore, task: int, active: int) -> bool:
        """The preemptible tail of ``kthread_use_mm`` and ``exec_mmap``: ``mmdrop_lazy_tlb(active)``,
        or a preemption before it (True: the caller schedules away)."""
        if self.might_resched(task, RESUME_MMDROP_LAZY_TLB, active):
            return True
        self.strategy.mmdrop_lazy_tlb(active)
        return False

    # -- kernel/kthread.c -------------------------------------------------------------------
    def kthread_use_mm(self: CpuCore, task: int, mm: int) -> bool:
        """Adopt ``mm`` (the caller holds an mm_users reference). True if the kthread was preempted
        before dropping its old lazy mm (the drop then runs when it next runs)."""
        w = self.w
        self.mm.mmgrab(mm)
        self.irq.local_irq_disable()
        active = w[self.ACTIVE]
        w[self.ACTIVE] = mm
        w[self.task_base + task * 8 + T_MM] = mm
        self.arch.switch_mm_irqs_off(active, mm)
        self.mm.note_ran(mm)
        if self.strategy.lazy_release_in_irqs_off:
            self.strategy.mmdrop_lazy_tlb(active)
            self.irq.local_irq_enable()
            self.trace(EV_USE_MM, mm, active)
            return False
        self.irq.local_irq_enable()
        self.trace(EV_USE_MM, mm, active)
        return self.drop_old_lazy_mm(task, active)

    def kthread_unuse_mm(self: CpuCore, task: int, mm: int) -> None:
        self.irq.local_irq_disable()
        self.w[self.task_base + task * 8 + T_MM] = 0
        self.strategy.mmgrab_lazy_tlb(mm)  # active_mm is still mm
        self.arch.enter_lazy_tlb(mm)
        self.irq.local_irq_enable()
        self.trace(EV_UNUSE_MM, mm)
        self.mm.mmdrop(mm)

    # -- fs/exec.c -------------------------------------------------------------------------
    def exec_mmap(self: CpuCore, task: int, mm: int) -> bool:
        """The task's address space becomes ``mm`` (a new one, its single user). A user task puts
        its old mm; a kernel thread (``kernel_execve``: init, usermode helpers) had none and ends
        its lazy use of the borrowed active_mm, preemptibly. True if preempted before that drop."""
        w = self.w
        t = self.task_base + task * 8
        old_mm = w[t + T_MM]
        self.irq.local_irq_disable()
        active = w[self.ACTIVE]
        w[self.ACTIVE] = mm
        w[t + T_MM] = mm
        self.arch.switch_mm_irqs_off(active, mm)  # activate_mm
        self.mm.note_ran(mm)
        release = not old_mm and self.strategy.lazy_release_in_irqs_off
        if release:
            self.strategy.mmdrop_lazy_tlb(active)
        self.irq.local_irq_enable()
        self.trace(EV_EXEC, mm, active)
        self.count("execs")
        if old_mm:
            self.mm.mmput(old_mm)
            return False
        return False if release else self.drop_old_lazy_mm(task, active)

    def sched_force_init_mm(self: CpuCore) -> None:
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
