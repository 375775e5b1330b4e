"""``python -m stress.instructions``: machine instructions per emulated context switch, under valgrind.

Timings on a shared 2-core machine move by tens of percent between runs, which hides the few
percent a hot-path change is worth. Instructions do not: one in-process CPU (a ``Testbed``
machine, saturating load, sleeps of zero length so that no wall-clock timer decides the path)
runs under ``valgrind --tool=cachegrind`` twice, to two switch counts, and the difference of the
instruction totals over the difference of the switch counts is the cost of one switch, start-up
excluded. With the hash seed fixed, a rerun of the same tree gives the same figure within a few
instructions, so an A/B of two trees is exact to well under 1%, if both run the same way: how
the package is imported (an editable install, or ``PYTHONPATH``) alone moves the figure by
about 1.5%, so compare two worktrees, each through ``PYTHONPATH``.

It counts instructions, not time: cache misses, lines bouncing between cores and the host's
scheduler are not in it (``bench`` measures those).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys

from emu.harness.config import ConfigError, RunConfig, Workload
from emu.harness.testbed import Testbed
from emu.machine.layout import H_PHASE, PHASE_EXIT, PHASE_RUN

PROCS = 8  # live processes on the one CPU: the bench's saturating load


def child(switches: int, arch: str, strategy: str) -> None:
    """Run one CPU until ``switches`` context switches; print the count reached."""
    cfg = RunConfig(cpus=1, seed=1, arch=arch, strategy=strategy, workload=Workload(procs=PROCS, sleep_us=0))
    with Testbed(cfg) as tb:
        cpu = tb.local_cpu(0)
        cpu.install_interrupts()
        tb.words[H_PHASE] = PHASE_RUN

        def tick(signum: int, frame: object) -> None:
            if cpu.w[cpu.c_switches] >= switches:
                tb.words[H_PHASE] = PHASE_EXIT

        signal.signal(signal.SIGVTALRM, tick)  # CPU time: the same under valgrind's slowdown
        signal.setitimer(signal.ITIMER_VIRTUAL, 0.001, 0.001)
        cpu.run()
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        print(f"switches {cpu.w[cpu.c_switches]}")


def count(switches: int, arch: str, strategy: str) -> tuple[int, int]:
    """(instructions, switches) of one child run under cachegrind."""
    env = dict(os.environ, PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1")
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    cmd += [sys.executable, "-m", "stress.instructions", "--child", str(switches), "--arch", arch, "--scheme", strategy]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    refs = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    reached = re.search(r"switches (\d+)", out.stdout)
    if not refs or not reached:
        raise RuntimeError(f"unexpected valgrind output:\n{out.stderr[-2000:]}")
    return int(refs.group(1).replace(",", "")), int(reached.group(1))


def per_switch(switches: int, arch: str = "x86", strategy: str = "refcount") -> float:
    """Instructions per context switch: two runs, ``switches // 9`` and ``switches``, differenced."""
    i1, s1 = count(max(1, switches // 9), arch, strategy)
    i2, s2 = count(switches, arch, strategy)
    if s2 <= s1:
        raise RuntimeError(f"the longer run reached {s2} switches, the shorter {s1}")
    return (i2 - i1) / (s2 - s1)


def main(argv: list[str] | None = None) -> int:
    from emu.arch import ARCHES
    from emu.strategies import STRATEGIES

    p = argparse.ArgumentParser(prog="python -m stress.instructions", description=__doc__.splitlines()[0])
    p.add_argument("--switches", type=int, default=45_000, help="context switches of the longer run (default: 45000)")
    p.add_argument("--arch", default="x86", help="architecture model (default: x86)")
    p.add_argument("--scheme", default="refcount", help="scheme (default: refcount)")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    try:
        if ns.arch not in ARCHES:
            raise ConfigError(f"unknown architecture '{ns.arch}' (valid: {', '.join(ARCHES)})")
        if ns.scheme not in STRATEGIES:
            raise ConfigError(f"unknown scheme '{ns.scheme}' (valid: {', '.join(STRATEGIES)})")
        if not 900 <= ns.switches <= 10_000_000:
            raise ConfigError(f"--switches must be between 900 and 10000000, got {ns.switches}")
        if ns.child is not None:
            child(ns.child, ns.arch, ns.scheme)
            return 0
        if not shutil.which("valgrind"):
            raise ConfigError("valgrind is not installed: this count runs the CPU under valgrind's cachegrind")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n = per_switch(ns.switches, ns.arch, ns.scheme)
    print(f"{n:,.0f} instructions per context switch ({ns.arch}, {ns.scheme}, one CPU, {PROCS} processes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
