"""The runner: boots the CPUs, supervises them, drains the machine and collects the report.

Lifecycle of a run (the header's phase word): BOOT (CPUs attach and report ready) -> RUN (the
workload for ``duration`` seconds) -> DRAIN (no new work; user tasks exit, kernel threads let
go of their mms, idle CPUs leave their lazy mms for init_mm) -> EXIT. After EXIT the oracle's
leak check runs on the quiet machine.

A run ends within ``KEEP_UP_S`` of its duration whatever the host: the load ends early enough to
leave the drain and the CPUs' exit their time, a machine too large to boot and stop within that is
a harness failure that says the machine cannot keep up, and what did not fit (a shortened load,
CPUs that never ran, a drain past the deadline) is said in the report.

Every CPU process is reaped on every path: normal end, a violation, Ctrl-C or SIGTERM (the
run drains and still reports; a second signal stops at once), and a CPU that dies, hangs or loses
an IPI (the watchdog, ``emu/checks/watchdog.py``, names the stalled CPU and what it was doing).
CPU processes die with the runner (``PR_SET_PDEATHSIG``), and the segment is unlinked once,
by the runner, whatever happened.
"""

from __future__ import annotations

import cProfile
import ctypes
import multiprocessing
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from emu.arch import ARCHES
from emu.checks.watchdog import Watchdog, describe_cpu, lost_ipi
from emu.harness.config import ConfigError, RunConfig
from emu.harness.memwatch import RssSampler
from emu.harness.parts import extra_counters, parts_for
from emu.harness.perturbation import Events, Perturbation
from emu.harness.plugins import load_config
from emu.harness.replay import load_replay
from emu.harness.report import Report, collect, sum_counters
from emu.kernel.cpu import EXIT_HARNESS, Cpu
from emu.kernel.drain import drain_settled
from emu.machine.atomics import make_locks
from emu.machine.detsched import (
    DRAIN_STEPS,
    ERR_DEADLOCK,
    ERR_DRAIN,
    S_CURRENT,
    S_DRAIN_AT,
    S_ERROR,
    S_INTERRUPT,
    S_STEP,
    S_STOPPED,
    S_TRUNCATED,
    STEP_NS,
    STOP_FAIL_FAST,
    DetSched,
    Schedule,
    describe_deadlock,
    init_region,
    make_policy,
    read_schedule,
)
from emu.machine.irq import make_doorbells
from emu.machine.layout import (
    ARCH_MM_WORDS,
    C_STATE,
    CPU_QUIESCED,
    H_LIVE_USERS,
    H_NCPUS,
    H_NMM,
    H_NTASK,
    H_NVIOL,
    H_PHASE,
    H_READY,
    M_COUNT,
    M_GEN,
    M_STATE,
    M_USERS,
    MM_LIVE,
    PHASE_DRAIN,
    PHASE_EXIT,
    PHASE_RUN,
    SCHEME_PERCPU_WORDS,
    Layout,
    LayoutError,
    check_fits,
)
from emu.machine.policies import policy_class
from emu.machine.policy import Policy, RunStart
from emu.machine.shm import Segment, SegmentError, sweep_stale
from emu.strategies import resolve

PR_SET_PDEATHSIG = 1
SCHED_LOG_MAX = 1 << 20  # hand-overs a deterministic run's schedule keeps (16 bytes each)
BOOT_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 5.0  # a profiled run's CPUs write their statistics as they exit
# A run ends within KEEP_UP_S of its duration, however slow the host; what did not fit is reported.
# The load ends that second less the time to drain and stop the machine: END_RESERVE_S plus
# TEARDOWN_CPU_S of host core time per CPU process (5-6 ms wall each on the 2-core development
# machine), or TEARDOWN_BOOT_RATIO of the boot's time if more: a loaded host slows both alike.
# The load runs at least MIN_LOAD_S. A boot that would end the run more than OVERRUN_S past that
# deadline is a failure: the machine cannot keep up. It is known early: the boot's length is
# projected from the rate of the first forks. A smaller overrun (a busy host) is run, and said.
KEEP_UP_S = 1.0
OVERRUN_S = 1.0
END_RESERVE_S = 0.3
TEARDOWN_CPU_S = 0.012
TEARDOWN_BOOT_RATIO = 0.5
MIN_LOAD_S = 0.1
PROJECT_AFTER = 8  # forks before their rate predicts the whole boot
RSS_CPUS = 64  # CPU processes whose memory is sampled: reading hundreds a second would starve the runner
FAIL_FAST_GRACE_S = 0.3
ABORT_GRACE_S = 0.5  # after a failure: CPUs that do not leave at once are stopped or stuck, SIGKILL them


