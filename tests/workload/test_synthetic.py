"""The synthetic workload's driver on its own, against a recording stand-in for the kernel's
services: what a user quantum does follows the knobs, and the draws follow the seed."""

from __future__ import annotations

import random
from dataclasses import replace

from emu.harness.config import Workload
from emu.machine.layout import PHASE_DRAIN, PHASE_RUN
from emu.workload import Synthetic


class Recorder:
    """``TaskKernel`` that records the services a quantum calls."""

    def __init__(self, live: int = 0) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.live = live

    def live_users(self) -> int:
        return self.live

    def do_fork(self, from_kernel: bool = False) -> None:
        self.calls.append(("fork",))

    def munmap(self, task: int, freed_tables: bool) -> None:
        self.calls.append(("munmap", str(freed_tables)))

    def do_exit(self, task: int) -> None:
        self.calls.append(("exit",))

    def schedule_timeout(self, task: int, seconds: float) -> None:
        self.calls.append(("sleep",))

    def do_exec(self, task: int) -> None:
        self.calls.append(("exec",))

    def preempt(self, task: int) -> None:
        self.calls.append(("preempt",))


def quanta(wl: Workload, n: int = 200, seed: int = 1, phase: int = PHASE_RUN, live: int = 0) -> list[tuple[str, ...]]:
    d, k = Synthetic(wl, 4, random.Random(seed)), Recorder(live)
    for _ in range(n):
        d.user_quantum(k, 7, phase)
    return k.calls


def test_every_quantum_ends_in_exactly_one_of_exit_sleep_or_a_preemption() -> None:
    calls = quanta(Workload())
    ends = [c for c in calls if c[0] in ("exit", "sleep", "preempt")]
    assert len(ends) == 200
    assert {c[0] for c in ends} == {"exit", "sleep", "preempt"}  # the default rates reach all three in 200


def test_the_knobs_decide_what_a_quantum_does() -> None:
    assert set(quanta(Workload(p_exit=1.0, p_fork=0.0, p_munmap=0.0))) == {("exit",)}
    assert set(quanta(Workload(p_exit=1e-9, p_block=1.0, p_fork=0.0, p_munmap=0.0))) == {("sleep",)}
    calls = quanta(Workload(p_exit=1e-9, p_block=0.0, p_exec=1.0, p_fork=0.0, p_munmap=0.0))
    assert calls[:2] == [("exec",), ("preempt",)] and set(calls) == {("exec",), ("preempt",)}
    unmaps = [c for c in quanta(Workload(p_munmap=1.0, p_free_tables=0.5)) if c[0] == "munmap"]
    assert len(unmaps) == 200 and {c[1] for c in unmaps} == {"True", "False"}


def test_forks_keep_the_load_at_its_target() -> None:
    wl = Workload(procs=2, threads=3, p_fork=1.0)  # a target of 6 threads
    assert ("fork",) in quanta(wl, live=3)  # room for one more process of 3
    assert ("fork",) not in quanta(wl, live=4)  # 4 + 3 > 6
    assert ("fork",) not in quanta(wl, phase=PHASE_DRAIN)  # the load has ended


def test_every_task_exits_once_the_load_ends() -> None:
    assert set(quanta(Workload(p_exit=1e-9, p_fork=0.0, p_munmap=0.0), phase=PHASE_DRAIN)) == {("exit",)}


def test_a_seed_gives_one_load_and_another_seed_another() -> None:
    wl = replace(Workload(), p_munmap=0.2)
    assert quanta(wl, seed=5) == quanta(wl, seed=5)
    assert quanta(wl, seed=5) != quanta(wl, seed=6)
