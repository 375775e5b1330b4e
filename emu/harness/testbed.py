"""A small emulated machine for tests and litmus patterns: run one function per CPU process.

``Testbed`` builds the same segment, locks and ``Cpu`` objects as a real run, boots each CPU
(interrupt handlers installed, idle on init_mm), waits until all are up, then runs the given
function on each and returns what each returned. Nothing of the scheduler loop runs unless the
function calls it, so a test drives exactly the primitives it is about. ``local_cpu`` gives an
in-process ``Cpu`` for single-CPU unit tests (no signals, no processes).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from emu.harness.config import RunConfig
from emu.harness.parts import parts_for
from emu.harness.runner import _die_with_parent, layout_for
from emu.kernel.cpu import Cpu
from emu.machine.atomics import make_locks
from emu.machine.irq import make_doorbells
from emu.machine.layout import H_PHASE, H_READY, M_COUNT, M_GEN, M_STATE, M_USERS, MM_LIVE, PHASE_EXIT, PHASE_RUN
from emu.machine.shm import Segment

CpuFn = Callable[[Cpu], Any]


class TestbedError(RuntimeError):
    pass


class Testbed:
    __test__ = False  # not a pytest test class

    def __init__(self, cfg: RunConfig | None = None, **overrides: Any) -> None:
        self.cfg = cfg or RunConfig(**overrides)
        self.layout = layout_for(self.cfg)
        self.seg = Segment(self.layout.nbytes)
        w, lay = self.seg.words, self.layout
        init = lay.mm_base
        w[init + M_GEN], w[init + M_STATE], w[init + M_USERS], w[init + M_COUNT] = 1, MM_LIVE, 1, 1
        self.ctx = multiprocessing.get_context("fork")
        self.locks = make_locks(self.ctx)
        self.doorbells = make_doorbells(self.ctx, self.cfg.cpus)
        self._local: list[Cpu] = []

    def __enter__(self) -> Testbed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._local.clear()
        self.seg.unlink()

    def scratch(self, i: int) -> int:
        """Word offset of shared scratch variable ``i``."""
        return self.layout.scratch_base + i * 8  # one cache line each: no false lock sharing

    @property
    def words(self) -> memoryview:
        return self.seg.words

    def local_cpu(self, cpu: int = 0) -> Cpu:
        """An in-process CPU, booted; IPIs to other CPUs are not available."""
        c = Cpu(cpu, self.cfg, self.layout, self.seg, self.locks, self.doorbells, parts_for(self.cfg))
        c.boot()
        self._local.append(c)
        return c

    def run(self, fns: Sequence[CpuFn], timeout: float = 60.0) -> list[Any]:
        """Run ``fns[i]`` on CPU ``i`` (one process each, all booted first); return their results."""
        n = len(fns)
        if n > self.cfg.cpus:
            raise ValueError(f"{n} functions for {self.cfg.cpus} CPUs")
        w = self.seg.words
        w[H_READY] = 0
        w[H_PHASE] = 0
        pipes, procs = [], []
        for c, fn in enumerate(fns):
            r, s = self.ctx.Pipe(duplex=False)
            p = self.ctx.Process(target=self._child, args=(c, fn, s, os.getpid()), daemon=True)
            p.start()
            s.close()
            pipes.append(r)
            procs.append(p)
        try:
            deadline = time.monotonic() + timeout
            while w[H_READY] < n:
                if time.monotonic() > deadline or any(p.exitcode is not None for p in procs):
                    raise TestbedError("CPUs did not come up")
                time.sleep(0.001)
            w[H_PHASE] = PHASE_RUN
            results = []
            for c, r in enumerate(pipes):
                left = max(0.0, deadline - time.monotonic())
                if not r.poll(left):
                    raise TestbedError(f"cpu{c} did not finish within {timeout}s")
                ok, value = r.recv()
                if not ok:
                    raise TestbedError(f"cpu{c} failed:\n{value}")
                results.append(value)
            return results
        finally:
            w[H_PHASE] = PHASE_EXIT
            for p in procs:
                p.join(2.0)
                if p.is_alive():
                    p.kill()
                    p.join()
                p.close()
            for r in pipes:
                r.close()

    def _child(self, c: int, fn: CpuFn, conn: multiprocessing.connection.Connection, parent: int) -> None:
        _die_with_parent(parent)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            cpu = Cpu(c, self.cfg, self.layout, self.seg, self.locks, self.doorbells, parts_for(self.cfg))
            cpu.install_interrupts()
            cpu.boot()
            w = self.seg.words
            while w[H_PHASE] != PHASE_RUN:
                cpu.idle_wait(0.001)
            conn.send((True, fn(cpu)))
        except BaseException:
            conn.send((False, traceback.format_exc()))
        # stay reachable for IPIs from CPUs still running their function (sleep runs the handler)
        while self.seg.words[H_PHASE] != PHASE_EXIT:
            time.sleep(0.002)
