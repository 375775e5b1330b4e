"""The synthetic load: processes of ``--threads`` threads forked, run, put to sleep, migrated,
exec'd and exited at the rates of ``--p-*`` (``emu.kernel.protocols.WorkloadKnobs``), kernel threads that
wake and adopt live mms (``kthread_use_mm``), kept near ``--procs`` live processes.

Every answer is one or two draws from the CPU's generator, in the order the CPU loop asks."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from emu.machine.layout import PHASE_RUN

if TYPE_CHECKING:
    from emu.kernel.driver import TaskKernel
    from emu.kernel.protocols import WorkloadKnobs


class Synthetic:
    def __init__(self, wl: WorkloadKnobs, ncpus: int, rng: random.Random) -> None:
        self.rng = rng
        self.random = rng.random  # bound once: several draws a quantum
        self.threads = wl.threads
        # the load is counted in threads, not mms: a broken scheme that frees an mm early must not stall it
        self.users_target = wl.live_procs(ncpus) * wl.threads
        self.p_fork, self.p_exit, self.p_block, self.p_exec = wl.p_fork, wl.p_exit, wl.p_block, wl.p_exec
        self.p_munmap, self.p_free_tables, self.sleep_us = wl.p_munmap, wl.p_free_tables, wl.sleep_us
        self.p_kthread, self.p_use_mm, self.p_migrate = wl.p_kthread, wl.p_use_mm, wl.p_migrate
        self.p_kernel_exec, self.p_preempt = wl.p_kernel_exec, wl.p_preempt

    def forks(self, kernel: TaskKernel, phase: int) -> bool:
        return self.random() < self.p_fork and self._room(kernel, phase)

    def _room(self, kernel: TaskKernel, phase: int) -> bool:
        """The load runs and a new process of ``threads`` threads keeps it within its target."""
        return phase == PHASE_RUN and kernel.live_users() + self.threads <= self.users_target

    def fork_execs(self) -> bool:
        return self.p_kernel_exec > 0 and self.random() < self.p_kernel_exec

    def user_quantum(self, kernel: TaskKernel, task: int, phase: int) -> None:
        rand = self.random
        if rand() < self.p_fork and self._room(kernel, phase):  # forks(), inline: every quantum
            kernel.do_fork()
        if self.p_munmap > 0 and rand() < self.p_munmap:
            kernel.munmap(task, rand() < self.p_free_tables)
        r = rand()
        if phase != PHASE_RUN or r < self.p_exit:
            kernel.do_exit(task)
        elif r < self.p_exit + self.p_block:
            kernel.schedule_timeout(task, self.rng.expovariate(1e6 / self.sleep_us) if self.sleep_us else 0.0)
        else:
            if r < self.p_exit + self.p_block + self.p_exec:  # the same draw: no extra one on every quantum
                kernel.do_exec(task)
            kernel.preempt(task)

    def kthread_adopts_mm(self, burst: int) -> bool:
        return burst != 0 or self.random() < self.p_use_mm

    def mm_slot_to_adopt(self, nmm: int) -> int:
        return self.rng.randrange(1, nmm)

    def adopt_quanta(self) -> int:
        return self.rng.randint(1, 4)

    def kthread_wakes(self, burst: int = 0) -> bool:
        return self.random() < (0.5 if burst else self.p_kthread)

    def kthread_to_wake(self, kthreads: list[int]) -> int:
        return self.rng.choice(kthreads)

    def migrates(self) -> bool:
        return self.random() < self.p_migrate

    def preempted_in_kernel_path(self) -> bool:
        return self.p_preempt > 0 and self.random() < self.p_preempt
