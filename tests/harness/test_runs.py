"""Whole runs of the emulated machine: correct schemes clean, mutants caught, reports complete."""

from __future__ import annotations

import pytest

from emu.harness.config import RunConfig
from emu.harness.runner import run


@pytest.mark.parametrize("sched", ["pct", "random"])
@pytest.mark.parametrize("seed", [11, 12, 13])
@pytest.mark.parametrize("cpus", [4, 8])
def test_refcount_is_clean(cpus: int, seed: int, sched: str) -> None:
    # deterministic: the same verdict and counters on any host; tests/race runs refcount free-running
    report = run(RunConfig(cpus=cpus, strategy="refcount", sched=sched, steps=50_000, seed=seed))
    assert report.verdict == "clean", report.violations[:3]
    m = report.metrics
    assert m["mm_freed"] + m["mm_held_lazily"] == m["mm_created"] > 0  # the rest: the idle CPUs are still lazy on them
    assert m["lazy_switches"] > 0 and m["lazy_refcount_atomics"] > 0
    assert report.harness["drained"]


@pytest.mark.parametrize("seed", [21, 22])
def test_refcount_no_grab_mutant_is_caught(seed: int) -> None:
    # deterministic (one CPU at a time, by the seed): caught on any host; tests/race hunts it free-running
    cfg = RunConfig(cpus=3, strategy="refcount", mutant="refcount-no-grab", sched="pct", steps=50_000, seed=seed)
    report = run(cfg)
    assert report.verdict == "violation" and report.status == 1, report.harness
    assert {"use_after_free", "freed_while_lazy"} & set(report.violation_counts)
    assert report.timelines and report.timelines[0], "a violation comes with the events that led to it"
    assert report.metrics["first_violation_s"] is not None


def test_report_carries_config_metrics_and_rerun_command() -> None:
    cfg = RunConfig(cpus=2, sched="random", steps=20_000, seed=7)  # deterministic: clean on any host
    report = run(cfg).to_json()
    assert report["config"]["seed"] == 7 and report["config"]["cpus"] == 2
    for key in ("context_switches", "lazy_switches", "mm_created", "mm_freed", "ipis_sent", "lazy_refcount_atomics", "switches_per_second"):
        assert key in report["metrics"]
    assert report["verdict"] == "clean" and report["violations"] == []
    assert report["command"].startswith("python -m stress run --cpus 2 --strategy refcount")
    assert "--seed 7" in report["command"] and "--sched random --steps 20000" in report["command"]
