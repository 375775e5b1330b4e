"""``--sched random``: at every decision, a CPU that may run is drawn from the run's random numbers."""

from __future__ import annotations

from collections.abc import Sequence

from emu.machine.policy import Policy


class RandomWalk(Policy):
    name = "random"

    def next_cpu(self, runnable: Sequence[int], current: int, yielding: bool, step: int) -> int:
        return runnable[(self.next_u64() >> 20) % len(runnable)]
