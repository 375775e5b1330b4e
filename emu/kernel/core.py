"""What the scheduler core, the runqueue, the task lifecycle and hotplug use of their CPU.

``Cpu`` is built from these mixins (``sched``, ``runqueue``, ``tasks``, ``hotplug``); each of
their methods takes ``self: CpuCore``, so a type checker follows ``self`` through them, and checks
``Cpu`` against this protocol wherever it calls one. The protocol exists for the checker only: the
mixins import it under ``TYPE_CHECKING``, and at run time the CPU is the same plain class.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Protocol

from emu.kernel.driver import TaskDriver
from emu.kernel.surface import KernelCpu


class CpuCore(KernelCpu, Protocol):
    # this CPU's words (emu.machine.layout's C_* fields) and counters
    ACTIVE: int  # rq->curr->active_mm
    PREV_MM: int  # rq->prev_mm
    INBOX_HEAD: int  # the wake list, head and tail
    INBOX_TAIL: int
    HP_WANT: int  # the runner's hotplug request
    c_switches: int
    c_lazy_switches: int
    c_migrations: int
    # local scheduler state
    driver: TaskDriver
    rng: random.Random
    runqueue: deque[int]
    kthreads: list[int]
    kthread_queued: set[int]
    kthread_mm: dict[int, list[int]]  # kthread -> [mm, quanta left]
    sleepers: list[tuple[float, int]]  # a heap of (wake-up time, task)
    online: bool
    going_down: bool
    drain_task: int  # emu.kernel.drain: this CPU's drain task while it lives
    drain_forked: bool

    # -- sched
    def context_switch(self, prev: int, next: int) -> None: ...
    def finish_task_switch(self) -> None: ...
    def schedule(self) -> None: ...
    def exit_mm(self, task: int) -> None: ...
    def might_resched(self, task: int, resume: int, arg: int) -> bool: ...
    def drop_old_lazy_mm(self, task: int, active: int) -> bool: ...
    def exec_mmap(self, task: int, mm: int) -> bool: ...
    # -- runqueue
    def count_if(self, name: str, n: int = 1) -> None: ...  # a counter only some runs carry
    def pick_next_task(self) -> int: ...
    def drain_inbox(self) -> None: ...
    def ttwu_queue(self, target: int, task: int) -> None: ...
    def select_task_rq(self) -> int: ...
    def other_online_cpu(self) -> int: ...
    def wake_up(self, task: int) -> None: ...
    def wake_sleepers(self, phase: int) -> None: ...
    # -- tasks
    def free_user_tasks(self) -> list[int]: ...
    def kernel_clone(self, task: int, cpu: int, clone_vm: bool) -> int: ...
    def do_exit(self, task: int) -> None: ...
    # -- hotplug
    def ready_to_die(self) -> bool: ...
    def bringup_cpu(self) -> None: ...
