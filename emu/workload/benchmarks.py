"""Benchmark-shaped loads: the published measurements' own programs, as task drivers.

Each driver plays one benchmark as its source has it, with the benchmark's own parameter
(``tasks``: will-it-scale's ``-t``, hackbench's groups):

* ``context_switch1_threads`` / ``context_switch1_processes`` (will-it-scale
  ``tests/context_switch1.c``): each of the ``-t`` testcases creates a child with ``new_task`` and
  the two ping-pong one byte through two pipes (the testcase writes then reads, the child reads
  then writes); an iteration is one byte passed. ``main.c`` binds testcase ``i`` to core
  ``i % cores`` (every thread of it) and the child inherits it; the scheduler splits a pair over
  two of the core's CPUs while it has them idle and otherwise keeps it on its waker's CPU
  (``ContextSwitch1.cpu_of``); in threads mode every task is a thread of one process
  (``pthread_create``), in processes mode each is a process of its own (``fork``).
* ``tlb_flush2_threads`` (will-it-scale ``tests/tlb_flush2.c``): ``-t`` threads of one process,
  each mapping 1 MB, and per 4 KB page touching it and ``madvise(MADV_DONTNEED)`` (a TLB flush of
  the live multi-threaded mm; an iteration each), then ``munmap`` (a flush that frees page tables).
* ``hackbench`` / ``hackbench_threads`` (``perf bench sched messaging``, hackbench.c): ``tasks``
  groups of 20 senders and 20 receivers; each sender sends a message to each receiver of its
  group in turn; a receiver sleeps until a message arrives. An iteration is one message.
  Processes by default, threads with ``-t`` (hackbench_threads).

The main task (will-it-scale's ``main``, hackbench's parent) is forked by cpu0's idle context at
the start; it creates the tasks in order with ``kernel_clone``, pinning task ``j`` to the CPU
``cpu_of(j)`` (``j % cpus`` unless the benchmark says otherwise), then sleeps in ``sleep(1)``
until the load ends. A pipe write is ``try_to_wake_up`` of the reader, a read that finds the pipe empty is ``wait_event``. Task ids
follow from the creation order (the first user task of cpu0 is the main task, then task ``j`` is
the next id), so each CPU's driver knows every task's role and partner without shared state.

A quantum ends at every blocking read: the task's next quantum starts where the read returned.
Once the load ends every task wakes its partners (so none sleeps through the drain) and exits.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Protocol

from emu.machine.layout import PHASE_RUN

if TYPE_CHECKING:
    from emu.kernel.driver import TaskKernel


class Knobs(Protocol):
    """What a benchmark reads of the run's workload settings (the harness's ``Workload`` has it):
    the per-CPU kernel threads, which come before the user tasks in the task table."""

    kthreads: int


MEMORYSIZE_PAGES = 256  # tlb_flush2.c: MEMORYSIZE 1 MB of 4 KB pages, one madvise each, then munmap
HACKBENCH_FDS = 20  # hackbench's default: 20 senders and 20 receivers per group
OPS = "bench_ops"  # the benchmark's own iterations (will-it-scale's *iterations, hackbench's messages)


class BenchmarkError(RuntimeError):
    """The benchmark could not be laid out as its source has it (the emulated machine is too small)."""


class Benchmark:
    """What every benchmark answers alike: a quiet machine (no kernel threads waking, no
    migration, no preemption inside a kernel path), a main task started once by cpu0."""

    threads = 1  # do_fork's process size: the main task alone
    tasks_per_unit = 1  # tasks created per unit of the benchmark's parameter
    clone_vm = True  # threads of one process, or processes

    def __init__(self, wl: Knobs, ncpus: int, rng: random.Random, tasks: int) -> None:
        self.rng = rng
        self.ncpus = ncpus
        self.units = tasks or self.default_units(ncpus)
        self.ntasks = self.tasks_of(self.units)
        self.main = ncpus * (1 + wl.kthreads)  # cpu0's first user task: the first do_fork takes it
        self.started = self.spawned = False
        self.running: set[int] = set()  # tasks past their first quantum (their loop's first read done)

    @classmethod
    def default_units(cls, ncpus: int) -> int:
        """The parameter's value when none is given (``run --benchmark`` without ``--bench-tasks``): a unit a CPU."""
        return ncpus

    @classmethod
    def tasks_of(cls, units: int) -> int:
        """The tasks the main task creates for ``units``."""
        return units * cls.tasks_per_unit

    # -- the task's role, from its id -------------------------------------------------------
    def index(self, task: int) -> int:
        return task - self.main - 1

    def task_id(self, j: int) -> int:
        return self.main + 1 + j

    # -- the main task ------------------------------------------------------------------------
    def forks(self, kernel: TaskKernel, phase: int) -> bool:
        if phase == PHASE_RUN and kernel.cpu == 0 and not self.started:
            self.started = True
            return True
        return False

    def main_quantum(self, kernel: TaskKernel, task: int, phase: int) -> None:
        if phase != PHASE_RUN:
            kernel.do_exit(task)
            return
        if not self.spawned:
            self.spawned = True
            for j in range(self.ntasks):
                t = kernel.kernel_clone(task, self.cpu_of(j), self.clone_vm)
                if t != self.task_id(j):
                    raise BenchmarkError(f"task {j} of {self.ntasks} got id {t}, not {self.task_id(j)}: no room on cpu0")
        kernel.schedule_timeout(task, 1.0)  # main.c: sleep(1), then read the iteration counters

    def user_quantum(self, kernel: TaskKernel, task: int, phase: int) -> None:
        if task == self.main:
            self.main_quantum(kernel, task, phase)
        elif phase != PHASE_RUN:
            for p in self.wakes_at_exit(task):
                kernel.try_to_wake_up(p)
            kernel.do_exit(task)
        else:
            self.task_quantum(kernel, task)

    def cpu_of(self, j: int) -> int:
        """The CPU task ``j`` runs on (hackbench's and tlb_flush2's tasks: one a CPU in turn)."""
        return j % self.ncpus

    def task_quantum(self, kernel: TaskKernel, task: int) -> None:
        raise NotImplementedError

    def wakes_at_exit(self, task: int) -> list[int]:
        """Whom a task wakes as it exits, so that nobody sleeps through the end of the load."""
        return []

    # -- the quiet machine ----------------------------------------------------------------------
    def fork_execs(self) -> bool:
        return False

    def kthread_adopts_mm(self, burst: int) -> bool:
        return False

    def mm_slot_to_adopt(self, nmm: int) -> int:
        return 1

    def adopt_quanta(self) -> int:
        return 1

    def kthread_wakes(self, burst: int = 0) -> bool:
        return False

    def kthread_to_wake(self, kthreads: list[int]) -> int:
        return kthreads[0]

    def migrates(self) -> bool:
        return False  # pinned, as main.c pins every task

    def preempted_in_kernel_path(self) -> bool:
        return False


