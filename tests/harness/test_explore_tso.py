"""TSO's early commits as the explorer's decisions (``explore --tso-commits K``): a store buffer's
oldest store may reach memory at any decision where the buffer holds one, at most K times a schedule.

The litmus test is store buffering (SB) driven by the real pieces: the explorer (``explore``), its
policy (``Explore``: the prefix, the record) and ``TsoAtomics`` with no random commit, two CPUs
stepped by a small scheduler in this process. ``x = 1; r0 = y; mb`` || ``y = 1; r1 = x; mb``: the
relaxed outcome ``r0 == r1 == 0`` needs no early commit (both stores wait in their buffers), but
``r0 == r1 == 1``, which SC allows, does: without one each store reaches memory only at its CPU's
barrier, after its load, so the first CPU to load cannot see the other's store. The real machine's
side (a commit carried out by a CPU that does not hold the turn, and its replay) runs on
``switch-flush``."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from emu.harness.explore import SCENARIOS, decisions_of, explore, run_one
from emu.harness.runner import run
from emu.machine.detsched import init_region, make_policy
from emu.machine.layout import H_PHASE, PHASE_RUN, Layout
from emu.machine.memory_model import TsoAtomics
from emu.machine.policies.explore import Explore
from emu.machine.policy import COMMIT, S_BUFFERED, RunStart
from tests.helpers import FreeLock, QuietIrq

ROOT = Path(__file__).resolve().parents[2]
X, Y = 0, 64  # two words on two cache lines
SB = (
    (("store", X), ("load", Y), ("mb", 0)),
    (("store", Y), ("load", X), ("mb", 0)),
)
STEPS = 40


def sb_run(cfg: Any, prefix: tuple[int, ...]) -> tuple[tuple[str, ...], tuple[int, ...], Any]:
    """One schedule of SB: the explorer's policy answers every decision (a CPU, or ``COMMIT | k``)."""
    lay = Layout.for_run(2, 2, 1, 1, (), sched_log=64, policy_area=Explore.area_words(RunStart(ncpus=2, seed=0, steps=STEPS)))
    w = memoryview(bytearray(lay.nbytes)).cast("q")
    policy = make_policy(Explore, w, lay, RunStart(ncpus=2, seed=0, steps=STEPS, prefix=prefix))
    init_region(w, lay, policy, STEPS)
    w[H_PHASE] = PHASE_RUN
    mem = memoryview(bytearray(8 * 128)).cast("q")
    cpus = [TsoAtomics(mem, [FreeLock()], QuietIrq(), seed=c) for c in range(2)]  # type: ignore[arg-type]
    for a in cpus:
        a.commit_only_when_forced()
    pc, regs, current, step = [0, 0], [-1, -1], 0, 0
    while True:
        runnable = [c for c in range(2) if pc[c] < len(SB[c])]
        if not runnable:
            break
        w[lay.sched_base + S_BUFFERED] = sum(1 << c for c in range(2) if cpus[c].buffered())
        step += 1
        c = policy.next_cpu(runnable, current, False, step)
        if c >= COMMIT:
            cpus[c ^ COMMIT].commit_oldest()
            continue
        current = c
        op, word = SB[c][pc[c]]
        pc[c] += 1
        if op == "store":
            cpus[c].WRITE_ONCE(word, 1)
        elif op == "load":
            regs[c] = cpus[c].READ_ONCE(word)
        else:
            cpus[c].smp_mb()
    seen = f"r0={regs[0]} r1={regs[1]}"
    report = SimpleNamespace(verdict="violation", violations=[{"kind": seen}])  # every outcome is kept as one
    return (seen,), policy.record(), report


def test_sb_without_early_commits_never_lets_both_loads_see_the_other_store() -> None:
    ex = explore(SimpleNamespace(memory_model="tso", cpus=2), "sb", 3, run=sb_run, stop_at_violation=False)  # type: ignore[arg-type]
    assert ex.complete and not ex.diverged
    assert ex.outcomes == {("r0=0 r1=0",), ("r0=0 r1=1",), ("r0=1 r1=0",)}  # the relaxed one included


def test_sb_with_one_early_commit_reaches_the_outcome_that_needs_a_store_seen_mid_window() -> None:
    ex = explore(SimpleNamespace(memory_model="tso", cpus=2), "sb", 3, run=sb_run, stop_at_violation=False, tso_commits=1)  # type: ignore[arg-type]
    assert ex.complete and not ex.diverged and ex.reduction == "none"
    assert ("r0=1 r1=1",) in ex.outcomes and len(ex.outcomes) == 4
    both = [answers for answers, seen in ex.runs.items() if seen == ("r0=1 r1=1",)]
    assert both and all(sum(a >= COMMIT for a in answers) == 1 for answers in both)  # each took its one commit


