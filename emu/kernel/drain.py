"""The end of a run: the machine drains through the paths the kernel runs every day.

Once the load has ended (every user task exited, every kernel thread let go of its adopted mm),
each CPU forks one short user task pinned to itself (``kernel_clone`` from its idle context, a
process on a new mm, as init forks one), switches to it through the ordinary ``context_switch``
and lets it exit at once through ``do_exit``: ``exit_mm``, the final switch to the idle task and
``finish_task_switch``. That switch into a user mm is what ends the CPU's lazy use of the last
load mm, and what drops whatever a scheme deferred to "the next context switch" (the mockup's
``mm_to_mmdrop``, 16/23's ``rq->drop_mm``). No hotplug path runs: ``sched_force_init_mm`` is
called by mainline only from ``sched_cpu_wait_empty`` on a CPU going offline.

A quiet kernel is not lazy on nothing: each idle task ends lazy on the mm of the drain task it
switched away from (or on init_mm, where the scheme shot it down). So the leak check
(``emu.harness.report``) counts every mm that is still alive, except a drain mm with no users left
that its own CPU's idle task still has as its ``active_mm``: the lazy reference every quiet kernel
holds. A CPU that cannot fork its drain task (leaked mms fill every slot) stays lazy on the mm it
has, and that mm is the one left out for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from emu.machine.layout import (
    C_DRAIN_MM,
    C_DRAIN_PASS,
    C_STATE,
    CPU_QUIESCED,
    H_DRAIN_TASKS,
    H_KTHREAD_MMS,
    H_LIVE_USERS,
    T_MM,
    TASK_WORDS,
    Layout,
)
from emu.machine.trace import event

if TYPE_CHECKING:
    from emu.kernel.core import CpuCore


class Seen(Protocol):
    """What the settling check saw: [0] whether the machine was seen quiet, [1 + cpu] that CPU's pass count then."""

    def __getitem__(self, i: int) -> int: ...

    def __setitem__(self, i: int, v: int) -> None: ...


def drain_settled(w: memoryview, layout: Layout, seen: Seen) -> bool:
    """Has the machine drained? It is quiet (no user task alive, no kernel thread holding an mm,
    every CPU idle after its drain task) and every CPU has made one more idle pass since it was
    first seen quiet (none was woken meanwhile). The one check of both modes: the free mode's
    runner polls it, and in a deterministic mode each idle CPU asks it after its pass."""
    n = layout.ncpus
    quiet = w[H_LIVE_USERS] == 0 and w[H_KTHREAD_MMS] == 0 and all(w[layout.cpu(c) + C_STATE] == CPU_QUIESCED for c in range(n))
    if not quiet:
        seen[0] = 0
        return False
    if not seen[0]:
        seen[0] = 1
        for c in range(n):
            seen[1 + c] = w[layout.cpu(c) + C_DRAIN_PASS]
        return False
    return all(w[layout.cpu(c) + C_DRAIN_PASS] > seen[1 + c] for c in range(n))


EV_DRAIN_TASK = event("drain_task", "drain: {task:a} on {mm:b}, forked to exit at once")


class Drain:
    """Mixed into ``Cpu``."""

    drain_task: int = -1  # this CPU's drain task while it lives
    drain_forked: bool = False

    def load_ended(self: CpuCore) -> bool:
        """Every load task has exited and no kernel thread holds an adopted mm: no ``__mmput`` of a
        load mm is left to run, so nothing of the load can be parked on a CPU after its drain task."""
        w = self.w
        return w[H_LIVE_USERS] - w[H_DRAIN_TASKS] <= 0 and w[H_KTHREAD_MMS] == 0

    def fork_drain_task(self: CpuCore) -> None:
        """Fork this CPU's drain task (once), pinned here."""
        self.drain_forked = True
        self.atomics.atomic_inc(H_DRAIN_TASKS)  # before kernel_clone counts it a user: never a load user too many
        t = self.kernel_clone(-1, self.cpu, False)
        if t < 0:  # it stays lazy on the mm it has: the one a quiet kernel's idle task holds
            self.atomics.atomic_dec(H_DRAIN_TASKS)
            self.w[self.layout.cpu(self.cpu) + C_DRAIN_MM] = self.w[self.ACTIVE]
            return
        self.drain_task = t
        mm = self.w[self.task_base + t * TASK_WORDS + T_MM]
        self.w[self.layout.cpu(self.cpu) + C_DRAIN_MM] = mm
        self.trace(EV_DRAIN_TASK, t, mm)

    def run_drain_task(self: CpuCore, task: int) -> None:
        """Its only quantum: it exits (``do_exit``: ``exit_mm``, then the switch to the idle task)."""
        self.drain_task = -1
        self.do_exit(task)
        self.atomics.atomic_dec(H_DRAIN_TASKS)  # after do_exit uncounted it as a user
