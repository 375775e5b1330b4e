"""The systematic explorer (``emu/harness/explore.py``, ``--sched explore``, ``stress explore``):
scripted scenarios, every schedule up to a preemption bound, the reduction checked against the
unreduced exploration, the schedules replayed, and the CPU processes kept alive between them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from emu.harness.config import ConfigError
from emu.harness.explore import SCENARIOS, Scenario, decisions_of, explore, independent, load_scenario, run_one
from emu.harness.session import Session
from emu.machine.policies.explore import default_choice, is_preemption, pack, unpack
from emu.machine.policy import ACCESS_READ_ALL, ACCESS_UNKNOWN
from emu.strategies import MUTANTS
from emu.workload.scripted import parse_script

ROOT = Path(__file__).resolve().parents[2]


def cell_config(scenario: Scenario, strategy: str, arch: str, fix: str):  # type: ignore[no-untyped-def]
    mutant = None
    if strategy in MUTANTS:
        strategy, mutant = MUTANTS[strategy].mutant_of or strategy, strategy
    return scenario.config(strategy, arch, fix, mutant=mutant)


# -- the pieces ---------------------------------------------------------------------------------
def test_a_decision_packs_and_unpacks() -> None:
    assert unpack(pack((0, 2, 3), 2, 3, True, 1234)) == ((0, 2, 3), 2, 3, True, 1234)


def test_the_default_never_preempts_and_a_preemption_is_taking_the_turn_from_a_cpu_that_may_go_on() -> None:
    assert default_choice((0, 1, 2), 1, False) == 1
    assert default_choice((0, 2), 1, True) == 2
    assert default_choice((0, 1), 1, True) == 0  # yielding: the next one after it
    assert is_preemption((0, 1), 1, 0, False)
    assert not is_preemption((0, 1), 1, 0, True)  # it yields: no preemption
    assert not is_preemption((0,), 1, 0, False)  # it cannot go on


def test_two_accesses_conflict_on_one_line_when_one_writes() -> None:
    def acc(word: int, write: bool) -> int:
        return (word + 1) << 1 | write

    assert independent(acc(3, False), acc(3, False))
    assert not independent(acc(3, True), acc(3, False))
    assert not independent(acc(3, True), acc(4, False))  # the same line
    assert independent(acc(3, True), acc(3 + 64, True))
    assert not independent(ACCESS_UNKNOWN, acc(3, False))
    assert independent(ACCESS_READ_ALL, acc(3, False)) and not independent(ACCESS_READ_ALL, acc(3, True))


@pytest.mark.parametrize(
    "text, error",
    [
        ("0:fork;5:run", "CPU below 2"),
        ("0:jump", "expected one of"),
        ("0:clone=9", "no CPU 9"),
        ("0:sleep", "takes a number"),
        ("run", "CPU:"),
    ],
)
def test_a_bad_script_is_one_line(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_script(text, 2)


def test_every_shipped_scenario_is_valid() -> None:
    for sc in SCENARIOS.values():
        sc.check()
        assert sc.cells, sc.name


def test_a_user_scenario_file_loads_and_a_bad_one_is_one_line(tmp_path: Path) -> None:
    good = tmp_path / "mine.json"
    good.write_text(json.dumps({"name": "mine", "cpus": 2, "script": "0:fork,exit", "steps": 300}))
    sc = load_scenario(str(good))
    assert (sc.name, sc.cpus, sc.steps, sc.kthreads) == ("mine", 2, 300, 1)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "bad", "cpus": 2, "script": "0:fly"}))
    with pytest.raises(ConfigError, match="expected one of"):
        load_scenario(str(bad))
    with pytest.raises(ConfigError, match="unknown scenario"):
        load_scenario("no-such")


# -- the explorer -------------------------------------------------------------------------------
def test_a_prefix_replays_the_same_schedule_on_a_new_machine_and_on_a_kept_one() -> None:
    cfg = SCENARIOS["lazy-exit"].config("refcount", "x86")
    _, rec, fresh = run_one(cfg, (1,))
    assert fresh is not None
    with Session(cfg) as session:
        again = [session.run((1,)) for _ in range(2)]
        light = session.outcome((1,))
    assert all(r == rec for _, r in again) and light == ((), rec, None)  # a clean run: no report built
    assert all(rep.schedule == fresh.schedule and rep.metrics["context_switches"] == fresh.metrics["context_switches"] for rep, _ in again)


def test_a_violating_run_comes_back_with_its_report_and_every_step_of_the_run_phase_is_recorded() -> None:
    cfg = cell_config(SCENARIOS["lazy-exit"], "shoot-lazies", "arm64", "")
    with Session(cfg) as session:
        kinds, rec, report = session.outcome(())
    assert report is not None and kinds == tuple(sorted(report.violation_counts)) and "freed_while_lazy" in kinds
    _, steps = decisions_of(rec, cfg.cpus, every_step=True)
    branching = [d for d in steps if len(d.runnable) > 1]
    assert 0 < len(branching) < len(steps)  # steps only one CPU could take are recorded too (the reduction's races)
    assert [d.step for d in steps] == sorted(d.step for d in steps)


def test_bound_zero_is_the_schedules_without_preemption_and_each_bound_adds_schedules() -> None:
    cfg = SCENARIOS["lazy-exit"].config("refcount", "x86")
    counts = [explore(cfg, "lazy-exit", k).schedules for k in (0, 1)]
    assert 1 <= counts[0] < counts[1]


def test_the_reduced_exploration_finds_what_the_unreduced_one_finds_in_a_subset() -> None:
    """Brute force: every schedule with at most 2 preemptions, equivalent ones too; the sleep sets
    must visit some of those schedules only, and meet every distinct outcome they meet."""
    cfg = SCENARIOS["lazy-exit"].config("luto-hazard", "arm64")
    brute = explore(cfg, "lazy-exit", 2, reduce=False, stop_at_violation=False)
    reduced = explore(cfg, "lazy-exit", 2, reduce=True, stop_at_violation=False)
    assert brute.complete and reduced.complete
    assert set(reduced.runs) <= set(brute.runs) and reduced.schedules <= brute.schedules
    assert reduced.outcomes == brute.outcomes
    broken = SCENARIOS["lazy-exit"].config("shoot-lazies", "arm64")
    b, r = (explore(broken, "lazy-exit", 1, reduce=red, stop_at_violation=False) for red in (False, True))
    assert r.outcomes == b.outcomes and set(r.runs) <= set(b.runs)


def test_dpor_finds_every_outcome_the_unreduced_exploration_finds_in_fewer_schedules() -> None:
    """b3-rescan under luto-rfc without the re-read has two outcomes within one preemption (clean, and
    B3's freed_while_lazy with its use_after_free): DPOR meets both, running a subset of the schedules,
    fewer of them; under the bound it drops reversals, and so says nothing for every schedule."""
    sc = SCENARIOS["b3-rescan"]
    cfg = sc.config("luto-rfc", "arm64", B3_FIXES)
    brute = explore(cfg, sc.name, 1, reduce="none", stop_at_violation=False)
    dpor = explore(cfg, sc.name, 1, reduce="dpor", stop_at_violation=False)
    assert brute.complete and not dpor.complete and "dropped" in dpor.stopped and dpor.diverged == 0
    assert dpor.outcomes == brute.outcomes and len(brute.outcomes) == 2
    assert set(dpor.runs) <= set(brute.runs) and dpor.schedules < brute.schedules
    assert dpor.dropped > 0 and dpor.to_json()["reduction"] == "dpor"


def test_dpor_that_dropped_reversals_under_the_bound_claims_nothing() -> None:
    """DPOR with a preemption bound is not complete for that bound: a reversal it dropped may be the
    only way to a schedule within it; the command then says so instead of "no violation in any schedule"."""
    r = stress("explore", "--scenario", "lazy-exit", "--strategy", "refcount", "--arch", "x86", "--preemptions", "0", "--reduce", "dpor")
    assert r.returncode == 0, r.stderr
    assert "NOT A PROOF: dpor with the bound dropped" in r.stdout and "no violation in any schedule" not in r.stdout


@pytest.mark.parametrize("cell", [c for c in SCENARIOS["lazy-exit"].cells if c[3] != "clean"], ids=lambda c: "@".join(c[:3]))
def test_each_broken_cell_of_the_lazy_exit_scenario_is_found(cell: tuple[str, str, str, str]) -> None:
    strategy, arch, fix, kind = cell[:4]
    ex = explore(cell_config(SCENARIOS["lazy-exit"], strategy, arch, fix), "lazy-exit", 2)
    assert ex.verdict == "violation" and ex.report is not None
    assert kind in ex.report.violation_counts
    assert ex.found_at == 0  # the scenario's plain order already has it


@pytest.mark.parametrize("cell", [c for c in SCENARIOS["lazy-exit"].cells if c[3] == "clean"], ids=lambda c: "@".join(c[:3]))
def test_each_correct_cell_of_the_lazy_exit_scenario_is_clean_in_every_schedule_up_to_two_preemptions(
    cell: tuple[str, str, str, str],
) -> None:
    strategy, arch, fix, _ = cell[:4]
    ex = explore(cell_config(SCENARIOS["lazy-exit"], strategy, arch, fix), "lazy-exit", 2)
    assert ex.complete and ex.verdict == "clean" and ex.diverged == 0
    assert ex.by_bound.get(2, 0) > 0


def test_a_budget_that_runs_out_is_not_complete() -> None:
    cfg = SCENARIOS["lazy-exit"].config("refcount", "x86")
    ex = explore(cfg, "lazy-exit", 2, budget=3)
    assert not ex.complete and ex.schedules == 3 and "budget" in ex.stopped


# -- the command --------------------------------------------------------------------------------
def stress(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stress", *args], capture_output=True, text=True, timeout=110, cwd=ROOT)


def test_the_command_writes_the_json_and_a_violation_replays_and_shrinks(tmp_path: Path) -> None:
    out = tmp_path / "b1.json"
    r = stress(
        "explore", "--scenario", "lazy-exit", "--strategy", "shoot-lazies", "--arch", "arm64", "--preemptions", "1", "--json", str(out)
    )
    assert r.returncode == 1, r.stderr
    doc = json.loads(out.read_text())
    assert doc["verdict"] == "violation" and doc["complete"] is False and doc["preemptions"] == 1 and doc["schedules"] >= 1
    assert doc["kind"] in ("use_after_free", "freed_while_lazy")
    assert "cpu0" in r.stdout and "VIOLATION" in r.stdout  # the story, in columns
    replay = stress("run", "--replay", str(out), "--quiet")
    assert replay.returncode == 1 and "VIOLATION" in replay.stdout


def test_the_command_says_no_violation_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "clean.json"
    r = stress("explore", "--scenario", "lazy-exit", "--strategy", "refcount", "--arch", "x86", "--preemptions", "1", "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert "no violation in any schedule with at most 1 preemption:" in r.stdout
    doc = json.loads(out.read_text())
    assert doc["complete"] is True and doc["verdict"] == "clean" and doc["kind"] is None
    r = stress("explore", "--scenario", "lazy-exit", "--preemptions", "2", "--budget", "2", "--quiet")
    assert r.returncode == 0 and "NOT COMPLETE" in r.stdout and "no violation in any" not in r.stdout


@pytest.mark.parametrize(
    "args, error",
    [
        (["--scenario", "nope", "--preemptions", "1"], "unknown scenario"),
        (["--scenario", "lazy-exit", "--preemptions", "-1"], "--preemptions"),
        (["--scenario", "lazy-exit", "--preemptions", "1", "--strategy", "nope"], "strategy"),
    ],
)
def test_bad_explore_input_is_one_line_and_status_2(args: list[str], error: str) -> None:
    r = stress("explore", *args)
    assert r.returncode == 2 and error in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# -- B3 ------------------------------------------------------------------------------------------
B3_FIXES = "drop-check,scan-online,integrated"  # every fix of the ladder but the 2022 re-read


def test_b3_is_found_at_one_preemption_and_not_without() -> None:
    """luto-rfc with every fix but the re-read: no schedule without a preemption shows B3, and the
    exploration (fewest preemptions first) finds it in a schedule with one."""
    sc = SCENARIOS["b3-rescan"]
    cfg = sc.config("luto-rfc", "arm64", B3_FIXES)
    none = explore(cfg, sc.name, 0)
    assert none.complete and none.verdict == "clean"
    ex = explore(cfg, sc.name, 2)
    assert ex.verdict == "violation" and ex.kind == "freed_while_lazy" and ex.found_at == 1
    assert ex.report is not None
    kinds = [e["kind"] for e in ex.report.events["timelines"][0]]
    assert "displace mm_to_mmdrop" in kinds  # a scan's xchg displaced another mm parked there: B3's signature


def test_luto_hazard_is_clean_in_every_schedule_of_the_b3_scenario_with_one_preemption() -> None:
    sc = SCENARIOS["b3-rescan"]
    ex = explore(sc.config("luto-hazard", "arm64"), sc.name, 1)
    assert ex.complete and ex.verdict == "clean" and ex.by_bound.get(1, 0) > 0


# -- hazptr's busy-wait ---------------------------------------------------------------------------
def test_hazptr_retire_busy_enters_the_busy_wait_and_never_spins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every schedule with at most two preemptions: the scan finds cpu0's slot naming the mm and
    enters the wait, and the retire IPI (sent with wait=True) has cleared the slot before the wait
    reads it again: the loop body never runs. Counted in the CPU processes, one file a process."""
    from emu.strategies import resolve

    hazptr = resolve("hazptr")
    plain = hazptr.busy_wait  # type: ignore[attr-defined]

    def busy_wait(self: Any, slot: int, mm: int, cpu: int) -> None:
        spins = 0
        relax = self.c.cpu_relax

        def counting() -> None:
            nonlocal spins
            spins += 1
            relax()

        self.c.cpu_relax = counting
        try:
            plain(self, slot, mm, cpu)
        finally:
            self.c.cpu_relax = relax
            with open(tmp_path / str(os.getpid()), "a", encoding="utf-8") as f:
                f.write(f"{spins}\n")

    monkeypatch.setattr(hazptr, "busy_wait", busy_wait)
    sc = SCENARIOS["hazptr-retire-busy"]
    ex = explore(sc.config("hazptr", "x86", "skip-init-mm,drop-irqs-off"), sc.name, 2, reduce="none", stop_at_violation=False)
    assert ex.complete and ex.outcomes == {()}
    spins = [int(x) for f in tmp_path.iterdir() for x in f.read_text().split()]
    assert len(spins) >= ex.schedules  # each schedule enters the wait
    assert sum(spins) == 0
