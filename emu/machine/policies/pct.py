"""``--sched pct``: probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010).

Each CPU gets a distinct random priority above ``depth``; ``depth - 1`` change points are drawn
over the step budget, and the CPU that holds the turn at the i-th one drops to priority
``depth - 1 - i``. The highest-priority CPU that may run, runs. A bug of depth d is found with
probability at least 1 / (n k^(d-1)) per run, for n CPUs and k steps. A CPU that yields (it spins
in a wait loop, or stalls in a marked race window) drops below every other CPU, as at a change
point: a spinner that kept its priority would run ahead of the CPU it waits for, for ever.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from emu.machine.policy import Policy, RunStart

PRIO = 0  # a CPU's word: its priority
NEXT_CHANGE = 0  # the header's word: the change points passed


def pct_change_points(seed: int, steps: int, depth: int) -> list[int]:
    """The steps at which the CPU holding the turn drops to a low priority (d - 1 of them)."""
    rng = random.Random(f"{seed}:pct-change")
    return sorted(rng.randint(1, max(1, steps)) for _ in range(depth - 1))


class Pct(Policy):
    name = "pct"
    options = ("depth",)
    GLOBAL_WORDS, CPU_WORDS = 1, 1

    def __init__(self, words: memoryview, sched_base: int, record_words: int, header_words: int, run: RunStart) -> None:
        super().__init__(words, sched_base, record_words, header_words, run)
        self.depth = run.depth
        self.change_points = pct_change_points(run.seed, run.steps, run.depth)
        self.prio = [self.c(cpu, PRIO) for cpu in range(self.n)]

    def begin(self) -> None:
        super().begin()
        prios = list(range(self.depth, self.depth + self.n))
        random.Random(f"{self.run.seed}:pct").shuffle(prios)
        for cpu in range(self.n):
            self.w[self.prio[cpu]] = prios[cpu]
        self.w[self.g(NEXT_CHANGE)] = 0

    def next_cpu(self, runnable: Sequence[int], current: int, yielding: bool, step: int) -> int:
        w, prio = self.w, self.prio
        if yielding:
            w[prio[current]] = min(w[p] for p in prio) - 1
        if self.change_points:
            i = self.g(NEXT_CHANGE)
            k = w[i]
            while k < len(self.change_points) and step >= self.change_points[k]:
                w[prio[current]] = self.depth - 1 - k  # below every starting priority, and below the earlier changes
                k += 1
            w[i] = k
        return max(runnable, key=lambda c: w[prio[c]])
