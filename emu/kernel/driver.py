"""What the kernel asks of a workload: the only place where a task's next move is decided.

The CPU loop runs the current task for a quantum and then asks its driver what the task does
(fork, unmap, exit, sleep, exec, run on), whether a kernel thread wakes or adopts an mm, and
whether a woken task moves. The driver answers from the CPU's generator (the run seed), so one
seed gives one load; the kernel carries out every answer. rcutorture keeps its readers and
writers apart from the RCU flavour under test in the same way. ``emu.workload`` has the drivers.
"""

from __future__ import annotations

from typing import Protocol

# what a user task does after its quantum (``TaskDriver.after_quantum``): an unmap or none ...
NO_UNMAP, UNMAP, UNMAP_FREES_TABLES = range(3)
# ... and then one of these
RUNS_ON, EXITS, BLOCKS, EXECS = range(4)


class TaskDriver(Protocol):
    threads: int  # threads of each new process

    def forks(self) -> bool:
        """This quantum (a user task's, or an idle CPU's kernel context) draws a fork."""
        ...

    def room_for_process(self, live_users: int) -> bool:
        """A new process of ``threads`` threads keeps the load within its target."""
        ...

    def fork_execs(self) -> bool:
        """A process forked from a kernel context starts its first thread in ``kernel_execve``."""
        ...

    def after_quantum(self, phase: int) -> tuple[int, int]:
        """Whether the task unmaps something (a TLB flush of its mm; ``UNMAP_FREES_TABLES``:
        page-table pages freed too), then ``RUNS_ON``, ``EXITS``, ``BLOCKS`` or ``EXECS`` (every
        task exits once the load ends). One call: it is asked every user quantum."""
        ...

    def sleep_length(self) -> float:
        """Seconds a blocking task sleeps."""
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
