"""Tasks come and go: ``fork`` (``kernel_clone``, a new process on a new mm), ``exec``, ``exit``,
and the other services a task's quantum calls (``emu.kernel.driver.TaskKernel``)."""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from emu.machine.layout import (
    H_LIVE_USERS,
    KIND_RESUMING,
    KIND_USER,
    M_GEN,
    M_STATE,
    MM_LIVE,
    MM_SLOT_BITS,
    MM_WORDS,
    RESUME_KERNEL_EXECVE,
    RESUME_NONE,
    T_CPU,
    T_KIND,
    T_MM,
    T_RESUME,
    T_RESUME_ARG,
    T_STATE,
    T_WAKEUPS,
    TASK_DEAD,
    TASK_FREE,
    TASK_RUNNABLE,
)
from emu.machine.trace import event

if TYPE_CHECKING:
    from emu.kernel.core import CpuCore

EV_FORK = event("fork", "fork: {mm:a}, {n:b} threads")
EV_EXIT = event("exit", "{task:a} exits")


class Tasks:
    # -- the services a task's quantum calls (emu.kernel.driver.TaskKernel) -------------------
    def live_users(self: CpuCore) -> int:
        return self.w[H_LIVE_USERS]

    def munmap(self: CpuCore, task: int, freed_tables: bool) -> None:
        self.arch.flush_tlb_munmap(self.w[self.task_base + task * 8 + T_MM], freed_tables)

    def schedule_timeout(self: CpuCore, task: int, seconds: float) -> None:
        heapq.heappush(self.sleepers, (self.clock() + seconds, task))
        self.schedule()

    def do_exec(self: CpuCore, task: int) -> None:
        mm = self.mm.mm_alloc(users=1)
        if mm:
            self.exec_mmap(task, mm)

    def kernel_clone(self: CpuCore, task: int, cpu: int, clone_vm: bool) -> int:
        """A new user task started on ``cpu`` (its affinity: the benchmarks pin their tasks): a
        thread of ``task``'s mm (``CLONE_VM``: an ``mm_users`` reference) or a process on a new mm
        (fork). Its id, or -1 when this CPU has no free task or mm slot."""
        w = self.w
        free = self.free_user_tasks()
        if not free:
            return -1
        if clone_vm:
            mm = w[self.task_base + task * 8 + T_MM]
            self.mm.mmget(mm)
        else:
            mm = self.mm.mm_alloc(users=1)
            if not mm:  # every mm slot is taken (leaked mms fill them)
                self.count("forks_no_mm")
                return -1
            self.trace(EV_FORK, mm, 1)
            self.count("forks")
        self.atomics.atomic_inc(H_LIVE_USERS)
        t = free[0]
        tb = self.task_base + t * 8
        w[tb + T_RESUME] = RESUME_NONE
        w[tb + T_MM] = mm
        w[tb + T_KIND] = KIND_USER
        w[tb + T_CPU] = cpu
        w[tb + T_WAKEUPS] = 0
        w[tb + T_STATE] = TASK_RUNNABLE
        self.ttwu_queue(cpu, t)
        return t

    # -- process lifecycle ----------------------------------------------------------------------
    def free_user_tasks(self: CpuCore) -> list[int]:
        """This CPU's task slots for user tasks that no task holds."""
        w, tb = self.w, self.task_base
        return [t for t in self.layout.user_tasks_of(self.cpu) if w[tb + t * 8 + T_STATE] == TASK_FREE]

    def do_fork(self: CpuCore, from_kernel: bool = False) -> None:
        """A new process of ``threads`` threads on a new mm. Forked from a kernel context (a
        usermode helper, kernel_init), its first thread may start in ``kernel_execve``: a kernel
        thread that execs into the new mm (``exec_mmap`` with no old mm, ``p_kernel_exec``)."""
        w = self.w
        free = self.free_user_tasks()
        n = self.driver.threads
        if len(free) < n:
            return
        mm = self.mm.mm_alloc(users=n)
        if not mm:  # every mm slot is taken (leaked mms fill them): the load cannot keep its processes
            self.count("forks_no_mm")
            return
        self.atomics.atomic_add(H_LIVE_USERS, n)
        self.trace(EV_FORK, mm, n)
        self.count("forks")
        execve = from_kernel and self.driver.fork_execs()
        for i, t in enumerate(free[:n]):
            tb = self.task_base + t * 8
            w[tb + T_RESUME] = RESUME_NONE
            if execve and i == 0:
                w[tb + T_MM] = 0  # a kernel thread until its exec_mmap
                w[tb + T_RESUME_ARG] = mm
                w[tb + T_RESUME] = RESUME_KERNEL_EXECVE
                w[tb + T_KIND] = KIND_USER | KIND_RESUMING
            else:
                w[tb + T_MM] = mm
                w[tb + T_KIND] = KIND_USER
            w[tb + T_STATE] = TASK_RUNNABLE
            self.wake_up(t)

    def do_exit(self: CpuCore, task: int) -> None:
        self.trace(EV_EXIT, task)
        self.count("exits")
        self.exit_mm(task)
        self.w[self.task_base + task * 8 + T_STATE] = TASK_DEAD
        self.schedule()  # the final switch away from the dead task: kernel -> X
        self.w[self.task_base + task * 8 + T_STATE] = TASK_FREE
        self.atomics.atomic_dec(H_LIVE_USERS)

    def pick_live_mm(self: CpuCore) -> int:
        """A random live mm, for a kernel thread to adopt (like io_uring or vhost workers)."""
        lay, w = self.layout, self.w
        slot = self.driver.mm_slot_to_adopt(lay.nmm)
        b = lay.mm_base + slot * MM_WORDS
        if w[b + M_STATE] != MM_LIVE:
            return 0
        return (w[b + M_GEN] << MM_SLOT_BITS) | slot