class HarnessError(RuntimeError):
    """The machine itself failed: a CPU died or hung, or booting failed."""


class CannotKeepUp(HarnessError):
    """The host is too slow for this machine within the run's duration (KEEP_UP_S)."""


def _die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(3)


def _cpu_entry(
    cpu: int,
    cfg: RunConfig,
    layout: Layout,
    seg: Segment,
    locks: list,  # type: ignore[type-arg]
    doorbells: list,  # type: ignore[type-arg]
    parent: int,
    profile_dir: str | None,
    gate: tuple[int, int],
    turns: list | None = None,  # type: ignore[type-arg]
    schedule: Schedule | None = None,
    prefix: tuple[int, ...] = (),
) -> None:
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the runner decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.close(gate[1])
    seg.check()
    det = None
    if turns is not None:
        policy = make_policy(policy_class(cfg.sched, schedule is not None), seg.words, layout, run_start(cfg, schedule, prefix))
        recorded_by = policy_class(cfg.sched, False)  # a replay keeps the declarations of the policy that recorded it
        det = DetSched(seg.words, layout, cpu, policy, cfg.fail_fast, turns, Events(cfg, layout, seg.words), recorded_by)
    machine = Cpu(cpu, cfg, layout, seg, locks, doorbells, parts_for(cfg), det)
    boot = machine.boot

    def boot_into_holding_pen() -> None:
        # A booted CPU polls for the run phase; hundreds of them polling starve the runner's fork
        # loop and the CPUs still booting. So, like secondary CPUs in a holding pen, each waits
        # without polling until the runner releases them all at once (the pipe reads EOF).
        boot()
        os.read(gate[0], 1)
        os.close(gate[0])

    def boot_in_turn() -> None:
        # deterministic: the CPUs boot one after another, each when the one before hands it the turn
        assert det is not None
        os.close(gate[0])
        det.wait_turn()
        boot()
        det.boot_done()

    machine.boot = boot_in_turn if det is not None else boot_into_holding_pen  # type: ignore[method-assign]
    if profile_dir is None:
        sys.exit(machine.main())
    profile = cProfile.Profile()
    status = profile.runcall(machine.main)
    profile.dump_stats(os.path.join(profile_dir, f"cpu{cpu}.prof"))
    sys.exit(status)


def run_start(cfg: RunConfig, schedule: Schedule | None, prefix: tuple[int, ...] = ()) -> RunStart:
    """What the policy is told of the run (``emu.machine.policy``)."""
    handovers = schedule.handovers if schedule is not None else ()
    return RunStart(ncpus=cfg.cpus, seed=cfg.seed, steps=cfg.steps, depth=cfg.depth, handovers=handovers, prefix=prefix)


def begin_policy(cfg: RunConfig, words: memoryview, layout: Layout, schedule: Schedule | None, prefix: tuple[int, ...] = ()) -> Policy:
    """A run begins: the policy that steers it writes its starting state."""
    policy = make_policy(policy_class(cfg.sched, schedule is not None), words, layout, run_start(cfg, schedule, prefix))
    init_region(words, layout, policy, cfg.steps)
    return policy


