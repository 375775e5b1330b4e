"""The scheduling policy interface of the deterministic modes, as shuttle's ``Scheduler`` trait.

The hand-over (``emu.machine.detsched``) runs the CPUs one at a time and asks a policy, at every
decision, which CPU runs next. A policy is one module in ``emu.machine.policies`` with one subclass
of ``Policy``; the registry (``emu.machine.policies.registry``) finds it, and the ``--sched``
choices and the configuration checks are derived from what it declares. Nothing else changes to
add one.

Every CPU process has its own instance, and the decision is made by whichever process holds the
turn, so a policy keeps its state in the shared segment, never in its instance (what is derived
from the run's start alone, as PCT's change points, may be computed in each instance):
``GLOBAL_WORDS`` words of its own in the scheduler's header (``self.g(k)``) and ``CPU_WORDS`` in
each CPU's record (``self.c(cpu, k)``), zero when a run begins.

The calls, in order:

- ``begin()``: a run begins. Called once, in the runner, after the segment is zeroed and before
  any CPU runs: it writes the policy's starting state (an explorer would be told here of each new
  schedule, with the CPU processes kept alive and the segment reset).
- ``next_cpu(runnable, current, yielding, step)``: at every decision, by the CPU holding the turn
  (``current``): the CPUs that may run (never empty, ascending), whether ``current`` yields (it
  waits in a wait loop, or stalls in a marked race window: it asks that others run; ``current``
  may then not be in ``runnable``), and the step (the machine's clock). It answers one of
  ``runnable``, or ``COMMIT | k`` where the store buffers are kept track of (``buffered()``).
- ``next_u64()``: the policy's random numbers (62 bits), from a generator in the shared segment
  seeded by the run's seed at ``begin``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

# the scheduler's header and CPU records (emu.machine.layout's SCHED_HEADER_WORDS, SCHED_CPU_WORDS): the words a policy owns
S_RNG = 7  # next_u64's generator
S_POLICY, POLICY_GLOBAL_WORDS = 25, 7  # header words 25..31
P_POLICY, POLICY_CPU_WORDS = 10, 6  # words 10..15 of each CPU's record
# word 8 of a CPU's record: the access it makes when it next runs (the hand-over writes it at each point):
# (word + 1) << 1 | writes, or 0 where it is not one word of the atomics API (a wait, a lock, a page walk, an IPI to take)
P_ACCESS, ACCESS_UNKNOWN = 8, 0
ACCESS_READ_ALL = 1  # reads, of any word: a page walk (it conflicts with every write)
# header word 12: the CPUs whose TSO store buffer holds a store (bit c), written by the hand-over at every decision
# where it keeps track of the buffers (``DetSched.store_buffer``: a policy without TSO's random early commits, under tso)
S_BUFFERED = 12
# an answer ``COMMIT | k`` (k one of ``buffered()``'s CPUs): CPU k's store buffer commits its oldest store now, a step
# of its own (store buffer as a thread), and the decision is asked again; only the explorer and a replay give one
COMMIT = 0x80
LCG_MUL, LCG_INC, U62 = 6364136223846793005, 1442695040888963407, (1 << 62) - 1


@dataclass(frozen=True)
class RunStart:
    """What a policy is told of the run: the same in every CPU process."""

    ncpus: int
    seed: int
    steps: int  # the run phase's length, in steps
    depth: int = 3  # pct's bug depth (a policy that declares ``options = ("depth",)`` reads it)
    handovers: tuple[tuple[int, int], ...] = ()  # a schedule to follow, as (cpu, step) hand-overs, for a policy that follows one
    prefix: tuple[int, ...] = ()  # the explorer's answers at its first branching decisions (emu.machine.policies.explore)


class Policy:
    """One scheduling policy: the subclass names itself and the options it reads."""

    name: ClassVar[str] = ""
    selectable: ClassVar[bool] = True  # a --sched choice (replay is chosen by --replay instead)
    follows_schedule: ClassVar[bool] = False  # it steers by ``RunStart.handovers`` (--replay)
    options: ClassVar[tuple[str, ...]] = ()  # the RunConfig fields it reads besides seed and steps (--depth)
    # TSO's store buffer commits early where the seed draws it; a policy that enumerates schedules must not depend on those draws
    tso_early_commits: ClassVar[bool] = True
    GLOBAL_WORDS: ClassVar[int] = 0
    CPU_WORDS: ClassVar[int] = 0

    @classmethod
    def area_words(cls, run: RunStart) -> int:
        """Words of its own past the hand-over's log, for a policy whose state grows with the run
        (the explorer's record of its decisions): the layout reserves them (``Layout.policy_area``)."""
        return 0

    def __init__(self, words: memoryview, sched_base: int, record_words: int, header_words: int, run: RunStart) -> None:
        if self.GLOBAL_WORDS > POLICY_GLOBAL_WORDS or self.CPU_WORDS > POLICY_CPU_WORDS:
            most = f"at most {POLICY_GLOBAL_WORDS}, {POLICY_CPU_WORDS} a CPU"
            raise ValueError(f"policy {self.name or type(self).__name__}: too many shared words ({most})")
        self.w = words
        self.run = run
        self.n = run.ncpus
        self._g = sched_base + S_POLICY
        self._rng = sched_base + S_RNG
        self._rec = [sched_base + header_words + c * record_words + P_POLICY for c in range(run.ncpus)]
        self._area, self._area_n = 0, 0  # bound by ``bind_area`` when the layout reserved any
        self._access = [sched_base + header_words + c * record_words + P_ACCESS for c in range(run.ncpus)]
        self._buffered = sched_base + S_BUFFERED

    def bind_area(self, base: int, words: int) -> None:
        """Where the layout put the policy's area, and its size (at least ``area_words(run)``, checked)."""
        need = self.area_words(self.run)
        if words < need:
            raise ValueError(f"policy {self.name}: its area needs {need} words, the layout has {words}")
        self._area, self._area_n = base, words

    def a(self, k: int) -> int:
        """The index of the policy's ``k``-th area word (IndexError past the area: never another region's word)."""
        if not 0 <= k < self._area_n:
            raise IndexError(f"policy {self.name}: area word {k} of {self._area_n}")
        return self._area + k

    def pending_access(self, cpu: int) -> int:
        """What ``cpu`` accesses when it next runs (``P_ACCESS``'s encoding)."""
        return self.w[self._access[cpu]]

    def buffered(self) -> int:
        """The CPUs whose TSO store buffer holds a store, as a mask (0 where the hand-over does not keep track)."""
        return self.w[self._buffered]

    def record(self) -> tuple[int, ...]:
        """What the policy tells the runner of the run after it (the explorer: its decisions); read
        from the segment by the runner, before the segment goes."""
        return ()

    # -- the policy's shared words --------------------------------------------------------------
    def g(self, k: int) -> int:
        """The index of the policy's ``k``-th word in the header."""
        return self._g + k

    def c(self, cpu: int, k: int) -> int:
        """The index of the policy's ``k``-th word in ``cpu``'s record."""
        return self._rec[cpu] + k

    # -- the interface --------------------------------------------------------------------------
    def begin(self) -> None:
        """A run begins: write the starting state (the base seeds ``next_u64``)."""
        self.w[self._rng] = random.Random(f"{self.run.seed}:random").getrandbits(62) | 1

    def next_cpu(self, runnable: Sequence[int], current: int, yielding: bool, step: int) -> int:
        raise NotImplementedError

    def next_u64(self) -> int:
        """The next of the run's random numbers: a 62-bit LCG whose state is in the segment."""
        w, i = self.w, self._rng
        x = (w[i] * LCG_MUL + LCG_INC) & U62
        w[i] = x
        return x
