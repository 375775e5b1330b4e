"""The runner: boots the CPUs, supervises them, drains the machine and collects the report.

Lifecycle of a run (the header's phase word): BOOT (CPUs attach and report ready) -> RUN (the
workload for ``duration`` seconds) -> DRAIN (no new work; user tasks exit, kernel threads let
go of their mms, idle CPUs leave their lazy mms for init_mm) -> EXIT. After EXIT the oracle's
leak check runs on the quiet machine.

Every CPU process is reaped on every path: normal end, a violation, Ctrl-C or SIGTERM (the
run drains and still reports; a second signal stops at once), and a CPU that dies, hangs or loses
an IPI (the watchdog, ``emu/watchdog.py``, names the stalled CPU and what it was doing).
CPU processes die with the runner (``PR_SET_PDEATHSIG``), and the segment is unlinked once,
by the runner, whatever happened.
"""

from __future__ import annotations

import cProfile
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from emu.arch import ARCHES
from emu.atomics import make_locks
from emu.config import RunConfig
from emu.cpu import EXIT_HARNESS, Cpu
from emu.drivers import Perturbation
from emu.irq import make_doorbells
from emu.layout import (
    C_ACTIVE_MM,
    C_DRAIN_PASS,
    C_STATE,
    CPU_QUIESCED,
    H_KTHREAD_MMS,
    H_LIVE_USERS,
    H_NCPUS,
    H_NMM,
    H_NTASK,
    H_NVIOL,
    H_PHASE,
    H_READY,
    INIT_MM,
    M_COUNT,
    M_GEN,
    M_STATE,
    M_USERS,
    MM_LIVE,
    PHASE_DRAIN,
    PHASE_EXIT,
    PHASE_RUN,
    Layout,
)
from emu.memwatch import RssSampler
from emu.report import Report, collect, sum_counters
from emu.shm import Segment, SegmentError, sweep_stale
from emu.strategies import resolve
from emu.watchdog import Watchdog, describe_cpu, lost_ipi

PR_SET_PDEATHSIG = 1
BOOT_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 5.0
FAIL_FAST_GRACE_S = 0.3
ABORT_GRACE_S = 0.5  # after a failure: CPUs that do not leave at once are stopped or stuck, SIGKILL them


class HarnessError(RuntimeError):
    """The machine itself failed: a CPU died or hung, or booting failed."""


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
) -> None:
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the runner decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    seg.check()
    machine = Cpu(cpu, cfg, layout, seg, locks, doorbells)
    if profile_dir is None:
        sys.exit(machine.main())
    profile = cProfile.Profile()
    status = profile.runcall(machine.main)
    profile.dump_stats(os.path.join(profile_dir, f"cpu{cpu}.prof"))
    sys.exit(status)


@dataclass
class RunState:
    """What the runner learned along the way, for the report."""

    boot_s: float = 0.0
    run_s: float = 0.0
    drain_s: float = 0.0
    t_run_ns: int = 0
    interrupted: str = ""
    stopped_early: str = ""
    harness_error: str = ""
    progress: list[dict[str, float]] = field(default_factory=list)
    rss: dict[str, object] = field(default_factory=dict)
    drained: bool = False  # the drain finished: only then is an mm still alive a leak


def layout_for(cfg: RunConfig) -> Layout:
    strat = resolve(cfg.scheme)
    arch = ARCHES[cfg.arch]
    w = cfg.workload
    return Layout.for_run(cfg.cpus, w.live_procs(cfg.cpus), w.threads, w.kthreads, tuple(strat.counters) + tuple(arch.counters))


