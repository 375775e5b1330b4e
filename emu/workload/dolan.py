"""A load shaped like Stephen Dolan's reproducer of x86's TLB-generation bugs, as a task driver.

Dolan's user-space reproducer (reference section 4.1; CAHDw0oGd0B4=uuv8NGqbUQ_ZVmSheU2bN70e4QhFXWvuAZdt2w@mail.gmail.com):
a writer forks, which makes its pages copy-on-write, then writes page A and then page B; a
reader thread of the same process, ping-ponging with another process so that it switches often,
reads B and then A, and traps if it sees the new B with the old A (a stale TLB entry). It brings
together what the windows of X1, X2 and X3 need: many flushes of one mm (each copy-on-write break
is ``flush_tlb_mm_range`` of the writer's mm) while another CPU switches into that mm again and again.

As a driver among the benchmark-shaped ones (``RunConfig.benchmark = "dolan"``: ``python -m stress
run --benchmark dolan``; ``python -m stress.detection --load dolan`` and
``tests/race/test_det_races.py`` run the matrix's cells under it;
its parameter ``tasks`` is the number of reader pairs, ``0``: one on each CPU but cpu0):

* the main task (cpu0's first user task, the process whose mm is M) clones the writer, a thread
  of M pinned to cpu0, then for each pair ``p`` a partner process (its own mm) and a reader thread
  of M, both pinned to CPU ``1 + p % (cpus - 1)``, then sleeps until the load ends;
* the writer's quantum is one iteration: two copy-on-write breaks (A, then B), each a flush of M
  (``munmap(task, freed_tables=False)``: ``flush_tlb_mm_range`` without freed tables), then the
  next fork and the wait for its child: a sleep of ``--sleep-us`` on average (exponential), its CPU idle;
* the partner's loop starts with a pipe read; the reader writes first: each writes a byte to the
  other (``try_to_wake_up``) and reads one back (``wait_event``), so their CPU switches between M and the
  partner's mm at every byte (user to user, CR3 each time);
* the reader's check (reading B then A) is the oracle's, at every user quantum: no CPU runs user
  code of an mm with a TLB older than a flush of it that has completed (``missed_flush``).

Interpretations (the literal reading in brackets): the fork of each iteration, which only makes A
and B copy-on-write again, is the writer's sleep while it waits for the child [fork's own
``flush_tlb_mm`` of the parent, the child's run and exit]. The reader pair shares one CPU, as a pipe
ping-pong settles on the waker's CPU once the machine is busy
(``emu.workload.benchmarks.ContextSwitch1.cpu_of``), so that the reader's CPU changes CR3 at every byte
[where the reproducer's tasks ran is not in the reference]. The reader's check is every user quantum's, not only after a write of B.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Protocol

from emu.machine.layout import PHASE_RUN
from emu.workload.benchmarks import DRIVERS, OPS, Benchmark, BenchmarkError, Knobs

if TYPE_CHECKING:
    from emu.kernel.driver import TaskKernel


class SleepKnobs(Knobs, Protocol):
    sleep_us: int  # the mean sleep of a blocked task (``--sleep-us``)


WRITER = 0  # task index 0; then (partner, reader) for each pair


class DolanReproducer(Benchmark):
    """The writer on cpu0 flushing its mm; reader threads of that mm ping-ponging with partner processes."""

    def __init__(self, wl: SleepKnobs, ncpus: int, rng: random.Random, tasks: int) -> None:
        super().__init__(wl, ncpus, rng, tasks)
        self.sleep_us = wl.sleep_us  # the mean of the writer's wait for its forked child (--sleep-us)

    @classmethod
    def default_units(cls, ncpus: int) -> int:
        return max(1, ncpus - 1)  # a reader pair on each CPU but the writer's

    @classmethod
    def tasks_of(cls, units: int) -> int:
        return 1 + 2 * units  # the writer, then a partner and a reader a pair

    def pair_cpu(self, p: int) -> int:
        return 1 + p % (self.ncpus - 1) if self.ncpus > 1 else 0

    def cpu_of(self, j: int) -> int:
        return 0 if j == WRITER else self.pair_cpu((j - 1) // 2)

    def is_partner(self, j: int) -> bool:
        return j != WRITER and j % 2 == 1  # a process of its own; the writer and readers are threads of M

    def main_quantum(self, kernel: TaskKernel, task: int, phase: int) -> None:
        if phase != PHASE_RUN or self.spawned:
            super().main_quantum(kernel, task, phase)
            return
        self.spawned = True
        for j in range(self.ntasks):
            t = kernel.kernel_clone(task, self.cpu_of(j), not self.is_partner(j))
            if t != self.task_id(j):
                raise BenchmarkError(f"task {j} of {self.ntasks} got id {t}, not {self.task_id(j)}: no room on cpu0")
        super().main_quantum(kernel, task, phase)

    def other(self, task: int) -> int:
        """The pipe's other end: a partner's reader, a reader's partner."""
        j = self.index(task)
        return self.task_id(j + 1 if self.is_partner(j) else j - 1)

    def task_quantum(self, kernel: TaskKernel, task: int) -> None:
        j = self.index(task)
        if j == WRITER:
            kernel.munmap(task, False)  # write A: the copy-on-write break flushes M
            kernel.munmap(task, False)  # write B
            kernel.count_if(OPS)
            # fork again and wait for the child: the writer sleeps, its CPU idles, until the child has exited
            if self.sleep_us:
                kernel.schedule_timeout(task, self.rng.expovariate(1e6 / self.sleep_us))
            else:
                kernel.preempt(task)
            return
        if self.is_partner(j) and task not in self.running:  # the partner's loop starts with a read
            self.running.add(task)
            kernel.wait_event(task)
            return
        kernel.try_to_wake_up(self.other(task))  # write(): the other end's read returns
        kernel.count_if(OPS)
        kernel.wait_event(task)  # read(): sleep until the other end writes back

    def wakes_at_exit(self, task: int) -> list[int]:
        j = self.index(task)
        return [] if j == WRITER else [self.other(task)]


DRIVERS["dolan"] = DolanReproducer  # RunConfig.benchmark = "dolan" (the package imports this module)
