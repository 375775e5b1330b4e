"""Small builders for in-process machine tests."""

from __future__ import annotations

from emu.checks.oracle import KINDS
from emu.kernel.cpu import Cpu
from emu.machine.layout import H_VIOL_KINDS, KIND_USER, M_COUNT, M_USERS, T_KIND, T_MM, T_STATE, TASK_RUNNABLE


def user_task(cpu: Cpu, mm: int, i: int = 0) -> int:
    t = cpu.layout.user_tasks_of(cpu.cpu)[i]
    b = cpu.layout.task(t)
    cpu.w[b + T_KIND], cpu.w[b + T_MM], cpu.w[b + T_STATE] = KIND_USER, mm, TASK_RUNNABLE
    return t


def kthread(cpu: Cpu, i: int = 0) -> int:
    return cpu.kthreads[i]


def switch(cpu: Cpu, next: int) -> None:
    """schedule() with the pick already made."""
    cpu.irq.local_irq_disable()
    cpu.context_switch(cpu.w[cpu.CURR], next)


def mm_count(cpu: Cpu, mm: int) -> int:
    return cpu.w[cpu.layout.mm(mm) + M_COUNT]


def mm_users(cpu: Cpu, mm: int) -> int:
    return cpu.w[cpu.layout.mm(mm) + M_USERS]


def violations(cpu: Cpu) -> dict[str, int]:
    return {k: cpu.w[H_VIOL_KINDS + i] for i, k in enumerate(KINDS) if cpu.w[H_VIOL_KINDS + i]}


class FreeLock:
    """A lock the atomics take in a one-process test: always free (``Atomics`` reads ``_semlock``)."""

    def __init__(self) -> None:
        self._semlock = self

    def acquire(self, *a: object) -> bool:
        return True

    def release(self) -> None:
        pass


class QuietIrq:
    """The interrupt state the atomics touch, for a test with no IPI: never pending."""

    in_atomic = 0
    pending = False

    def replay(self) -> None:
        pass
