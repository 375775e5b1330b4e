"""The deterministic scheduling modes: the CPUs take turns, and every turn is a decision.

In ``--sched pct`` and ``--sched random`` the CPU processes run the same code over the same
segment as in the free mode, but one at a time. At every scheduling point the running CPU
decides, from state in the segment and the seed, which CPU runs next and hands over: it posts
that CPU's semaphore and waits on its own. There is no controller; the decision is made by
whoever holds the turn, so it depends only on what the machine did before.

Scheduling points (``emu.machine.points``), declared where they are: every access a scheme
makes through the atomics API (each method marked ``@sched_point`` in ``emu.machine.atomics``,
whatever its memory model), the machine's own lock (a point before it is taken; a wait loop while
it is held elsewhere; its release is progress), the page walk of every quantum, and each
iteration of every wait loop (``wait``: lock spins, ``csd_lock_wait``, the schemes' busy-waits,
which call it themselves through ``cpu_relax``). IPIs are no signals here: the sender raises a
flag in the target's record, and the target runs its handlers at its next scheduling point with
interrupts on, so where an interrupt lands is a scheduling decision too.

Time is the step count: the global step advances by one at every point, and the machine's
clock (trace stamps, sleeps, idle timeouts, the TLB-trim timer, the exit-to-free latency, the
soft-lockup limit) reads it as one microsecond a step. The run phase lasts ``--steps`` steps;
the drain's start, the perturbation's events (what they are is the harness's, the same as in
the free mode: ``emu.harness.perturbation``) and fail-fast are decided at points too, by the
CPU holding the turn. Nothing that steers execution reads the host clock.

Who may run: a CPU that exited may not; one asleep (idle, or in a hotplug teardown) may once
its wake-up step has come, or when woken (a reschedule or an IPI, if the sleep is
wakeable); one blocked in a wait loop may once some CPU made progress since it blocked:
a write, a read-modify-write or a barrier through the API, a lock release, an IPI handled, or a
jump of the clock (a wait may have a deadline, as the soft-lockup detector's). Reads do not
count (``READ_ONCE`` included), so CPUs that only spin on one another are seen for what they
are: when nobody may run and nobody sleeps, the run ends in a deadlock report naming who waits
on whom (status 3). When only sleepers are left, the clock jumps to the first wake-up.

Which of the CPUs that may run, runs, is the policy's (``emu.machine.policy``: one module per
policy in ``emu.machine.policies``: ``pct``, ``random``, ``replay``). This module is the
hand-over: the clock, who may run, the turn passed by semaphores, the log, the deadlock.

The schedule is written compactly, as the hand-overs: (cpu, step) for every step at which the
turn went to another CPU, and (``COMMIT | k``, step) for every early commit of CPU k's TSO store
buffer that the policy decided (``_commit``: the explorer's ``--tso-commits``, and its replays).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from emu.machine.layout import H_NVIOL, H_PHASE, PHASE_DRAIN, PHASE_EXIT, PHASE_RUN, SCHED_CPU_WORDS, SCHED_HEADER_WORDS, Layout
from emu.machine.points import declared_points, declared_words
from emu.machine.policy import ACCESS_READ_ALL, ACCESS_UNKNOWN, COMMIT, P_ACCESS, S_BUFFERED, Policy, RunStart
from emu.machine.trace import STEP_SHIFT

if TYPE_CHECKING:
    from emu.machine.atomics import Atomics
    from emu.machine.irq import Irq
    from emu.machine.memory_model import TsoAtomics

STEP_NS = 1000  # the virtual clock: a step is a microsecond
STEP_S = STEP_NS / 1e9
FAIL_FAST_GRACE_STEPS = 20_000  # after the first violation, as the free mode's grace: its aftermath
DRAIN_STEPS = 5_000_000  # a drain that does not end within this many steps is a harness failure
RACE_STALL_STEPS = 500  # a stall in a marked race window: about a preemption's worth of other CPUs' work
WALK = -2  # a point's ``word`` for a step that reads, but no one word: the page walk

# the header (words from layout.sched_base); 7 is the policies' generator, 25..31 their own (emu.machine.policy)
(S_STEP, S_PROGRESS, S_CURRENT, S_END, S_STOP, S_ERROR, S_LOGN, _S_RNG, S_INTERRUPT, S_DRAIN_AT, S_SETTLED, S_NEXT_EVENT,
 _S_BUFFERED, S_COMMIT, S_EVSEQ, S_STOPPED) = range(16)  # fmt: skip
assert _S_BUFFERED == S_BUFFERED  # the policy's interface names it (emu.machine.policy)
S_PERTURB, PERTURB_SLOTS = 16, 4  # (next step, count) for each perturbation kind: 16..23
S_TRUNCATED = 24  # the log filled up: the schedule written is its first part only
# a CPU's record (10..15 are the policy's)
P_BLOCKED, P_WAIT_WHAT, P_WAIT_ON, P_SLEEP_UNTIL, P_WAKEABLE, P_WAKE, P_IPI, P_EXITED, _P_ACCESS, P_SETTLED_PASS = range(10)
assert _P_ACCESS == P_ACCESS  # the policy's interface names it (emu.machine.policy)

# S_ERROR
ERR_DEADLOCK, ERR_DRAIN = 1, 2
# S_STOPPED: why the run phase ended before its budget
STOP_FAIL_FAST, STOP_INTERRUPT = 1, 2

# what a blocked CPU waits for (P_WAIT_WHAT), for the deadlock report
WAIT_LOCK, WAIT_CSD, WAIT_SPIN = 1, 2, 3
WAITS = {WAIT_LOCK: "spins on a lock", WAIT_CSD: "waits in csd_lock_wait for an acknowledgement from", WAIT_SPIN: "busy-waits"}


class MachineEvents(Protocol):
    """The run's perturbation, as the harness decides it for both modes (``emu.harness.perturbation``):
    the hand-over only says when, on its clock."""

    kinds: tuple[str, ...]  # the kinds this run has, in the order their events go at one step

    def gap(self, kind: str, count: int, unit_s: float) -> float:
        """The time from the kind's event ``count - 1`` (the run's start for 0) to event ``count``, in units of ``unit_s``."""
        ...

    def fire(self, kind: str, count: int) -> None:
        """The kind's event ``count`` happens to the machine."""
        ...

    def lift(self) -> None:
        """The run phase ends: every perturbation lifts (offline CPUs are asked back)."""
        ...


