"""Perturbation: each knob really perturbs, and a correct scheme stays clean under all of them."""

from __future__ import annotations

from emu.harness.config import RunConfig
from emu.harness.runner import run


def test_all_perturbations_together_keep_refcount_clean_and_are_counted() -> None:
    cfg = RunConfig(cpus=6, strategy="refcount", arch="powerpc", duration=2.0, seed=5, noise=0.01, stutter=True, shuffle=True, hotplug=True)
    report = run(cfg)
    assert report.verdict == "clean", report.violations[:3]
    m = report.metrics
    assert m["noise_delays"] > 0
    assert m["hotplug_offline"] > 0 and m["hotplug_online"] >= m["hotplug_offline"]  # all back online for the drain
    assert report.harness["drained"]


def test_hotplug_with_shoot_lazies_on_powerpc_is_clean() -> None:
    report = run(RunConfig(cpus=8, strategy="shoot-lazies", arch="powerpc", duration=2.0, seed=6, hotplug=True))
    assert report.verdict == "clean", report.violations[:3]
    assert report.metrics["hotplug_offline"] > 0


def test_fail_fast_stops_at_the_first_violation() -> None:
    report = run(RunConfig(cpus=8, mutant="refcount-no-grab", duration=30.0, seed=7, fail_fast=True))
    assert report.verdict == "violation"
    assert report.harness["stopped_early"] and report.harness["run_seconds"] < 30


def test_without_perturbation_nothing_is_injected() -> None:
    m = run(RunConfig(cpus=4, duration=0.5, seed=8)).metrics
    assert m["noise_delays"] == 0 and m["hotplug_offline"] == 0