class ContextSwitch1(Benchmark):
    """will-it-scale context_switch1: ``-t`` pairs ping-ponging a byte through two pipes. Task
    ``2p`` is pair ``p``'s child (it reads first) and ``2p + 1`` its testcase (it writes first):
    the child exists before the testcase's first write, as ``new_task`` runs before the loop."""

    tasks_per_unit = 2

    def cpu_of(self, j: int) -> int:
        """Where the scheduler settles task ``j``. main.c binds testcase ``i`` and its child to
        core ``i % cores``, every SMT thread of it (HWLOC_OBJ_CORE's cpuset; the child inherits
        it); the emulated CPUs stand for such a core's threads, at the run's tasks per CPU. The
        pipe's wake-up is WF_SYNC (``wake_up_interruptible_sync_poll``) and ``select_task_rq_fair``
        takes, in v6.11, an idle CPU of the core first (``wake_affine_idle``, then
        ``select_idle_sibling``: the target, the wakee's previous CPU, any idle sibling) and
        otherwise the waker's own CPU (``sync && nr_running == 1``). So a pair finds CPUs of its
        own while the core has two free per pair: it splits, and each of its CPUs goes idle at
        every read. Once the pairs outnumber half the CPUs, a wakee finds no idle sibling and
        lands on its waker's CPU, where the waker then blocks: that pair ping-pongs on one CPU,
        user -> user, and the CPU never idles. In that steady state ``C - P`` of ``P`` pairs on
        ``C`` CPUs are split (none once ``P >= C``) and the others share a CPU each in turn."""
        pairs, cpus = self.units, self.ncpus
        split = max(0, min(pairs, cpus - pairs))
        p = j // 2
        if p < split:
            return (2 * p + (j & 1)) % cpus  # a CPU per task, the pair on two threads of the core
        return (2 * split + (p - split) % max(1, cpus - 2 * split)) % cpus  # both on one CPU

    def partner(self, task: int) -> int:
        return self.task_id(self.index(task) ^ 1)

    def task_quantum(self, kernel: TaskKernel, task: int) -> None:
        j = self.index(task)
        if not j & 1 and task not in self.running:  # the child's loop starts with a read
            self.running.add(task)
            kernel.wait_event(task)
            return
        kernel.try_to_wake_up(self.partner(task))  # write(): the partner's read returns
        kernel.count_if(OPS)  # an iteration: one byte passed (the testcase counts 2 per round trip)
        kernel.wait_event(task)  # read(): sleep until the partner writes back

    def wakes_at_exit(self, task: int) -> list[int]:
        return [self.partner(task)]