class NoEvents:
    kinds: tuple[str, ...] = ()

    def gap(self, kind: str, count: int, unit_s: float) -> float:
        raise AssertionError(kind)

    def fire(self, kind: str, count: int) -> None:
        raise AssertionError(kind)

    def lift(self) -> None:
        pass


@dataclass(frozen=True)
class Schedule:
    """A deterministic run's schedule: its policy, and the hand-overs as (cpu, step)."""

    sched: str
    handovers: tuple[tuple[int, int], ...]

    def encode(self) -> str:
        """``cpu@step`` for every hand-over, space separated: a few bytes a hand-over; ``sbK@step`` for
        an early commit of CPU K's oldest buffered store (``COMMIT | K``)."""
        return " ".join(f"sb{c ^ COMMIT}@{s}" if c & COMMIT else f"{c}@{s}" for c, s in self.handovers)

    @staticmethod
    def decode(sched: str, text: str) -> Schedule:
        pairs = []
        for item in text.split():
            c, _, s = item.partition("@")
            cpu = int(c[2:] if c.startswith("sb") else c)
            if not 0 <= cpu < COMMIT:
                raise ValueError(f"no CPU {cpu}")
            pairs.append((COMMIT | cpu if c.startswith("sb") else cpu, int(s)))
        return Schedule(sched, tuple(pairs))


def make_policy(cls: type[Policy], words: memoryview, layout: Layout, run: RunStart) -> Policy:
    """A policy bound to this machine's scheduler region (and its own area, where the layout reserved one)."""
    policy = cls(words, layout.sched_base, SCHED_CPU_WORDS, SCHED_HEADER_WORDS, run)
    policy.bind_area(layout.policy_area_base, layout.policy_area)
    return policy


