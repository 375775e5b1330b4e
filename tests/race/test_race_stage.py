"""The race stage's own rules, checked in the unit stage (nothing here is a race): a run the host
cannot give its time is retried with more, then reported inconclusive, never failed or passed; the
stage's summary lists every cell with its outcome and seconds."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from emu.harness.config import RunConfig
from emu.harness.report import Report
from tests.race import test_matrix_races as races

pytest_plugins = ["pytester"]

REFUSED = "the machine cannot keep up: draining and stopping 8 CPU processes takes about 9.9s on 2 host cores, and ..."


def _report(error: str | None) -> Report:
    return Report(
        config={}, metrics={}, violations=[], violation_counts={}, verdict="clean", status=0, harness={"error": error}, command=""
    )


def test_a_refused_run_runs_again_with_twice_the_time_then_is_inconclusive(monkeypatch: pytest.MonkeyPatch) -> None:
    durations: list[float] = []

    def refuse(cfg: RunConfig) -> Report:
        durations.append(cfg.duration)
        return _report(REFUSED)

    monkeypatch.setattr(races, "run", refuse)
    with pytest.raises(pytest.skip.Exception, match=r"^inconclusive: the machine cannot keep up"):
        races.run_given_its_time(RunConfig(cpus=8, duration=2.0))
    assert durations == [2.0, 4.0, 8.0]


def test_a_run_refused_once_counts_when_the_longer_one_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [_report(REFUSED), _report(None)]
    monkeypatch.setattr(races, "run", lambda cfg: answers.pop(0))
    assert races.run_given_its_time(RunConfig(duration=1.0)).harness["error"] is None and answers == []


def test_another_harness_failure_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[RunConfig] = []
    monkeypatch.setattr(races, "run", lambda cfg: calls.append(cfg) or _report("cpu 2 died (exit status -9)"))
    assert races.run_given_its_time(replace(RunConfig(), duration=1.0)).harness["error"] == "cpu 2 died (exit status -9)"
    assert len(calls) == 1  # a failure of the machine itself is the test's to judge


def test_the_stage_summary_counts_an_inconclusive_cell_apart(pytester: pytest.Pytester) -> None:
    conftest = Path(__file__).parent.parent / "conftest.py"
    pytester.makeconftest(conftest.read_text())
    pytester.makepyfile(
        test_cells="""
import pytest
from conftest import INCONCLUSIVE
pytestmark = pytest.mark.race

def test_held():
    pass

def test_refused():
    pytest.skip(INCONCLUSIVE + "the machine cannot keep up: 64 CPUs")

def test_missed():
    assert False, "not caught"
"""
    )
    pytester.makeini("[pytest]\nmarkers =\n    race: race\n")
    out = pytester.path / "race.json"
    result = pytester.runpytest_subprocess("-m", "race", "--race-report", str(out), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*inconclusive*test_cells.py::test_refused*(inconclusive: the machine cannot keep up: 64 CPUs)",
            "race stage: 3 cells, 1 passed, 1 failed, 1 inconclusive *",
        ]
    )
    doc = json.loads(out.read_text())
    assert doc["counts"] == {"passed": 1, "failed": 1, "inconclusive": 1, "skipped": 0}
    assert {c["cell"]: c["outcome"] for c in doc["cells"]} == {
        "test_held": "passed",
        "test_refused": "inconclusive",
        "test_missed": "failed",
    }


def test_a_race_test_not_started_within_the_budget_is_inconclusive(pytester: pytest.Pytester) -> None:
    pytester.makeconftest((Path(__file__).parent.parent / "conftest.py").read_text())
    pytester.makepyfile(
        test_cells="import pytest\npytestmark = pytest.mark.race\n\ndef test_one():\n    pass\n\ndef test_two():\n    pass\n"
    )
    pytester.makeini("[pytest]\nmarkers =\n    race: race\n")
    result = pytester.runpytest_subprocess("-m", "race", "--race-budget", "0", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*inconclusive*test_one*(inconclusive: the race stage's budget (0s) was spent before this test started)"])
    result.stdout.fnmatch_lines(["race stage: 2 cells, 0 passed, 0 failed, 2 inconclusive *"])
    result = pytester.runpytest_subprocess("-m", "race", "--race-budget", "600", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_refused_command_runs_again_with_twice_the_duration_then_is_inconclusive(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from tests import procs

    durations: list[str] = []

    def refuse(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        durations.append(args[args.index("--duration") + 1])
        return subprocess.CompletedProcess(list(args), 3, "", f"stress: error: {REFUSED}\n")

    monkeypatch.setattr(procs, "stress", refuse)
    with pytest.raises(pytest.skip.Exception, match=r"^inconclusive: stress: error: the machine cannot keep up"):
        procs.stress_given_its_time("compare", "--duration", "0.5")
    assert durations == ["0.5", "1", "2"]
    ok = subprocess.CompletedProcess(["x"], 0, "CLEAN: ...", "")
    monkeypatch.setattr(procs, "stress", lambda *a, **kw: ok)
    assert procs.stress_given_its_time("compare", "--duration", "0.5") is ok  # a run given its time counts at once
