"""What the kernel asks of a workload: the only place where a task's next move is decided.

The CPU loop hands a user task's quantum to its driver, which decides what the task does (fork,
unmap, exit, sleep, exec, run on) and calls the kernel's services for it (``TaskKernel``, its
system calls); it asks the driver too whether a kernel thread wakes or adopts an mm, and whether
a woken task moves. The driver draws from the CPU's generator (the run seed), so one seed gives
one load; the kernel carries out every decision. rcutorture keeps its readers and
writers apart from the RCU flavour under test in the same way. ``emu.workload`` has the drivers.
"""

from __future__ import annotations

from typing import Protocol


class TaskKernel(Protocol):
    """The kernel's services a driver's tasks call: their system calls, in effect."""

    cpu: int  # smp_processor_id(): the CPU this quantum runs on

    def live_users(self) -> int:
        """User threads alive on the machine."""
        ...

    def do_fork(self, from_kernel: bool = False) -> None: ...
    def munmap(self, task: int, freed_tables: bool) -> None: ...  # a TLB flush of the task's mm
    def do_exit(self, task: int) -> None: ...
    def schedule_timeout(self, task: int, seconds: float) -> None: ...  # sleep, then be woken
    def do_exec(self, task: int) -> None: ...  # exec_mmap onto a new mm
    def preempt(self, task: int) -> None: ...  # back on a runqueue: here, or another CPU's
    def wait_event(self, task: int) -> None: ...  # sleep until try_to_wake_up (a pipe read that blocks)
    def try_to_wake_up(self, task: int) -> None: ...  # wake a sleeper where it slept (a pipe write)
    def kernel_clone(self, task: int, cpu: int, clone_vm: bool) -> int: ...  # a thread or process pinned to cpu; -1 if full
    def cpu_hotplug_request(self, cpu: int, online: bool) -> None: ...  # a write to cpuN/online: that CPU goes down or up
    def count_if(self, name: str, n: int = 1) -> None: ...  # a load's own counter (benchmark operations), where the run has it


class TaskDriver(Protocol):
    threads: int  # threads of each new process

    def forks(self, kernel: TaskKernel, phase: int) -> bool:
        """An idle CPU's kernel context (init, kthreadd) forks a process now (a user task's
        quantum forks through ``user_quantum``); never once the load has ended."""
        ...

    def fork_execs(self) -> bool:
        """A process forked from a kernel context starts its first thread in ``kernel_execve``."""
        ...

    def user_quantum(self, kernel: TaskKernel, task: int, phase: int) -> None:
        """The user task's quantum on this CPU: what it does (fork, unmap, exit, sleep, exec, run
        on), through ``kernel``'s services; every task exits once the load ends (``phase``)."""
        ...

    def kthread_adopts_mm(self, burst: int) -> bool:
        """A kernel thread's quantum: it calls ``kthread_use_mm`` on a live mm (always in a burst)."""
        ...

    def mm_slot_to_adopt(self, nmm: int) -> int:
        """The mm slot it tries (the kernel checks that the mm there is live)."""
        ...

    def adopt_quanta(self) -> int:
        """Quanta it keeps the adopted mm."""
        ...

    def kthread_wakes(self, burst: int = 0) -> bool:
        """A per-CPU kernel thread wakes at this schedule."""
        ...

    def kthread_to_wake(self, kthreads: list[int]) -> int:
        """Which one."""
        ...

    def migrates(self) -> bool:
        """A woken or preempted task moves to another CPU."""
        ...

    def preempted_in_kernel_path(self) -> bool:
        """A task in a preemptible kernel path (``kthread_use_mm``, ``exec_mmap``) is preempted there."""
        ...
