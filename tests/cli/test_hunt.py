"""``stress hunt``: expectations, the budget, the JSON summary; and the race suite's remote form."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from stress.options import parse_budget

CMD = [sys.executable, "-m", "stress", "hunt", "--quiet"]


def hunt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=120)


def test_budget_parsing() -> None:
    assert parse_budget("90") == 90 and parse_budget("90s") == 90 and parse_budget("5m") == 300 and parse_budget("1h") == 3600


@pytest.mark.parametrize("args", [["--budget", "soon"], ["--budget", "-5m"], ["--matrix", "--strategy", "refcount"], ["--jobs", "0"]])
def test_bad_hunt_input_is_one_line(args: list[str]) -> None:
    r = hunt(*args)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


# deterministic runs (one CPU at a time, by the seed): the same runs and verdicts on any host; the
# budget is far beyond what the runs take, so only --runs ends the hunt
DET = ["--sched", "pct", "--steps", "50000", "--cpus", "3", "--seed", "1", "--budget", "300s"]


def test_a_mutant_is_caught_and_a_correct_scheme_held_clean(tmp_path: Path) -> None:
    out = tmp_path / "hunt.json"
    r = hunt("--mutant", "refcount-no-grab", *DET, "--runs", "3", "--json", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    (cfg,) = json.loads(out.read_text())["configs"]
    assert cfg["expect"] == "violation" and cfg["runs"] == 3 and cfg["violations"] == 3 and cfg["held"]
    assert cfg["first_detection_s"] is not None and cfg["kinds"] and cfg["example"].startswith("python -m stress run ")
    assert {"strategy", "arch", "mutant", "expect", "runs", "violations", "first_detection_s", "held"} <= set(cfg)

    r = hunt("--strategy", "refcount", *DET, "--runs", "2", "--json", str(out))
    summary = json.loads(out.read_text())
    assert r.returncode == 0 and summary["all_held"], r.stdout + r.stderr
    (cfg,) = summary["configs"]
    assert cfg["expect"] == "clean" and cfg["runs"] == 2 and cfg["violations"] == 0 and cfg["example"] is None


def test_a_wrong_expectation_fails_the_hunt() -> None:
    r = hunt("--mutant", "refcount-no-grab", "--expect", "clean", *DET, "--runs", "1")
    assert r.returncode == 1 and "all expectations held: NO" in r.stdout and "rerun refcount-no-grab" in r.stdout


def test_race_suite_runs_on_execnet_workers() -> None:
    """The local form of a campaign spread over machines: xdist's --tx with popen gateways (two
    deterministic cells of the race suite: their verdicts do not depend on the host)."""
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "xdist", "--tx", "2*popen", "--dist", "load", "-m", "race", "-p", "no:benchmark",
         "tests/race/test_det_races.py::test_det_cell[refcount@arm64]",
         "tests/race/test_det_races.py::test_det_cell[refcount-no-grab@x86]"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:]
    assert "2 passed" in r.stdout


def test_a_cell_may_run_another_load_under_the_deterministic_scheduler() -> None:
    from emu.harness.matrix import CELLS, DET_MACHINE

    b3 = next(c for c in CELLS if c.det_workload)
    det, free = b3.det_config(1), b3.config(1)
    assert det.workload.procs == b3.det_workload["procs"] != DET_MACHINE["procs"]
    assert det.workload.threads == b3.workload["threads"] and det.workload.kthreads == DET_MACHINE["kthreads"]
    assert free.workload.procs == 0  # the free mode's load is the cell's own, derived from --cpus
    plain = next(c for c in CELLS if not c.det_workload and not c.workload)
    assert plain.det_config(1).workload.procs == DET_MACHINE["procs"]


def test_a_cell_may_expect_clean_under_the_deterministic_scheduler_only() -> None:
    from emu.harness.matrix import CELLS, CLEAN

    # no cell declares one now (the two the weak model's window stall lets PCT catch did): the field on a broken cell
    window = dataclasses.replace(next(c for c in CELLS if c.expect != CLEAN), det_expect=CLEAN)
    assert window.expect != CLEAN and window.det_kinds == () and not window.det_config(1).fail_fast
    assert window.verdict_expected(True) == CLEAN and window.verdict_expected(False) == "violation"
    clean = next(c for c in CELLS if c.expect == CLEAN)
    assert clean.det_kinds == () and clean.verdict_expected(False) == clean.verdict_expected(True) == CLEAN
    broken = next(c for c in CELLS if c.expect != CLEAN and c.det_expect is None)
    assert broken.det_kinds == broken.kinds and broken.det_config(1).fail_fast and broken.verdict_expected(True) == "violation"