@dataclass
class RunState:
    """What the runner learned along the way, for the report."""

    boot_s: float = 0.0
    run_s: float = 0.0
    drain_s: float = 0.0
    total_s: float = 0.0  # from the runner's start to its CPUs reaped: what KEEP_UP_S bounds
    t_run_ns: int = 0
    interrupted: str = ""
    stopped_early: str = ""
    harness_error: str = ""
    progress: list[dict[str, float]] = field(default_factory=list)
    rss: dict[str, object] = field(default_factory=dict)
    drained: bool = False  # the drain finished: only then is an mm still alive a leak
    keep_up: list[str] = field(default_factory=list)  # what the host could not do in time, in words
    schedule: Schedule | None = None  # a deterministic run's executed schedule
    steps: int = 0  # a deterministic run's steps in all, and in its run phase
    run_steps: int = 0
    schedule_truncated: bool = False
    policy_record: tuple[int, ...] = ()  # what the policy told of the run (``Policy.record``: the explorer's decisions)


def layout_for(cfg: RunConfig) -> Layout:
    cfg = load_config(cfg)
    strat = resolve(cfg.scheme)
    arch = ARCHES[cfg.arch]
    try:  # every capacity a part's declaration fills, checked as the machine is laid out: never an overwrite
        # (the scheduler's perturbation slots: emu.machine.detsched, PERTURB_SLOTS)
        check_fits(f"scheme '{cfg.scheme}': per-CPU fields", len(strat.percpu), SCHEME_PERCPU_WORDS)
        check_fits("mm record words", arch.mm_words, ARCH_MM_WORDS)
        w = cfg.workload
        log = min(SCHED_LOG_MAX, cfg.steps + 16) if cfg.deterministic else 0
        area = policy_class(cfg.sched, bool(cfg.replay)).area_words(run_start(cfg, None)) if cfg.deterministic else 0
        counters = tuple(strat.counters) + tuple(arch.counters) + extra_counters(cfg)
        # the arch's per-CPU fields are placed (and their sizes checked) by the machine layer, from the declaration
        return Layout.for_run(cfg.cpus, w.live_procs(cfg.cpus), w.threads, w.kthreads, counters, log, area, arch.percpu)
    except LayoutError as e:
        raise ConfigError(str(e) if str(e).startswith("scheme") else f"architecture '{cfg.arch}': {e}") from None


