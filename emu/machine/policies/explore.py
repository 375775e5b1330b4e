"""``--sched explore``: one schedule of a systematic exploration (``emu.harness.explore``).

The explorer runs a scenario again and again, each time under another schedule; this policy steers
one of them. A decision branches when more than one CPU may run during the run phase (the boot and
the drain are not explored: they follow the default), or when a CPU's TSO store buffer holds a
store (``Policy.buffered()``, under ``--memory-model tso``): an answer may then be ``COMMIT | k``, an
early commit of CPU k's oldest buffered store, after which the decision is asked again. At its first branching decisions it answers
the run's prefix (``RunStart.prefix``, one CPU a decision, which ``begin`` writes into the policy's
area: the CPU processes read it from the segment, so they can be kept alive between schedules);
after the prefix it answers the default, which never preempts: the CPU holding the turn keeps it
while it may run and does not yield, else the next CPU after it that may run. Every decision of the
run phase, a branching one or a step only one CPU may take, is recorded in the policy's area (one
word for who could run, who held the turn, whether it yielded, who ran and the step; one for whose
store buffers hold a store; then one a CPU for the access it makes when it next runs, ``P_ACCESS``),
and the harness reads the record back to branch from it and to tell which steps commute and which race (``record``).

A preemption is a decision that takes the turn from a CPU that may go on and does not yield: the
explorer bounds their number (iterative context bounding, Musuvathi and Qadeer, PLDI 2007).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from emu.machine.layout import H_PHASE, PHASE_RUN
from emu.machine.policy import COMMIT, Policy, RunStart

N_DECISIONS, N_PREEMPTIONS, DIVERGED, N_BRANCHING = 0, 1, 2, 3  # header words
AREA_SLACK = 64  # decisions at the boot's end, before the first step of the run phase
# a decision's record: runnable mask, current, chosen, yielding, step
MASK_BITS, CPU_BITS, STEP_SHIFT, STEP_MASK = 16, 8, 40, (1 << 22) - 1
MAX_CPUS = MASK_BITS


def pack(runnable: Sequence[int], current: int, chosen: int, yielding: bool, step: int) -> int:
    mask = 0
    for c in runnable:
        mask |= 1 << c
    return mask | current << 16 | chosen << 24 | int(yielding) << 32 | (min(step, STEP_MASK) << STEP_SHIFT)


def unpack(word: int) -> tuple[tuple[int, ...], int, int, bool, int]:
    """(runnable, current, chosen, yielding, step) of a recorded decision."""
    return _cpus(word & ((1 << MASK_BITS) - 1)), word >> 16 & 0xFF, word >> 24 & 0xFF, bool(word >> 32 & 1), word >> STEP_SHIFT & STEP_MASK


@functools.cache
def _cpus(mask: int) -> tuple[int, ...]:
    return tuple(c for c in range(MASK_BITS) if mask >> c & 1)


def default_choice(runnable: Sequence[int], current: int, yielding: bool) -> int:
    """The answer that never preempts: the CPU holding the turn while it may go on, else the next one after it."""
    if current in runnable and not yielding:
        return current
    n = max(max(runnable), current) + 1
    for k in range(1, n + 1):
        c = (current + k) % n
        if c in runnable:
            return c
    return runnable[0]


def is_preemption(runnable: Sequence[int], current: int, chosen: int, yielding: bool) -> bool:
    """An early commit (``COMMIT | k``) is none: the turn stays with the CPU holding it."""
    return chosen != current and chosen < COMMIT and current in runnable and not yielding


def is_commit(chosen: int) -> bool:
    return chosen >= COMMIT


class Explore(Policy):
    name = "explore"
    GLOBAL_WORDS = 4
    tso_early_commits = False  # a schedule's store->load reorderings are its own, not a draw of the seed

    def __init__(self, words: memoryview, sched_base: int, record_words: int, header_words: int, run: RunStart) -> None:
        if run.ncpus > MAX_CPUS:
            raise ValueError(f"the explorer records at most {MAX_CPUS} CPUs")
        super().__init__(words, sched_base, record_words, header_words, run)
        self.most = run.steps + AREA_SLACK  # at most one branching decision a step of the run phase
        self.rec0 = 1 + self.most  # the area: the prefix's length, the prefix, then the record

    @classmethod
    def area_words(cls, run: RunStart) -> int:
        most = run.steps + AREA_SLACK
        return 1 + most + most * (2 + run.ncpus)

    def begin(self) -> None:
        super().begin()
        for k in range(self.GLOBAL_WORDS):
            self.w[self.g(k)] = 0
        prefix = self.run.prefix
        if len(prefix) > self.most:
            raise ValueError(f"a prefix of {len(prefix)} decisions, more than a run of {self.run.steps} steps has")
        self.w[self.a(0)] = len(prefix)
        for k, c in enumerate(prefix):
            self.w[self.a(1 + k)] = c

    def next_cpu(self, runnable: Sequence[int], current: int, yielding: bool, step: int) -> int:
        default = default_choice(runnable, current, yielding)
        w = self.w
        if w[H_PHASE] != PHASE_RUN:
            return default
        chosen = default
        buffered = self.buffered()
        if len(runnable) > 1 or buffered:  # a branching decision: the prefix answers it while it lasts
            b = self.g(N_BRANCHING)
            nb = w[b]
            if nb < w[self.a(0)]:
                chosen = w[self.a(1 + nb)]
                ok = buffered >> (chosen ^ COMMIT) & 1 if chosen >= COMMIT else chosen in runnable
                if not ok:  # the prefix was recorded on another run: not this scenario's schedule
                    w[self.g(DIVERGED)] = 1
                    chosen = default
            w[b] = nb + 1
        # every step of the run phase is recorded, the ones with one CPU to run too: the reduction's
        # happens-before and races are over all the steps (emu.harness.explore)
        i = self.g(N_DECISIONS)
        k = w[i]
        at = self.rec0 + k * (2 + self.n)
        if at + 1 + self.n < self._area_n:
            w[self.a(at)] = pack(runnable, current, chosen, yielding, step)
            w[self.a(at + 1)] = buffered
            for c in range(self.n):
                w[self.a(at + 2 + c)] = self.pending_access(c)
            w[i] = k + 1
        if is_preemption(runnable, current, chosen, yielding):
            w[self.g(N_PREEMPTIONS)] += 1
        return chosen

    def record(self) -> tuple[int, ...]:
        """Whether the prefix diverged (1) or not (0), then every decision's words (2 + ncpus each): the
        run phase's steps, a branching decision where more than one CPU could run or a store buffer held a store."""
        n = self.w[self.g(N_DECISIONS)] * (2 + self.n)
        return (self.w[self.g(DIVERGED)], *(self.w[self._area + self.rec0 + k] for k in range(n)))