class Runner:
    def __init__(self, cfg: RunConfig, progress: Callable[[dict[str, float]], None] | None = None, profile_dir: str | None = None) -> None:
        self.cfg = cfg
        self.profile_dir = profile_dir  # each CPU runs under cProfile and writes cpuN.prof there
        self.layout = layout_for(cfg)
        self.progress = progress
        self.state = RunState()
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self._signals = 0
        self.watchdog: Watchdog | None = None
        self.rss: RssSampler | None = None

    # -- signals ---------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals += 1
        self.state.interrupted = signal.Signals(signum).name
        if self._signals > 1:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, skip the drain

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> Report:
        sweep_stale()
        seg = Segment(self.layout.nbytes)
        ctx = multiprocessing.get_context("fork")
        try:
            locks = make_locks(ctx)
            doorbells = make_doorbells(ctx, self.cfg.cpus)
        except OSError as e:  # sem_open: the semaphores live in /dev/shm too
            seg.unlink()
            raise SegmentError(f"cannot create the lock semaphores in /dev/shm: {e.strerror or e}") from e
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            aborted = True
            try:
                self._boot_and_run(seg, ctx, locks, doorbells)
                aborted = False
            except KeyboardInterrupt:
                self.state.interrupted = self.state.interrupted or "SIGINT"
            except HarnessError as e:
                self.state.harness_error = str(e)
            finally:
                self._reap(seg, aborted)
            if self.rss:
                self.state.rss = self.rss.summary()
            return collect(self.cfg, self.layout, seg, self.state)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            seg.unlink()

    def _boot_and_run(self, seg: Segment, ctx: multiprocessing.context.BaseContext, locks: list, doorbells: list) -> None:  # type: ignore[type-arg]
        w, lay, cfg = seg.words, self.layout, self.cfg
        w[H_NCPUS], w[H_NMM], w[H_NTASK] = lay.ncpus, lay.nmm, lay.ntask
        init = lay.mm_base  # slot 0: init_mm, generation 1, never freed
        w[init + M_GEN], w[init + M_STATE], w[init + M_USERS], w[init + M_COUNT] = 1, MM_LIVE, 1, 1
        t0 = time.monotonic()
        for c in range(cfg.cpus):
            args = (c, cfg, lay, seg, locks, doorbells, os.getpid(), self.profile_dir)
            p = ctx.Process(target=_cpu_entry, args=args, name=f"lazytlb-cpu{c}", daemon=True)
            try:
                p.start()
            except OSError as e:  # fork: EAGAIN at the process limit, ENOMEM
                raise HarnessError(f"cannot start cpu {c}: {e.strerror or e}") from e
            self.procs.append(p)
        while w[H_READY] < cfg.cpus:
            self._check_children(seg)
            if time.monotonic() - t0 > BOOT_TIMEOUT_S:
                raise HarnessError(f"only {w[H_READY]} of {cfg.cpus} CPUs came up within {BOOT_TIMEOUT_S:.0f}s")
            if self.state.interrupted:
                return
            time.sleep(0.002)
        self.state.boot_s = time.monotonic() - t0
        self.state.t_run_ns = time.monotonic_ns()
        w[H_PHASE] = PHASE_RUN
        t_run = time.monotonic()
        self.watchdog = Watchdog(lay, w, cfg.watchdog, t_run)
        self.rss = RssSampler(os.getpid(), [p.pid for p in self.procs if p.pid is not None])
        try:
            self._supervise(seg, t_run)
        finally:
            self.state.run_s = time.monotonic() - t_run
        self._drain(seg)

    def _supervise(self, seg: Segment, t_run: float) -> None:
        sentinels = [p.sentinel for p in self.procs]
        perturb = Perturbation(self.cfg, self.layout, seg.words, [p.pid for p in self.procs if p.pid])
        next_tick = t_run
        end = t_run + self.cfg.duration
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
                wait = min(0.1, end - now, max(0.0, perturb.deadline() - now))
                if multiprocessing.connection.wait(sentinels, timeout=wait):
                    self._check_children(seg)
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
        arr = np.frombuffer(seg.buf, dtype=np.int64)
        states = arr[lay.cpu_base + C_STATE : lay.cpu_base + lay.ncpus * 24 : 24]
        actives = arr[lay.cpu_base + C_ACTIVE_MM : lay.cpu_base + lay.ncpus * 24 : 24]
        if self.watchdog:
            self.watchdog.touch(t0)
        passes = arr[lay.cpu_base + C_DRAIN_PASS : lay.cpu_base + lay.ncpus * 24 : 24]
        settled_at = None  # each CPU's pass count when the machine was first seen quiet
        try:
            while True:
                self._check_children(seg)
                self._check_stalls(time.monotonic())
                quiet = w[H_LIVE_USERS] == 0 and w[H_KTHREAD_MMS] == 0
                if quiet and (states == CPU_QUIESCED).all() and (actives == INIT_MM).all():
                    # A reference parked on a CPU after it quiesced (by an __mmput that was still
                    # running) is dropped at its next settling pass: wait for one more on every CPU.
                    if settled_at is None:
                        settled_at = passes.copy()
                    elif (passes > settled_at).all():
                        break
                else:
                    settled_at = None
                if time.monotonic() - t0 > DRAIN_TIMEOUT_S:
                    busy = [c for c in range(lay.ncpus) if states[c] != CPU_QUIESCED]
                    raise HarnessError(
                        f"the machine did not drain within {DRAIN_TIMEOUT_S:.0f}s: "
                        f"{w[H_LIVE_USERS]} user tasks alive, CPUs not idle: {busy[:8]}"
                    )
                time.sleep(0.005)
        finally:
            del states, actives, passes, arr
        self.state.drain_s = time.monotonic() - t0
        self.state.drained = True
        w[H_PHASE] = PHASE_EXIT

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

    def _reap(self, seg: Segment, aborted: bool) -> None:
        """Wait for every CPU process; terminate, then kill, whatever does not exit.

        After a failure or a second signal the machine is told to exit at once, and a CPU that
        does not is stopped (SIGTERM would wait for a SIGCONT) or blocked on a lock a dead CPU
        held: it gets SIGKILL after a short grace."""
        if aborted:
            seg.words[H_PHASE] = PHASE_EXIT
        deadline = time.monotonic() + (ABORT_GRACE_S if aborted else EXIT_TIMEOUT_S)
        for p in self.procs:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in self.procs:
            if p.is_alive():
                p.kill() if aborted else p.terminate()
        for p in self.procs:
            p.join(1.0)
            if p.is_alive():
                p.kill()
                p.join()
        for p in self.procs:
            p.close()


def run(cfg: RunConfig, progress: Callable[[dict[str, float]], None] | None = None, profile_dir: str | None = None) -> Report:
    return Runner(cfg, progress, profile_dir).run()