class Runner:
    def __init__(
        self, cfg: RunConfig, progress: Callable[[dict[str, float]], None] | None = None, profile_dir: str | None = None,
        prefix: tuple[int, ...] = (),
    ) -> None:  # fmt: skip
        self.cfg = cfg
        self.prefix = prefix  # the explorer's answers at its first decisions (``--sched explore``)
        self.profile_dir = profile_dir  # each CPU runs under cProfile and writes cpuN.prof there
        self.layout = layout_for(cfg)
        self.progress = progress
        self.state = RunState()
        self.procs: list[multiprocessing.context.ForkProcess] = []
        self._signals = 0
        self.watchdog: Watchdog | None = None
        self.rss: RssSampler | None = None
        self.deadline = 0.0  # when the run must be over: its duration and KEEP_UP_S from the start
        self._exits = select.poll()  # the CPU processes' sentinels

    # -- signals ---------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals += 1
        self.state.interrupted = signal.Signals(signum).name
        if self._signals > 1:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, skip the drain

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> Report:
        t_start = time.monotonic()
        self.deadline = t_start + self.cfg.duration + KEEP_UP_S
        sweep_stale()
        seg = Segment(self.layout.nbytes)
        ctx = multiprocessing.get_context("fork")
        try:
            locks = make_locks(ctx)
            doorbells = make_doorbells(ctx, self.cfg.cpus)
            turns = make_doorbells(ctx, self.cfg.cpus) if self.cfg.deterministic else None  # who holds the turn
        except OSError as e:  # sem_open: the semaphores live in /dev/shm too
            seg.unlink()
            raise SegmentError(f"cannot create the lock semaphores in /dev/shm: {e.strerror or e}") from e
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            aborted, grace = True, ABORT_GRACE_S
            try:
                if turns is not None:
                    self._run_deterministic(seg, ctx, locks, doorbells, turns, t_start)
                else:
                    self._boot_and_run(seg, ctx, locks, doorbells, t_start)
                aborted = False
            except KeyboardInterrupt:
                self.state.interrupted = self.state.interrupted or "SIGINT"
            except HarnessError as e:
                self.state.harness_error = str(e)
                grace = 0.0 if isinstance(e, CannotKeepUp) else grace
            finally:
                self._reap(seg, aborted, grace)
            self.state.total_s = time.monotonic() - t_start
            late = time.monotonic() - self.deadline
            if late >= 0.05 and not self.state.harness_error and not self.state.interrupted and turns is None:
                self.state.keep_up.append(
                    f"the run ended {late:.1f}s later than {KEEP_UP_S:g}s after its duration "
                    f"(drain {self.state.drain_s:.1f}s, then stopping the {self.cfg.cpus} CPU processes)"
                )
            if self.rss:
                self.state.rss = self.rss.summary()
            return collect(self.cfg, self.layout, seg, self.state)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            seg.unlink()

    def _init_machine(self, w: memoryview) -> None:
        """The header and init_mm, before any CPU exists."""
        lay = self.layout
        w[H_NCPUS], w[H_NMM], w[H_NTASK] = lay.ncpus, lay.nmm, lay.ntask
        init = lay.mm_base  # slot 0: init_mm, generation 1, never freed
        w[init + M_GEN], w[init + M_STATE], w[init + M_USERS], w[init + M_COUNT] = 1, MM_LIVE, 1, 1

    def _boot_and_run(self, seg: Segment, ctx: multiprocessing.context.ForkContext, locks: list, doorbells: list, t0: float) -> None:  # type: ignore[type-arg]
        w, cfg = seg.words, self.cfg
        self._init_machine(w)
        gate = os.pipe()  # the holding pen: the CPUs wait on its read end until the runner closes it
        try:
            t_run = self._boot(seg, ctx, locks, doorbells, t0, gate)
        finally:
            # the run phase is set (or the boot failed): release the CPUs. Hundreds of them waking
            # at once may keep the runner off its core for a while: the load's clock started before.
            for fd in gate:
                os.close(fd)
        if t_run is None:  # interrupted during the boot
            return
        if self.watchdog:
            self.watchdog.touch(t_run)
        # leave the drain its time, but run the load at least MIN_LOAD_S
        load_by = max(t_run + min(cfg.duration, MIN_LOAD_S), self.deadline - self._teardown_s(self.state.boot_s))
        end = min(t_run + cfg.duration, load_by)
        try:
            self._supervise(seg, t_run, end)
        finally:
            self.state.run_s = time.monotonic() - t_run
        self._note_load(seg, t_run + cfg.duration > end)
        self._drain(seg)

    def _run_deterministic(
        self, seg: Segment, ctx: multiprocessing.context.ForkContext, locks: list, doorbells: list, turns: list,  # type: ignore[type-arg]
        t0: float,
    ) -> None:  # fmt: skip
        """A deterministic mode: the CPUs boot in turn and run one at a time, deciding among
        themselves (``emu.machine.detsched``); the runner only starts them, hands the first turn to cpu0,
        and watches: for a CPU that dies, the scheduler's error, a signal, and a turn that never
        ends (a host-side hang: the watchdog's seconds without a step)."""
        w, lay, cfg = seg.words, self.layout, self.cfg
        self._init_machine(w)
        schedule = load_replay(cfg) if cfg.replay else None
        policy = begin_policy(cfg, w, lay, schedule, self.prefix)
        gate = os.pipe()  # unused by the deterministic boot; the CPU entry closes its ends
        try:
            for c in range(cfg.cpus):
                args = (c, cfg, lay, seg, locks, doorbells, os.getpid(), self.profile_dir, gate, turns, schedule, self.prefix)
                p = ctx.Process(target=_cpu_entry, args=args, name=f"lazytlb-cpu{c}", daemon=True)
                try:
                    p.start()
                except OSError as e:
                    raise HarnessError(f"cannot start cpu {c}: {e.strerror or e}") from e
                self.procs.append(p)
        finally:
            for fd in gate:
                os.close(fd)
        for p in self.procs:
            self._exits.register(p.sentinel, select.POLLIN)
        turns[0].release()
        base = lay.sched_base
        last_step, last_change = -1, time.monotonic()
        next_tick = last_change
        while True:
            if self.state.interrupted and not w[base + S_INTERRUPT]:
                w[base + S_INTERRUPT] = 1  # the CPU holding the turn starts the drain
            if w[base + S_ERROR]:
                break
            if all(p.exitcode is not None for p in self.procs):
                self._check_children(seg)
                break
            self._wait_children(seg, 0.02)
            now = time.monotonic()
            step = w[base + S_STEP]
            if step != last_step:
                last_step, last_change = step, now
            elif now - last_change > cfg.watchdog:
                holder = w[base + S_CURRENT]
                raise HarnessError(f"no scheduling step for {cfg.watchdog:g}s: cpu {holder} holds the turn: {describe_cpu(lay, w, holder)}")
            if self.progress and now >= next_tick:
                next_tick = now + 0.5
                snap = self.snapshot(seg, step * STEP_NS / 1e9)
                snap["steps"], snap["steps_total"] = step, cfg.steps
                self.progress(snap)
        st = self.state
        st.steps = w[base + S_STEP]
        drained_at = w[base + S_DRAIN_AT]
        st.run_steps = drained_at or st.steps
        st.run_s = st.run_steps * STEP_NS / 1e9
        st.schedule = read_schedule(w, lay, cfg.sched)
        st.schedule_truncated = bool(w[base + S_TRUNCATED])
        st.policy_record = policy.record()
        st.t_run_ns = -1  # the stamps are steps
        st.total_s = time.monotonic() - t0
        error = w[base + S_ERROR]
        if error == ERR_DEADLOCK:
            raise HarnessError(describe_deadlock(w, lay))
        if error == ERR_DRAIN:
            cpus = "; ".join(f"cpu {c}: {describe_cpu(lay, w, c)}" for c in range(lay.ncpus))
            raise HarnessError(f"the machine did not drain within {DRAIN_STEPS:,} steps: {w[H_LIVE_USERS]} user tasks alive ({cpus})")
        stopped = w[base + S_STOPPED]
        if stopped == STOP_FAIL_FAST:
            st.stopped_early = "stopped at the first violation (--fail-fast)"
        st.drained = w[H_PHASE] == PHASE_EXIT

    def _boot(
        self, seg: Segment, ctx: multiprocessing.context.ForkContext, locks: list, doorbells: list,  # type: ignore[type-arg]
        t0: float, gate: tuple[int, int],
    ) -> float | None:  # fmt: skip
        """Fork every CPU, wait until each has booted into the holding pen, and start the run phase:
        when it started, or None if a signal came first."""
        w, lay, cfg = seg.words, self.layout, self.cfg
        for c in range(cfg.cpus):
            elapsed = time.monotonic() - t0
            boot = elapsed * cfg.cpus / c if c >= PROJECT_AFTER else elapsed  # the whole boot, at this rate
            if not self._fits(boot):
                raise CannotKeepUp(self._slow_boot(f"{c} of {cfg.cpus} CPU processes started" if c else "", elapsed, boot))
            args = (c, cfg, lay, seg, locks, doorbells, os.getpid(), self.profile_dir, gate)
            p = ctx.Process(target=_cpu_entry, args=args, name=f"lazytlb-cpu{c}", daemon=True)
            try:
                p.start()
            except OSError as e:  # fork: EAGAIN at the process limit, ENOMEM
                raise HarnessError(f"cannot start cpu {c}: {e.strerror or e}") from e
            self.procs.append(p)
        self.rss = RssSampler(os.getpid(), [p.pid for p in self.procs[:RSS_CPUS] if p.pid is not None])
        self.watchdog = Watchdog(lay, w, cfg.watchdog, time.monotonic())
        for p in self.procs:
            self._exits.register(p.sentinel, select.POLLIN)
        while w[H_READY] < cfg.cpus:
            self._wait_children(seg, 0.002)
            elapsed = time.monotonic() - t0
            if elapsed >= BOOT_TIMEOUT_S:
                raise HarnessError(f"only {w[H_READY]} of {cfg.cpus} CPUs came up within {BOOT_TIMEOUT_S:.0f}s")
            if not self._fits(elapsed):
                raise CannotKeepUp(self._slow_boot(f"{w[H_READY]} of {cfg.cpus} CPUs came up", elapsed, elapsed))
            if self.state.interrupted:
                return None
        self.state.boot_s = time.monotonic() - t0
        self.state.t_run_ns = time.monotonic_ns()
        w[H_PHASE] = PHASE_RUN
        return time.monotonic()

    def _teardown_s(self, boot_s: float) -> float:
        """What draining and stopping this machine takes on this host, about, after a boot of ``boot_s``."""
        return END_RESERVE_S + max(self.cfg.cpus * TEARDOWN_CPU_S / _host_cores(), TEARDOWN_BOOT_RATIO * boot_s)

    def _fits(self, boot_s: float) -> bool:
        """Whether a boot of ``boot_s``, a load and the teardown end within OVERRUN_S of the run's deadline."""
        load = min(self.cfg.duration, MIN_LOAD_S)
        return boot_s + load + self._teardown_s(boot_s) <= self.cfg.duration + KEEP_UP_S + OVERRUN_S

    def _slow_boot(self, what: str, elapsed: float, boot_s: float) -> str:
        cfg = self.cfg
        stop = f"{self._teardown_s(boot_s):.1f}s on {_host_cores()} host cores"
        if what:
            cost = f"{what} in {elapsed:.1f}s, so booting all takes about {boot_s:.1f}s and draining and stopping them about {stop}"
        else:
            cost = f"draining and stopping {cfg.cpus} CPU processes takes about {stop}"
        return (
            f"the machine cannot keep up: {cost}, and a run ends within {KEEP_UP_S:g}s of its {cfg.duration:g}s duration "
            "(give it a longer --duration or fewer --cpus)"
        )

    def _note_load(self, seg: Segment, shortened: bool) -> None:
        """Say what the host could not give the load: its full duration, or any run at all to some CPUs."""
        st, cfg = self.state, self.cfg
        if shortened and st.run_s < cfg.duration - 0.05 and not st.interrupted and not st.stopped_early:  # (a late tick ran it whole)
            st.keep_up.append(
                f"the load ran {st.run_s:.1f}s of the {cfg.duration:g}s asked, to leave about {self._teardown_s(st.boot_s):.1f}s "
                f"to drain and stop {cfg.cpus} CPU processes (the boot took {st.boot_s:.1f}s)"
            )
        beats = [seg.words[self.layout.counter(c, "page_walks")] for c in range(self.layout.ncpus)]
        idle = [c for c, b in enumerate(beats) if b == 0]
        if idle and not cfg.hotplug:  # (an offline CPU walks nothing either)
            st.keep_up.append(
                f"{len(idle)} of {cfg.cpus} CPU processes never ran during the {st.run_s:.1f}s load "
                f"({_host_cores()} host cores; first: cpu {', cpu '.join(map(str, idle[:4]))})"
            )

    def _supervise(self, seg: Segment, t_run: float, end: float) -> None:
        perturb = Perturbation(self.cfg, self.layout, seg.words, [p.pid for p in self.procs if p.pid])
        next_tick = t_run
        caught = 0.0
        try:
            while not self.state.interrupted:
                now = time.monotonic()
                if now >= end:
                    return
                if self.cfg.fail_fast and seg.words[H_NVIOL]:
                    caught = caught or now
                    if now - caught >= FAIL_FAST_GRACE_S:  # let the violation's aftermath be recorded too
                        self.state.stopped_early = "stopped at the first violation (--fail-fast)"
                        return
                self._wait_children(seg, min(0.1, end - now, max(0.0, perturb.deadline() - now)))
                now = time.monotonic()
                self._check_stalls(now)
                if self.rss:
                    self.rss.sample(now - t_run)
                perturb.tick(now)
                if self.progress and now >= next_tick:
                    next_tick = now + 0.5
                    self.progress(self.snapshot(seg, now - t_run))
        finally:
            if perturb.active and not perturb.settle():
                raise HarnessError("a CPU did not come back online before the drain")

    def _drain(self, seg: Segment) -> None:
        w, lay = seg.words, self.layout
        w[H_PHASE] = PHASE_DRAIN
        t0 = time.monotonic()
        if self.watchdog:
            self.watchdog.touch(t0)
        seen = [0] * (lay.ncpus + 1)  # what the settling check saw (emu.kernel.drain.drain_settled)
        while True:
            self._check_stalls(time.monotonic())
            if drain_settled(w, lay, seen):
                break
            if time.monotonic() - t0 > DRAIN_TIMEOUT_S:
                busy = [c for c in range(lay.ncpus) if w[lay.cpu(c) + C_STATE] != CPU_QUIESCED]
                raise HarnessError(
                    f"the machine did not drain within {DRAIN_TIMEOUT_S:.0f}s: "
                    f"{w[H_LIVE_USERS]} user tasks alive, CPUs not idle: {busy[:8]}"
                )
            self._wait_children(seg, 0.005)
        self.state.drain_s = time.monotonic() - t0
        self.state.drained = True
        w[H_PHASE] = PHASE_EXIT

    def _wait_children(self, seg: Segment, timeout: float) -> None:
        """Sleep up to ``timeout``; a CPU process that exits meanwhile is a failure (one poll of every
        sentinel, registered once: a loop over hundreds of processes would starve the runner)."""
        if self._exits.poll(max(0.0, timeout) * 1000):
            self._check_children(seg)

    def _check_children(self, seg: Segment) -> None:
        for c, p in enumerate(self.procs):
            if p.exitcode is not None and (p.exitcode != 0 or seg.words[H_PHASE] != PHASE_EXIT):
                lost = lost_ipi(self.layout, seg.words, c) if p.exitcode == EXIT_HARNESS else None
                if lost:
                    raise HarnessError(lost)
                raise HarnessError(f"cpu {c} died (exit status {p.exitcode}): {describe_cpu(self.layout, seg.words, c)}")

    def _check_stalls(self, now: float) -> None:
        stall = self.watchdog.check(now) if self.watchdog else None
        if stall:
            raise HarnessError(stall)

    def snapshot(self, seg: Segment, elapsed: float) -> dict[str, float]:
        m = sum_counters(self.layout, np.frombuffer(seg.buf, dtype=np.int64))
        snap = {
            "elapsed": elapsed,
            "duration": self.cfg.duration,
            "context_switches": m["context_switches"],
            "mm_freed": m["mm_freed"],
            "ipis_sent": m["ipis_sent"],
            "violations": seg.words[H_NVIOL],
        }
        self.state.progress.append(snap)
        return snap

    def _reap(self, seg: Segment, aborted: bool, grace: float) -> None:
        """Wait for every CPU process; kill whatever does not exit in time.

        After a failure or a second signal the machine is told to exit at once, and a CPU that
        does not is stopped (SIGTERM would wait for a SIGCONT) or blocked on a lock a dead CPU
        held: it gets SIGKILL after a short grace. A drained machine has nothing left to say (the
        report is in the segment): its CPUs are killed at once, unless they write profiles as
        they exit. Killing is what keeps a run of hundreds of CPUs within its deadline."""
        seg.words[H_PHASE] = PHASE_EXIT
        if aborted or not self.state.drained:  # a failure, a second signal, or a signal during the boot
            deadline = time.monotonic() + grace
        elif self.profile_dir is not None:
            deadline = time.monotonic() + EXIT_TIMEOUT_S
        else:
            deadline = 0.0
        for p in self.procs:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in self.procs:  # every signal first, then the waits: the host tears them down in parallel
            if p.is_alive():
                p.kill()
        for p in self.procs:
            p.join()
        for p in self.procs:
            p.close()


def _host_cores() -> int:
    return len(os.sched_getaffinity(0))


def run(cfg: RunConfig, progress: Callable[[dict[str, float]], None] | None = None, profile_dir: str | None = None) -> Report:
    return Runner(cfg, progress, profile_dir).run()