def init_region(w: memoryview, layout: Layout, policy: Policy, steps: int) -> None:
    """The scheduler's starting state, written by the runner before any CPU runs: a run begins."""
    base = layout.sched_base
    w[base + S_END] = steps
    w[base + S_NEXT_EVENT] = steps
    policy.begin()


class DrainSeen:
    """Where the drain's settling check keeps what it saw (``emu.kernel.drain.drain_settled``), in
    the segment: index 0, whether the machine was seen quiet; 1 + cpu, that CPU's pass count then."""

    def __init__(self, w: memoryview, layout: Layout) -> None:
        b = layout.sched_base
        self.w = w
        self.at = [b + S_SETTLED] + [b + SCHED_HEADER_WORDS + c * SCHED_CPU_WORDS + P_SETTLED_PASS for c in range(layout.ncpus)]

    def __getitem__(self, i: int) -> int:
        return self.w[self.at[i]]

    def __setitem__(self, i: int, v: int) -> None:
        self.w[self.at[i]] = v


class DetSched:
    """One CPU's side of the deterministic scheduler: the hand-over."""

    def __init__(
        self,
        words: memoryview,
        layout: Layout,
        cpu: int,
        policy: Policy,
        fail_fast: bool,
        sems: Sequence[Any],
        events: MachineEvents | None = None,
        recorded_by: type[Policy] | None = None,
    ) -> None:
        self.w = words
        self.layout = layout
        self.cpu = cpu
        self.n = layout.ncpus
        self.base = b = layout.sched_base
        self.rec = [b + SCHED_HEADER_WORDS + c * SCHED_CPU_WORDS for c in range(self.n)]
        self.me = self.rec[cpu]
        self.STEP, self.PROGRESS, self.NEXT_EVENT, self.CURRENT = b + S_STEP, b + S_PROGRESS, b + S_NEXT_EVENT, b + S_CURRENT
        self.policy = policy
        self.next_cpu = policy.next_cpu
        # what the machine below the scheduler keeps of the policy's declarations: those of the policy whose
        # schedules the run follows (``recorded_by``: a replay's are those of the policy that recorded it)
        self.tso_early_commits = (recorded_by or type(policy)).tso_early_commits
        self.fail_fast = fail_fast
        self.events: MachineEvents = events if events is not None else NoEvents()
        if len(self.events.kinds) > PERTURB_SLOTS:
            raise ValueError(f"the deterministic scheduler keeps {PERTURB_SLOTS} perturbation kinds, not {len(self.events.kinds)}")
        self._post = [s._semlock.release for s in sems]
        self._take = sems[cpu]._semlock.acquire
        self.active = False  # scheduling points count only once the machine runs under the scheduler
        self.atomics: Atomics | None = None
        self.irq: Irq | None = None
        # TSO's store buffer, where the policy decides its early commits (``track_store_buffer``); None elsewhere
        self.store_buffer: TsoAtomics | None = None
        self.drain_seen = DrainSeen(words, layout)
        self.committed_at = 0  # the step after the commits the last decision carried out (0: none)

    # -- the clock ----------------------------------------------------------------------------
    def clock(self) -> float:
        return self.w[self.STEP] * STEP_S

    def clock_ns(self) -> int:
        return self.w[self.STEP] * STEP_NS

    def stamp(self) -> int:
        """A trace stamp: the step, and the event's place in the machine's total order of events."""
        w, i = self.w, self.base + S_EVSEQ
        seq = w[i] + 1
        w[i] = seq
        return (w[self.STEP] << STEP_SHIFT) | (seq & ((1 << STEP_SHIFT) - 1))

    # -- scheduling points --------------------------------------------------------------------
    def point(self, progress: bool = True, word: int = -1) -> None:
        """An ordinary scheduling point: one step, and perhaps another CPU's turn. ``word``: the
        segment word this CPU accesses next (-1: not one word; ``WALK``: reads of any), kept for the explorer (``P_ACCESS``)."""
        if not self.active:
            return
        w = self.w
        if w[self.me + P_IPI] or word == -1:
            w[self.me + P_ACCESS] = ACCESS_UNKNOWN
        else:
            w[self.me + P_ACCESS] = ACCESS_READ_ALL if word == WALK else (word + 1) << 1 | progress
        s = w[self.STEP] + 1
        w[self.STEP] = s
        if progress:
            w[self.PROGRESS] += 1
        if s >= w[self.NEXT_EVENT] or (self.fail_fast and w[H_NVIOL] and not w[self.base + S_STOP]) or w[self.base + S_INTERRUPT]:
            self._events(s)
        nxt = self.decide(s)
        if nxt != self.cpu:
            self._switch(nxt, self.committed_at or s)
        if w[self.me + P_IPI]:
            self._deliver()

    def preempt(self) -> None:
        """A marked race window (``--race-delay``): the CPU holding the turn yields and stalls there for
        ``RACE_STALL_STEPS`` of the clock, as the free mode's stall gives its core away."""
        if not self.active:
            return
        self.sleep(self.w[self.STEP] + RACE_STALL_STEPS, wakeable=False, yielding=True)

    def progress(self) -> None:
        """Something a waiter may wait for happened outside a point (a lock release, a handled IPI)."""
        if self.active:
            self.w[self.PROGRESS] += 1

    def wait(self, what: int, on: int = -1) -> None:
        """One iteration of a wait loop that cannot go on: yield until some CPU made progress."""
        if not self.active:
            return
        if self.atomics is not None:
            self.atomics.store_buffer_drain()  # a spinning CPU's stores reach memory: nobody waits on a buffer
        w, me = self.w, self.me
        w[me + P_BLOCKED] = w[self.PROGRESS] + 1
        w[me + P_WAIT_WHAT], w[me + P_WAIT_ON] = what, on
        self._yield_turn(True)
        w[me + P_BLOCKED] = 0

    def sleep(self, until_step: int, wakeable: bool = True, yielding: bool = False) -> None:
        """Idle (or busy, uninterruptible) until ``until_step``; a wakeable sleep ends at a wake-up or an IPI too."""
        if not self.active:
            return
        w, me = self.w, self.me
        w[me + P_SLEEP_UNTIL] = max(until_step, w[self.STEP] + 1)
        w[me + P_WAKEABLE] = int(wakeable)
        self._yield_turn(yielding)
        w[me + P_SLEEP_UNTIL] = 0
        if wakeable:
            w[me + P_WAKE] = 0

    def _yield_turn(self, yielding: bool) -> None:
        w = self.w
        w[self.me + P_ACCESS] = ACCESS_UNKNOWN
        s = w[self.STEP] + 1
        w[self.STEP] = s
        if s >= w[self.NEXT_EVENT] or w[self.base + S_INTERRUPT]:
            self._events(s)
        nxt = self.decide(s, yielding)
        if nxt < 0:
            self._deadlock()
        if nxt != self.cpu:
            self._switch(nxt, self.committed_at or s)
        if w[self.me + P_IPI]:
            self._deliver()

    def wake(self, cpu: int) -> None:
        """``smp_send_reschedule`` to an idle CPU: its wakeable sleep ends."""
        self.w[self.rec[cpu] + P_WAKE] = 1

    def raise_ipi(self, cpu: int) -> None:
        """An IPI's doorbell: the target looks at its mailbox at its next point."""
        self.w[self.rec[cpu] + P_IPI] = 1
        self.w[self.rec[cpu] + P_ACCESS] = ACCESS_UNKNOWN  # it takes the interrupt first when it runs

    def _deliver(self) -> None:
        irq = self.irq
        self.w[self.me + P_IPI] = 0
        if irq is not None:
            irq.pending = True
            irq.replay()  # masked (or inside an atomic, or a handler): it runs when the mask lifts

    # -- who runs next ------------------------------------------------------------------------
    def may_run(self, c: int, s: int, progress: int) -> bool:
        w, r = self.w, self.rec[c]
        if w[r + P_EXITED]:
            return False
        blocked = w[r + P_BLOCKED]
        if blocked and blocked - 1 == progress:
            return False
        until = w[r + P_SLEEP_UNTIL]
        if until and s < until:
            return bool(w[r + P_WAKEABLE] and (w[r + P_WAKE] or w[r + P_IPI]))
        return True

    def runnable(self, s: int) -> tuple[list[int], int]:
        """The CPUs that may run at step ``s``, ascending, and the step: when none may but some sleep,
        the clock jumps to the first wake-up first. None may: a deadlock."""
        w = self.w
        progress = w[self.PROGRESS]
        may = [c for c in range(self.n) if self.may_run(c, s, progress)]
        if not may and self._jump():
            s, progress = w[self.STEP], w[self.PROGRESS]
            may = [c for c in range(self.n) if self.may_run(c, s, progress)]
        return may, s

    def decide(self, s: int, yielding: bool = False) -> int:
        """The CPU that runs at step ``s`` (the policy's answer); -1 if none may (a deadlock). An answer
        ``COMMIT | k`` is carried out (``_commit``: a step) and the decision asked again, at the next step
        (``committed_at``: the step of the answer that is a CPU, 0 where none was a commit)."""
        self.committed_at = 0
        while True:
            may, s = self.runnable(s)
            if not may:
                return -1
            if self.store_buffer is not None:
                self._note_buffer()
            nxt = self.next_cpu(may, self.w[self.CURRENT], yielding, s)
            if nxt < COMMIT:
                return nxt
            s = self.committed_at = self._commit(nxt ^ COMMIT, s)

    # -- TSO's early commits as decisions (the store buffer as a thread the schedule runs) --------
    def track_store_buffer(self, atomics: TsoAtomics) -> None:
        """The policy decides this CPU's early commits (it declares none of TSO's random ones): the
        hand-over keeps, for every CPU, whether its buffer holds a store (``S_BUFFERED``, one bit a CPU,
        for the policy's ``buffered()``), and carries out the answers ``COMMIT | k``."""
        self.store_buffer = atomics

    def _note_buffer(self) -> None:
        """This CPU's bit of ``S_BUFFERED``: whether its buffer holds a store (it changes only while the CPU runs)."""
        sb, w, i = self.store_buffer, self.w, self.base + S_BUFFERED
        if sb is not None and sb.buffered() and not w[self.me + P_EXITED]:
            w[i] |= 1 << self.cpu
        else:
            w[i] &= ~(1 << self.cpu)

    def _commit(self, k: int, s: int) -> int:
        """``COMMIT | k`` at step ``s``: CPU k's store buffer commits its oldest store, in k's process (which
        hands the turn straight back: the turn stays with the CPU holding it). A step of its own, logged as
        a hand-over (``Schedule``: ``sbK@step``) so that a replay repeats it, and progress: a waiter may
        see the store. Returns the step of the decision after it."""
        w = self.w
        self._log(COMMIT | k, s)
        if k == self.cpu:
            self._commit_own()
        else:
            w[self.base + S_COMMIT] = self.cpu << 8 | (k + 1)
            self._post[k]()
            self._take()
        w[self.PROGRESS] += 1
        s = w[self.STEP] + 1
        w[self.STEP] = s
        if s >= w[self.NEXT_EVENT] or (self.fail_fast and w[H_NVIOL] and not w[self.base + S_STOP]) or w[self.base + S_INTERRUPT]:
            self._events(s)
        return s

    def _commit_own(self) -> None:
        if self.store_buffer is not None:
            self.store_buffer.commit_oldest()
            self._note_buffer()

    def _await_turn(self) -> None:
        """Wait for the turn; meanwhile carry out the commits of this CPU's buffer that the CPU holding it asks for."""
        w, at = self.w, self.base + S_COMMIT
        self._take()
        while w[at] & 0xFF == self.cpu + 1:
            asker = w[at] >> 8
            w[at] = 0
            self._commit_own()
            self._post[asker]()
            self._take()

    def _jump(self) -> bool:
        """Nobody may run: jump the clock to the first sleeper's wake-up; False if none sleeps."""
        w = self.w
        wakeups = [w[r + P_SLEEP_UNTIL] for r in self.rec if w[r + P_SLEEP_UNTIL] and not w[r + P_EXITED]]
        if not wakeups:
            return False
        w[self.STEP] = max(w[self.STEP], min(wakeups))
        w[self.PROGRESS] += 1  # time passed: a waiter with a deadline (the soft-lockup detector) looks again
        return True

    def _switch(self, nxt: int, s: int) -> None:
        self._log(nxt, s)
        self.w[self.base + S_CURRENT] = nxt
        self._post[nxt]()
        self._await_turn()

    def _log(self, nxt: int, s: int) -> None:
        w, b = self.w, self.base
        n = w[b + S_LOGN]
        if n < self.layout.sched_log:
            log = b + SCHED_HEADER_WORDS + self.n * SCHED_CPU_WORDS + 2 * n
            w[log], w[log + 1] = nxt, s
            w[b + S_LOGN] = n + 1
        else:
            w[b + S_TRUNCATED] = 1  # the seed still reruns it; the schedule written is its first part

    def _deadlock(self) -> None:
        w = self.w
        if w[H_PHASE] == PHASE_EXIT:
            self._take()  # the machine is stopping anyway: the runner collects what is left
        w[self.base + S_ERROR] = ERR_DEADLOCK
        w[H_PHASE] = PHASE_EXIT
        self._take()  # nobody will post: the runner sees the error and stops the machine

    # -- boot and exit ----------------------------------------------------------------------
    def wait_turn(self) -> None:
        self._take()

    def boot_done(self) -> None:
        """CPUs boot one after the other; the last one starts the run phase and takes the first turn."""
        w, b = self.w, self.base
        self.active = True
        if self.store_buffer is not None:
            self._note_buffer()
        if self.cpu + 1 < self.n:
            w[b + S_CURRENT] = self.cpu + 1
            self._post[self.cpu + 1]()
            self._await_turn()
            return
        w[b + S_CURRENT] = self.cpu
        w[b + SCHED_HEADER_WORDS + self.n * SCHED_CPU_WORDS], w[b + SCHED_HEADER_WORDS + self.n * SCHED_CPU_WORDS + 1] = self.cpu, 0
        w[b + S_LOGN] = 1
        for k, kind in enumerate(self.events.kinds):
            w[b + S_PERTURB + 2 * k] = self._perturb_at(kind, 0, 0)
        self._next_event()
        w[H_PHASE] = PHASE_RUN

    def exit(self) -> None:
        """This CPU leaves: the turn goes to one that may still run."""
        if not self.active:
            return
        w = self.w
        w[self.me + P_EXITED] = 1
        s = w[self.STEP] + 1
        w[self.STEP] = s
        nxt = self.decide(s)
        if nxt >= 0:
            w[self.base + S_CURRENT] = nxt
            self._post[nxt]()

    # -- what the CPU holding the turn decides for the machine, on the clock --------------------
    def _events(self, s: int) -> None:
        w, b = self.w, self.base
        phase = w[H_PHASE]
        if self.fail_fast and w[H_NVIOL] and not w[b + S_STOP]:
            w[b + S_STOP] = s + FAIL_FAST_GRACE_STEPS
        if phase == PHASE_RUN:
            stop = w[b + S_STOP]
            if w[b + S_INTERRUPT] or s >= w[b + S_END] or (stop and s >= stop):
                if s < w[b + S_END]:
                    w[b + S_STOPPED] = STOP_INTERRUPT if w[b + S_INTERRUPT] else STOP_FAIL_FAST
                self._begin_drain(s)
            else:
                for k, kind in enumerate(self.events.kinds):
                    at = w[b + S_PERTURB + 2 * k]
                    if at and s >= at:
                        count = w[b + S_PERTURB + 2 * k + 1]
                        self.events.fire(kind, count)
                        w[b + S_PERTURB + 2 * k + 1] = count + 1
                        w[b + S_PERTURB + 2 * k] = self._perturb_at(kind, count + 1, s)
        elif phase == PHASE_DRAIN and s - w[b + S_DRAIN_AT] > DRAIN_STEPS:
            w[b + S_ERROR] = ERR_DRAIN
            w[H_PHASE] = PHASE_EXIT
        self._next_event()

    def _next_event(self) -> None:
        w, b = self.w, self.base
        if w[H_PHASE] == PHASE_DRAIN:
            nxt = w[b + S_DRAIN_AT] + DRAIN_STEPS + 1
        elif w[H_PHASE] == PHASE_EXIT and w[b + S_ERROR]:
            nxt = 1 << 62
        else:
            nxt = w[b + S_END]
            if w[b + S_STOP]:
                nxt = min(nxt, w[b + S_STOP])
            for k in range(len(self.events.kinds)):
                at = w[b + S_PERTURB + 2 * k]
                if at:
                    nxt = min(nxt, at)
        w[self.NEXT_EVENT] = nxt

    def _perturb_at(self, kind: str, count: int, s: int) -> int:
        """The step of a perturbation kind's next event."""
        return s + 1 + int(self.events.gap(kind, count, STEP_S))

    def _begin_drain(self, s: int) -> None:
        """The run phase ends: every perturbation lifts and the machine drains."""
        self.events.lift()
        for k in range(len(self.events.kinds)):
            self.w[self.base + S_PERTURB + 2 * k] = 0
        self.w[self.base + S_DRAIN_AT] = s
        self.w[H_PHASE] = PHASE_DRAIN