def test_the_first_schedule_with_both_stores_seen_takes_one_preemption_and_one_commit() -> None:
    def only_both(cfg: Any, prefix: tuple[int, ...]) -> tuple[tuple[str, ...], tuple[int, ...], Any]:
        kinds, record, report = sb_run(cfg, prefix)
        return (kinds if kinds == ("r0=1 r1=1",) else ()), record, (report if kinds == ("r0=1 r1=1",) else None)

    cfg = SimpleNamespace(memory_model="tso", cpus=2)
    assert explore(cfg, "sb", 3, run=only_both).verdict == "clean"  # type: ignore[arg-type]
    ex = explore(cfg, "sb", 3, run=only_both, tso_commits=1)  # type: ignore[arg-type]
    assert ex.verdict == "violation" and (ex.found_at, ex.found_commits) == (1, 1)
    assert ex.to_json()["found_at_tso_commits"] == 1 and ex.to_json()["tso_commits"] == 1


# -- the real machine ----------------------------------------------------------------------------
def test_a_commit_by_a_cpu_without_the_turn_is_carried_out_recorded_and_replayed(tmp_path: Path) -> None:
    cfg = SCENARIOS["switch-flush"].cell_config("refcount", "x86-lazy-mask", "", "tso")
    _, rec, _ = run_one(cfg, ())
    _, ds = decisions_of(rec, cfg.cpus)
    # preempt a CPU whose buffer holds a store, then commit that store while the other CPU holds the turn
    i = next(i for i, d in enumerate(ds) if d.buffered >> d.current & 1 and len(d.runnable) > 1)
    _, rec, _ = run_one(cfg, (*(d.chosen for d in ds[:i]), ds[i].current ^ 1))
    _, ds = decisions_of(rec, cfg.cpus)
    j = next(j for j, d in enumerate(ds) if j > i and d.buffered & ~(1 << d.current))
    k = ds[j].current ^ 1
    prefix = (*(d.chosen for d in ds[:j]), COMMIT | k)
    _, rec, report = run_one(cfg, prefix)
    diverged, ds = decisions_of(rec, cfg.cpus)
    assert not diverged and ds[j].chosen == COMMIT | k and ds[j + 1].current == ds[j].current  # the turn stayed
    assert f"sb{k}@{ds[j].step}" in report.schedule["handovers"].split()
    path = tmp_path / "commit.json"
    path.write_text(json.dumps(report.to_json()))
    again = run(dataclasses.replace(cfg, replay=str(path)))
    assert again.schedule == report.schedule and again.events == report.events


def test_no_commit_bound_is_the_exploration_without_early_commits_and_one_adds_schedules() -> None:
    cfg = SCENARIOS["switch-flush"].cell_config("refcount", "x86-lazy-mask", "", "tso")
    none, one = (explore(cfg, "switch-flush", 0, tso_commits=k) for k in (0, 1))
    assert none.complete and one.complete and not none.diverged and not one.diverged
    assert all(a < COMMIT for answers in none.runs for a in answers)
    assert none.schedules < one.schedules and all(sum(a >= COMMIT for a in answers) <= 1 for answers in one.runs)
    assert list(one.runs)[: len(none.runs)] == list(none.runs)  # fewest commits first: the one without, schedule for schedule


def stress(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stress", *args], capture_output=True, text=True, timeout=110, cwd=ROOT)


def test_the_command_says_the_commit_bound_in_its_claim(tmp_path: Path) -> None:
    out = tmp_path / "tso.json"
    args = ("--scenario", "switch-flush", "--arch", "x86-lazy-mask", "--memory-model", "tso", "--preemptions", "0")
    r = stress("explore", *args, "--tso-commits", "1", "--json", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "no violation in any schedule with at most 0 preemptions and 1 early TSO commit:" in r.stdout
    assert "an early commit's independence" in r.stdout  # the reduction is off, and it says why
    doc = json.loads(out.read_text())
    assert doc["complete"] is True and doc["tso_commits"] == 1 and doc["reduction"] == "none"


def test_tso_commits_under_another_model_or_out_of_range_is_one_line() -> None:
    for args, error in (
        (("--scenario", "lazy-exit", "--preemptions", "1", "--tso-commits", "1"), "--memory-model tso"),
        (("--scenario", "lazy-exit", "--memory-model", "tso", "--preemptions", "1", "--tso-commits", "99"), "--tso-commits must be"),
    ):
        r = stress("explore", *args)
        assert r.returncode == 2 and error in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
