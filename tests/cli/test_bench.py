"""``stress bench``: the calibration counts what a switch costs; the report has its keys."""

from __future__ import annotations

import json
import pstats
from pathlib import Path
from types import SimpleNamespace

import pytest

from stress import bench
from stress.bench import bench_config, calibrate, ceiling
from tests.procs import stress_given_its_time


@pytest.mark.race  # a benchmark of the free mode: what its runs count in their seconds is the host's to decide
def test_calibration_counts_the_primitives_of_one_switch() -> None:
    cal = calibrate(bench_config(2, seed=1, procs_per_cpu=8), seconds=0.5)
    assert cal["switches"] > 100
    # refcount on x86: two cpumask updates on most switches, lazy counts, run-queue locks on migrations
    assert 1.0 < cal["locked_atomics_per_switch"] < 10
    assert 10 < cal["shared_accesses_per_switch"] < 200


@pytest.mark.race  # a benchmark of the free mode: what its runs count in their seconds is the host's to decide
def test_the_ceiling_loop_runs_in_every_process() -> None:
    assert ceiling(2, locked=2, accesses=10, seconds=0.3) > 0


@pytest.mark.race  # a benchmark of the free mode: what its runs count in their seconds is the host's to decide
def test_bench_reports_rates_ratio_and_ipi_round_trips(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    r = stress_given_its_time("bench", "--cpus", "2", "--duration", "0.5", "--det-cpus", "3", "--json", str(out), timeout=180)
    assert r.returncode == 0, r.stderr
    b = json.loads(out.read_text())
    (det,) = b["deterministic"]  # the deterministic mode, measured next to the free mode in the same run
    assert det["cpus"] == 3 and det["steps"] >= 50_000 and det["points_per_second"] > 0 and det["free_switches_per_second"] > 0
    assert det["verdicts"] == ["clean", "clean"] and "deterministic mode (--sched pct, 50,000 steps)" in r.stdout
    for key in ("switches_per_second", "ceiling_per_second", "ratio", "ipi_rtt_us_p50", "ipi_rtt_us_p99"):
        assert b[key] is not None and b[key] > 0
    assert [row["cpus"] for row in b["per_cpus"]] == [2]
    assert b["ipi_rtt_us_p99"] >= b["ipi_rtt_us_p50"]


@pytest.mark.race  # a benchmark of the free mode: what its runs count in their seconds is the host's to decide
def test_bench_profile_writes_each_cpus_statistics(tmp_path: Path) -> None:
    where = tmp_path / "prof"
    r = stress_given_its_time("bench", "--cpus", "2", "--duration", "0.3", "--profile", str(where), timeout=180)
    assert r.returncode == 0, r.stderr
    files = sorted(p.name for p in (where / "cpus2").iterdir())
    assert files == ["cpu0.prof", "cpu1.prof"]
    stats = pstats.Stats(*(str(where / "cpus2" / f) for f in files))
    called = {fn for (_, _, fn) in stats.stats}  # type: ignore[attr-defined]
    assert {"context_switch", "switch_mm_irqs_off", "finish_task_switch"} <= called
    # the summary names the hot functions: the one with the most own time in these files (which one
    # that is depends on the host, so it is read from the files, not named here)
    hottest = max(stats.stats.items(), key=lambda kv: kv[1][2])[0]  # type: ignore[attr-defined]
    assert pstats.func_std_string(hottest) in r.stderr, (hottest, r.stderr)  # as print_stats writes it


@pytest.mark.race  # a benchmark of the free mode: what its runs count in their seconds is the host's to decide
def test_bench_repeat_reports_the_medians_of_paired_runs(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    r = stress_given_its_time("bench", "--cpus", "1", "--duration", "0.3", "--repeat", "3", "--json", str(out), timeout=180)
    assert r.returncode == 0, r.stderr
    row = json.loads(out.read_text())["per_cpus"][0]
    assert len(row["runs"]) == 3 and "median of 3 runs" in r.stdout


def test_the_ratio_is_the_median_of_paired_ratios_not_a_ratio_of_medians(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each emulator run is paired with the ceiling run beside it (a slow phase of the host hits
    both); the three runs are chosen so that every other way of combining them gives another figure."""
    rates = iter([300.0, 100.0, 200.0])  # emulator runs: median 200
    ceilings = iter([1000.0, 500.0, 400.0])  # the ceiling run after each: median 500; paired ratios 0.3, 0.2, 0.5
    monkeypatch.setattr(
        bench, "calibrate", lambda cfg, seconds: {"locked_atomics_per_switch": 2.0, "shared_accesses_per_switch": 10.0, "switches": 1}
    )
    monkeypatch.setattr(
        bench, "run", lambda cfg: SimpleNamespace(metrics={"switches_per_second": next(rates)}, verdict="clean", harness={})
    )
    monkeypatch.setattr(bench, "ceiling", lambda nproc, locked, accesses, seconds: next(ceilings))
    row = bench.measure(bench_config(2, seed=1, procs_per_cpu=8, duration=0.1), repeat=3, say=lambda text: None)
    assert [(r["switches_per_second"], r["ceiling_per_second"], r["ratio"]) for r in row["runs"]] == [
        (300.0, 1000.0, 0.3), (100.0, 500.0, 0.2), (200.0, 400.0, 0.5)
    ]  # fmt: skip
    assert (row["switches_per_second"], row["ceiling_per_second"], row["ratio"]) == (200.0, 500.0, 0.3)  # not 200/500 = 0.4
    assert row["switches_per_second_per_cpu"] == 100.0 and row["verdict"] == "clean"


@pytest.mark.race  # a benchmark of the free mode: what its runs count in their seconds is the host's to decide
def test_bench_measures_each_memory_model_in_one_run(tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    r = stress_given_its_time(
        "bench", "--cpus", "2", "--duration", "0.3", "--memory-models", "sc,weak", "--quiet", "--json", str(out), timeout=180
    )
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())["per_cpus"]
    assert [(row["cpus"], row["memory_model"]) for row in rows] == [(2, "sc"), (2, "weak")]
    assert all(row["switches_per_second"] > 0 for row in rows)
    assert "weak" in r.stdout