def read_schedule(w: memoryview, layout: Layout, sched: str) -> Schedule:
    b = layout.sched_base
    log = b + SCHED_HEADER_WORDS + layout.ncpus * SCHED_CPU_WORDS
    n = min(w[b + S_LOGN], layout.sched_log)
    return Schedule(sched, tuple((w[log + 2 * i], w[log + 2 * i + 1]) for i in range(n)))


def describe_deadlock(w: memoryview, layout: Layout) -> str:
    """Who waits on whom, when no CPU may run."""
    b = layout.sched_base
    parts = []
    for c in range(layout.ncpus):
        r = b + SCHED_HEADER_WORDS + c * SCHED_CPU_WORDS
        if w[r + P_EXITED]:
            continue
        what, on = w[r + P_WAIT_WHAT], w[r + P_WAIT_ON]
        if w[r + P_BLOCKED]:
            target = f" cpu{on}" if on >= 0 and what == WAIT_CSD else ""
            parts.append(f"cpu{c} {WAITS.get(what, 'waits')}{target}")
        else:
            parts.append(f"cpu{c} runs")
    return f"deadlock at step {w[b + S_STEP]:,}: no CPU can go on ({'; '.join(parts)})"


def install_points(atomics: Atomics, det: DetSched) -> None:
    """Make every method the atomics API declares a scheduling point (``emu.machine.points``), with
    the progress it declares; the machine's lock a point, its acquisition a wait loop, and its release progress."""
    point = det.point
    words = declared_words(type(atomics))
    for name, progress in declared_points(type(atomics)).items():
        setattr(atomics, name, _wrap(getattr(atomics, name), point, progress, words.get(name)))
    atomics._acq = _SpinAcquires(atomics._acq, det)  # type: ignore[assignment]
    lock, unlock = atomics.lock, atomics.unlock

    def det_lock(i: int) -> int:
        point(True, i)  # the lock of word i's line: a write of it, for the explorer
        return lock(i)

    def det_unlock(k: int) -> None:
        unlock(k)
        det.progress()

    atomics.lock = det_lock  # type: ignore[method-assign]
    atomics.unlock = det_unlock  # type: ignore[method-assign]


class _SpinAcquires(dict[int, Callable[..., bool]]):
    """The locks' acquisitions as wait loops, each made when its lock is first taken: a run takes a
    few of the hundreds of locks, and the explorer builds a machine for every schedule."""

    def __init__(self, raw: Sequence[Callable[..., bool]], det: DetSched) -> None:
        super().__init__()
        self.raw, self.det = list(raw), det

    def __missing__(self, k: int) -> Callable[..., bool]:
        acq, det = self.raw[k], self.det

        def acquire(block: bool = True, timeout: float | None = None) -> bool:
            while not acq(False):  # held across a scheduling point: yield until it is released
                det.wait(WAIT_LOCK)
            return True

        self[k] = acquire
        return acquire


def _wrap(fn: Callable[..., Any], point: Callable[[bool, int], None], progress: bool, word: int | None) -> Callable[..., Any]:
    if word is None:

        def at_point(*args: Any) -> Any:
            point(progress, -1)
            return fn(*args)

    else:

        def at_point(*args: Any) -> Any:
            point(progress, args[word])
            return fn(*args)

    at_point.__name__ = fn.__name__
    return at_point
