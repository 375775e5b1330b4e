"""Deterministic runs of one configuration, one after another, on CPU processes kept alive.

The explorer (``emu.harness.explore``) runs a scenario thousands of times. Forking the CPU
processes, creating the machine's semaphores and mapping a segment for each run costs more than the
run itself, so a session does them once: before each run the runner zeroes the segment (its magic
and run id kept), writes the machine's header and the policy's starting state (``begin``: the
explorer's prefix goes into the segment), and tells every CPU process to go; each builds a fresh
CPU (``emu.kernel.cpu.Cpu``: the Python state of a run lives in it) over the same segment, boots in
turn and runs until the machine has drained, then says it is done. A run that does not end (a
deadlock, a host-side hang) or a CPU process that dies ends the session: the next run starts a new one.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import Any

import numpy as np
import psutil

from emu.checks.oracle import KINDS
from emu.checks.watchdog import describe_cpu
from emu.harness.config import RunConfig
from emu.harness.parts import parts_for
from emu.harness.perturbation import Events
from emu.harness.report import Report, collect, leaked_mms
from emu.harness.runner import HarnessError, RunState, _die_with_parent, begin_policy, layout_for, run_start
from emu.kernel.cpu import Cpu
from emu.machine.atomics import make_locks
from emu.machine.detsched import (
    ERR_DEADLOCK,
    ERR_DRAIN,
    S_DRAIN_AT,
    S_ERROR,
    S_STEP,
    S_STOPPED,
    S_TRUNCATED,
    STOP_FAIL_FAST,
    DetSched,
    describe_deadlock,
    make_policy,
    read_schedule,
)
from emu.machine.irq import make_doorbells
from emu.machine.layout import H_MAGIC, H_PHASE, H_RUN_ID, H_VIOL_KINDS, PHASE_EXIT, Layout
from emu.machine.policies import policy_class
from emu.machine.shm import Segment, sweep_stale


def _session_cpu(
    cpu: int, cfg: RunConfig, layout: Layout, seg: Segment, locks: list, doorbells: list, turns: list,  # type: ignore[type-arg]
    go: Any, done: Any, stop: Any, parent: int,
) -> None:  # fmt: skip
    _die_with_parent(parent)
    # Ctrl-C and a SIGTERM to the whole group reach the CPUs too: the lead decides (it kills them)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})  # blocked since the fork (Session._start)
    # what a run only reads, built once: the parts (classes and their options) and the policy's run
    # description; the perturbation's events too when the run has none (nothing in them then to carry over)
    parts, run, cls = parts_for(cfg), run_start(cfg, None), policy_class(cfg.sched, False)
    events = Events(cfg, layout, seg.words)
    keep_events = not events.on
    while True:
        go.acquire()
        if stop.value:
            os._exit(0)
        seg.check()
        policy = make_policy(cls, seg.words, layout, run)
        if not keep_events:
            events = Events(cfg, layout, seg.words)
        det = DetSched(seg.words, layout, cpu, policy, cfg.fail_fast, turns, events)
        machine = Cpu(cpu, cfg, layout, seg, locks, doorbells, parts, det)
        boot = machine.boot

        def boot_in_turn(det: DetSched = det, boot: Any = boot) -> None:
            det.wait_turn()
            boot()
            det.boot_done()

        machine.boot = boot_in_turn  # type: ignore[method-assign]
        machine.main()
        done.release()


class Session:
    """``run(prefix)`` again and again on the same CPU processes; ``close()`` at the end (or use ``with``)."""

    def __init__(self, cfg: RunConfig) -> None:
        if not cfg.deterministic or cfg.replay:
            raise ValueError("a session runs a deterministic mode's own schedules")
        self.cfg = cfg
        self.layout = layout_for(cfg)
        self.seg: Segment | None = None
        self.procs: list[Any] = []
        self.runs = 0
        self.restarts = 0
        self._failed: Report | None = None  # a failed run's report, collected before its session ended

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        sweep_stale()
        cfg, lay = self.cfg, self.layout
        self.seg = seg = Segment(lay.nbytes)
        ctx = multiprocessing.get_context("fork")
        self.locks = make_locks(ctx)
        self.doorbells = make_doorbells(ctx, cfg.cpus)
        self.turns = make_doorbells(ctx, cfg.cpus)
        self.go = [ctx.Semaphore(0) for _ in range(cfg.cpus)]
        self.done = ctx.Semaphore(0)
        self.stop = ctx.RawValue("i", 0)
        self.arr = np.frombuffer(seg.buf, dtype=np.int64)
        # the CPUs are born with Ctrl-C and SIGTERM blocked, and unblock them once they ignore them: a signal
        # to the group between the fork and their SIG_IGN would otherwise run the lead's handler in a CPU
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            for c in range(cfg.cpus):
                args = (c, cfg, lay, seg, self.locks, self.doorbells, self.turns, self.go[c], self.done, self.stop, os.getpid())
                p = ctx.Process(target=_session_cpu, args=args, name=f"lazytlb-cpu{c}", daemon=True)
                p.start()
                self.procs.append(p)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # a signal held meanwhile reaches the lead now

    def run(self, prefix: tuple[int, ...] = ()) -> tuple[Report, tuple[int, ...]]:
        """One run steered by ``prefix``: its report, and its policy's record (``Policy.record``)."""
        st = self._run(prefix)
        assert self.seg is not None or st.harness_error
        return self._report(st), st.policy_record

    def outcome(self, prefix: tuple[int, ...] = ()) -> tuple[tuple[str, ...], tuple[int, ...], Report | None]:
        """One run steered by ``prefix``, for the explorer: the violation kinds it had (sorted; () none),
        its policy's record, and its report only when it had a violation or failed (a clean run's report
        is never read: building it costs a tenth of a run)."""
        st = self._run(prefix)
        if not st.harness_error:
            arr, lay = self.arr, self.layout
            kinds = tuple(sorted(k for i, k in enumerate(KINDS) if arr[H_VIOL_KINDS + i]))
            if not kinds and not (st.drained and leaked_mms(arr, lay)[0]):
                return (), st.policy_record, None
        report = self._report(st)
        return tuple(sorted(report.violation_counts)), st.policy_record, report

    def _report(self, st: RunState) -> Report:
        if self._failed is not None:
            report, self._failed = self._failed, None
            return report
        assert self.seg is not None
        return collect(self.cfg, self.layout, self.seg, st)

    def _run(self, prefix: tuple[int, ...]) -> RunState:
        if self.seg is None:
            self._start()
        assert self.seg is not None
        seg, lay, cfg = self.seg, self.layout, self.cfg
        w = seg.words
        magic, run_id = w[H_MAGIC], w[H_RUN_ID]
        self.arr[:] = 0
        w[H_MAGIC], w[H_RUN_ID] = magic, run_id
        _init_machine(w, lay)
        policy = begin_policy(cfg, w, lay, None, prefix)
        st = RunState()
        t0 = time.monotonic()
        for g in self.go:
            g.release()
        self.turns[0].release()
        finished = 0
        try:
            last_step, last_change = -1, t0
            while finished < cfg.cpus:
                if self.done.acquire(timeout=0.05):
                    finished += 1
                    continue
                if w[lay.sched_base + S_ERROR]:
                    raise HarnessError(
                        describe_deadlock(w, lay) if w[lay.sched_base + S_ERROR] == ERR_DEADLOCK else "the drain did not end"
                    )
                dead = [c for c, p in enumerate(self.procs) if not p.is_alive()]
                if dead:
                    raise HarnessError(f"cpu {dead[0]} died")
                step, now = w[lay.sched_base + S_STEP], time.monotonic()
                if step != last_step:
                    last_step, last_change = step, now
                elif now - last_change > cfg.watchdog:
                    raise HarnessError(f"no scheduling step for {cfg.watchdog:g}s: {describe_cpu(lay, w, 0)}")
        except HarnessError as e:
            st.harness_error = str(e)
            w[H_PHASE] = PHASE_EXIT
            self._failed = collect(cfg, lay, seg, st)  # before the segment goes with the session
            st.policy_record = policy.record()
            self._kill()  # the CPUs are stuck: the next run starts a new session
            self.restarts += 1
            return st
        base = lay.sched_base
        st.steps = w[base + S_STEP]
        st.run_steps = w[base + S_DRAIN_AT] or st.steps
        st.run_s = st.run_steps * 1e-6
        st.schedule = read_schedule(w, lay, cfg.sched)
        st.schedule_truncated = bool(w[base + S_TRUNCATED])
        st.t_run_ns = -1
        st.total_s = time.monotonic() - t0
        st.policy_record = policy.record()
        if w[base + S_ERROR] == ERR_DRAIN:
            st.harness_error = "the machine did not drain"
        if w[base + S_STOPPED] == STOP_FAIL_FAST:
            st.stopped_early = "stopped at the first violation (--fail-fast)"
        st.drained = w[H_PHASE] == PHASE_EXIT
        self.runs += 1
        return st

    def cpu_seconds(self) -> float:
        """The CPU time (user and system) its CPU processes have used so far, these ones (a session
        restarted after a failed run lost its first processes' time). With the lead's own, it is what a
        schedule costs on a host where nothing else runs: the wall time there, the hand-over being serial."""
        total = 0.0
        for p in self.procs:
            try:
                t = psutil.Process(p.pid).cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system
        return total

    def _kill(self) -> None:
        for p in self.procs:
            if p.is_alive():
                p.kill()
        for p in self.procs:
            p.join()
            p.close()
        self.procs = []
        if self.seg is not None:
            self.seg.unlink()
            self.seg = None

    def close(self) -> None:
        if self.seg is None:
            return
        self.stop.value = 1
        for g in self.go:
            g.release()
        for p in self.procs:
            p.join(2.0)
        self._kill()


def _init_machine(w: memoryview, lay: Layout) -> None:
    from emu.machine.layout import H_NCPUS, H_NMM, H_NTASK, M_COUNT, M_GEN, M_STATE, M_USERS, MM_LIVE

    w[H_NCPUS], w[H_NMM], w[H_NTASK] = lay.ncpus, lay.nmm, lay.ntask
    init = lay.mm_base  # slot 0: init_mm, generation 1, never freed
    w[init + M_GEN], w[init + M_STATE], w[init + M_USERS], w[init + M_COUNT] = 1, MM_LIVE, 1, 1
