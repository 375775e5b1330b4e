"""Helpers for tests that drive the command line as a separate process and check what it left."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psutil
import pytest

from emu.machine.layout import H_PHASE, PHASE_RUN
from emu.machine.shm import SHM_DIR
from tests.conftest import INCONCLUSIVE, segments_of

CMD = [sys.executable, "-m", "stress"]


def stress(*args: str, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=timeout, **kw)


CANNOT_KEEP_UP = "the machine cannot keep up"  # the runner's refusal (CannotKeepUp), in a command's output
KEEP_UP_RETRIES = 2  # as tests/race/test_matrix_races.py's run_given_its_time


def stress_given_its_time(*args: str, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
    """``stress(*args)`` for the race stage: a command whose run the host could not give its time
    (the runner refused or cut it short) runs again with twice the ``--duration``, twice at most;
    refused still, the test is skipped as inconclusive, never failed."""
    argv = list(args)
    for _ in range(KEEP_UP_RETRIES + 1):
        r = stress(*argv, timeout=timeout, **kw)
        refused = [line for line in (r.stdout + r.stderr).splitlines() if CANNOT_KEEP_UP in line]
        if not refused:
            return r
        i = argv.index("--duration") + 1
        argv[i] = f"{float(argv[i]) * 2:g}"
    pytest.skip(f"{INCONCLUSIVE}{refused[0].strip()}")


MIN_OVERLAP = 0.05  # of the iterations: fewer bodies run together, and an absent outcome says nothing


def require_overlap(overlapped: int, iterations: int, what: str) -> None:
    """For a litmus test whose expected outcome did not appear: when the host ran the bodies
    together in fewer than ``MIN_OVERLAP`` of the iterations (``Histogram.overlapped``), the outcome
    had no chance to appear, and the test is skipped as inconclusive instead of failed."""
    if overlapped < MIN_OVERLAP * iterations:
        pytest.skip(f"{INCONCLUSIVE}{what}: the host ran the bodies together in {overlapped} of {iterations} iterations")


def start(*args: str, **kw: Any) -> tuple[subprocess.Popen[str], psutil.Process]:
    p = subprocess.Popen([*CMD, "run", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    return p, psutil.Process(p.pid)


def poll(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    """Wait for a condition with a deadline (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def cpus_of(proc: psutil.Process) -> list[psutil.Process]:
    return [k for k in proc.children() if "resource_tracker" not in " ".join(k.cmdline())]


def wait_for_cpus(proc: psutil.Process, n: int, timeout: float = 30) -> list[psutil.Process]:
    """The runner has its n CPU processes and its segment, and the CPUs have started walking."""

    def ready() -> list[psutil.Process] | None:
        kids = cpus_of(proc)
        return kids if len(kids) >= n and segments_of(proc.pid) else None

    return poll(ready, timeout, "the CPUs to start")


def wait_for_run(proc: psutil.Process, timeout: float = 30) -> None:
    """Poll the run's header (read from /dev/shm, never written) until it is in its RUN phase."""

    def phase() -> int:
        names = segments_of(proc.pid)
        try:
            with open(os.path.join(SHM_DIR, names[0]), "rb") as f:
                f.seek(H_PHASE * 8)
                return int.from_bytes(f.read(8), "little")
        except (IndexError, OSError):
            return -1

    poll(lambda: phase() >= PHASE_RUN, timeout, "the RUN phase")


def semaphores() -> set[str]:
    return {n for n in os.listdir(SHM_DIR) if n.startswith("sem.")}


def assert_nothing_left(pid: int, kids: list[psutil.Process], sems_before: set[str]) -> None:
    """No CPU process, no segment of this runner, and no semaphore it created (they are unlinked at birth)."""
    _, alive = psutil.wait_procs(kids, timeout=5)
    assert alive == [], f"orphan CPU processes: {alive}"
    assert segments_of(pid) == []
    # another test's run may hold a semaphore name for the instant between sem_open and sem_unlink
    poll(lambda: not (semaphores() - sems_before), 5, "no new semaphore names in /dev/shm")