class ContextSwitch1Threads(ContextSwitch1):
    clone_vm = True


class ContextSwitch1Processes(ContextSwitch1):
    clone_vm = False


class TlbFlush2Threads(Benchmark):
    """will-it-scale tlb_flush2: ``-t`` threads of one mm, madvise(DONTNEED) page by page, munmap."""

    def __init__(self, wl: Knobs, ncpus: int, rng: random.Random, tasks: int) -> None:
        super().__init__(wl, ncpus, rng, tasks)
        self.pages: dict[int, int] = {}

    def task_quantum(self, kernel: TaskKernel, task: int) -> None:
        kernel.munmap(task, False)  # madvise(MADV_DONTNEED) of one touched page: flush_tlb_mm_range
        kernel.count_if(OPS)
        n = self.pages.get(task, 0) + 1
        if n < MEMORYSIZE_PAGES:
            self.pages[task] = n
            return
        self.pages[task] = 0
        kernel.munmap(task, True)  # munmap(addr, MEMORYSIZE): the page-table pages go too
        kernel.preempt(task)  # a timeslice: another runnable task on this CPU gets its turn


class Hackbench(Benchmark):
    """perf bench sched messaging: ``tasks`` groups of 20 senders and 20 receivers."""

    tasks_per_unit = 2 * HACKBENCH_FDS
    clone_vm = False

    def role(self, task: int) -> tuple[int, bool]:
        """(group, is a sender): each group's 20 receivers first, then its 20 senders, as hackbench
        creates them (no message goes to a receiver not yet there)."""
        j = self.index(task)
        return j // self.tasks_per_unit, j % self.tasks_per_unit >= HACKBENCH_FDS

    def receivers(self, group: int) -> list[int]:
        base = group * self.tasks_per_unit
        return [self.task_id(base + r) for r in range(HACKBENCH_FDS)]

    def task_quantum(self, kernel: TaskKernel, task: int) -> None:
        group, sender = self.role(task)
        if sender:
            for r in self.receivers(group):  # one message to each receiver of the group
                kernel.try_to_wake_up(r)
                kernel.count_if(OPS)
            kernel.preempt(task)
        else:
            kernel.wait_event(task)  # read one message, sleeping until one is there

    def wakes_at_exit(self, task: int) -> list[int]:
        group, sender = self.role(task)
        return self.receivers(group) if sender else []


class HackbenchThreads(Hackbench):
    clone_vm = True


DRIVERS: dict[str, type[Benchmark]] = {
    "context_switch1_threads": ContextSwitch1Threads,
    "context_switch1_processes": ContextSwitch1Processes,
    "tlb_flush2_threads": TlbFlush2Threads,
    "hackbench": Hackbench,
    "hackbench_threads": HackbenchThreads,
}
