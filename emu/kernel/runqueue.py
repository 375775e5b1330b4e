"""The runqueue: this CPU's queue of runnable tasks, its inbox for tasks woken from other CPUs
(``ttwu_queue``, the wake list), the pick of the next task, and where a woken or preempted task
runs next (``select_task_rq``)."""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from emu.machine.layout import (
    C_INBOX_HEAD,
    C_ONLINE,
    C_STATE,
    CPU_IDLE,
    CPU_WORDS,
    H_PHASE,
    H_USE_MM_BURST,
    PHASE_RUN,
    T_CPU,
    T_STATE,
    T_WAKEUPS,
    TASK_INTERRUPTIBLE,
    TASK_RUNNABLE,
    TASK_WORDS,
)
from emu.machine.trace import event

if TYPE_CHECKING:
    from emu.kernel.core import CpuCore

EV_MIGRATE = event("migrate", "{task:a} -> {cpu:b}")


class RunQueue:
    def preempt(self: CpuCore, task: int) -> None:
        """Requeue and switch away. A task moving to another CPU is queued there only once it is
        off this one (the kernel's ``p->on_cpu`` wait in ``try_to_wake_up``)."""
        target = self.select_task_rq()
        if target == self.cpu:
            self.runqueue.append(task)
            self.schedule()
        else:
            self.schedule()
            self.ttwu_queue(target, task)

    # -- run queues ---------------------------------------------------------------------------
    def pick_next_task(self: CpuCore) -> int:
        w = self.w
        if w[self.INBOX_TAIL] != w[self.INBOX_HEAD]:
            self.drain_inbox()
        if self.sleepers and self.sleepers[0][0] <= self.clock():
            self.wake_sleepers(PHASE_RUN)
        if self.kthreads and self.driver.kthread_wakes(w[H_USE_MM_BURST]) and w[H_PHASE] == PHASE_RUN:
            k = self.driver.kthread_to_wake(self.kthreads)
            if k not in self.kthread_queued and k != self.w[self.CURR]:
                self.kthread_queued.add(k)
                return k
        if self.runqueue:
            return self.runqueue.popleft()
        return self.cpu  # the idle task

    def inbox_pending(self: CpuCore) -> bool:
        return self.w[self.INBOX_TAIL] != self.w[self.INBOX_HEAD]

    def drain_inbox(self: CpuCore) -> None:
        w, lay = self.w, self.layout
        head_i = self.INBOX_HEAD
        box, cap = lay.inbox(self.cpu), lay.inbox_cap
        k = self.atomics.lock(head_i)
        head, tail = w[head_i], w[head_i + 1]
        for i in range(head, tail):
            self.runqueue.append(w[box + i % cap])
        w[head_i] = tail
        self.atomics.unlock(k)

    def ttwu_queue(self: CpuCore, target: int, task: int) -> None:
        """Queue a woken task on ``target``'s runqueue; kick the target if it is idle."""
        if target == self.cpu:
            self.runqueue.append(task)
            return
        w, lay = self.w, self.layout
        rq = lay.cpu_base + target * CPU_WORDS  # lay.cpu(target), inline: every migration
        head_i = rq + C_INBOX_HEAD
        cap = lay.inbox_cap
        k = self.atomics.lock(head_i)
        head, tail = w[head_i], w[head_i + 1]
        if tail - head >= cap:
            self.atomics.unlock(k)
            self.runqueue.append(task)
            return
        w[lay.inbox_base + target * cap + tail % cap] = task
        w[head_i + 1] = tail + 1
        self.atomics.unlock(k)
        self.trace(EV_MIGRATE, task, target)
        w[self.c_migrations] += 1
        if w[rq + C_STATE] == CPU_IDLE:
            self.irq.smp_send_reschedule(target)

    def select_task_rq(self: CpuCore) -> int:
        """Where a woken or preempted task runs next: here, or now and then another online CPU;
        always elsewhere while this CPU is going down."""
        if self.going_down or (self.w[H_PHASE] == PHASE_RUN and self.driver.migrates()):
            target = self.other_online_cpu()
            if target >= 0:
                return target
        return self.cpu

    def other_online_cpu(self: CpuCore) -> int:
        """A random online CPU other than this one, or -1."""
        if self.ncpus < 2:
            return -1
        rand, online = self.rng.random, self.layout.cpu_base + C_ONLINE  # lay.cpu(target) + C_ONLINE, inline
        for _ in range(4):
            target = int(rand() * (self.ncpus - 1))  # randrange, without its Python-level checks
            target += target >= self.cpu
            if self.w[online + target * CPU_WORDS]:
                return target
        others = [c for c in self.online_cpus() if c != self.cpu]
        return self.rng.choice(others) if others else -1

    def wake_up(self: CpuCore, task: int) -> None:
        """Queue a task that is not running anywhere (new, or back from sleep). A task still
        current here (woken inside its own schedule()) stays here: ``p->on_cpu``."""
        if task == self.w[self.CURR]:
            self.runqueue.append(task)
        else:
            self.ttwu_queue(self.select_task_rq(), task)

    # -- sleeping until woken: a pipe's reader and writer (kernel/sched/core.c try_to_wake_up) --------
    def wait_event(self: CpuCore, task: int) -> None:
        """The task sleeps (TASK_INTERRUPTIBLE) until another task's ``try_to_wake_up``; a wake-up
        posted while it was still running (a byte already in the pipe) is consumed instead, and it
        runs on. ``p->pi_lock`` is the task record's line."""
        tb = self.task_base + task * TASK_WORDS
        w, atomics = self.w, self.atomics
        k = atomics.lock(tb)
        if w[tb + T_WAKEUPS] > 0:
            w[tb + T_WAKEUPS] -= 1
            atomics.unlock(k)
            return
        w[tb + T_CPU] = self.cpu
        w[tb + T_STATE] = TASK_INTERRUPTIBLE
        atomics.unlock(k)
        self.schedule()  # off every runqueue until woken; a wake-up racing with this finds it here (p->on_cpu)

    def try_to_wake_up(self: CpuCore, task: int) -> None:
        """Wake a task asleep in ``wait_event`` on the CPU it slept on (``task_cpu``: the benchmarks
        pin their tasks), kicking that CPU if idle; a task not asleep keeps the wake-up for its next
        ``wait_event``; a dead one ignores it."""
        tb = self.task_base + task * TASK_WORDS
        w, atomics = self.w, self.atomics
        k = atomics.lock(tb)
        state = w[tb + T_STATE]
        if state != TASK_INTERRUPTIBLE:
            if state == TASK_RUNNABLE:
                w[tb + T_WAKEUPS] += 1
            atomics.unlock(k)
            return
        w[tb + T_STATE] = TASK_RUNNABLE
        target = w[tb + T_CPU]
        atomics.unlock(k)
        if target != self.cpu:
            self.count_if("remote_wakeups")
        self.ttwu_queue(target, task)

    def wake_sleepers(self: CpuCore, phase: int) -> None:
        now = self.clock()
        while self.sleepers and (phase != PHASE_RUN or self.sleepers[0][0] <= now):
            _, task = heapq.heappop(self.sleepers)
            self.wake_up(task)
