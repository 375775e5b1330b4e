"""Perturbation: each knob really perturbs, and a correct scheme stays clean under all of them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from emu.harness.config import RunConfig
from emu.harness.runner import run


@pytest.mark.race  # the runner's perturbations land on the host's clock: how many in 2 s is the host's
def test_all_perturbations_together_keep_refcount_clean_and_are_counted() -> None:
    cfg = RunConfig(cpus=6, strategy="refcount", arch="powerpc", duration=2.0, seed=5, noise=0.01, stutter=True, shuffle=True, hotplug=True)
    report = run(cfg)
    assert report.verdict == "clean", report.violations[:3]
    m = report.metrics
    assert m["noise_delays"] > 0
    assert m["hotplug_offline"] > 0 and m["hotplug_online"] >= m["hotplug_offline"]  # all back online for the drain
    assert report.harness["drained"]


@pytest.mark.race  # the runner's perturbations land on the host's clock: how many in 2 s is the host's
def test_hotplug_with_shoot_lazies_on_powerpc_is_clean() -> None:
    report = run(RunConfig(cpus=8, strategy="shoot-lazies", arch="powerpc", duration=2.0, seed=6, hotplug=True))
    assert report.verdict == "clean", report.violations[:3]
    assert report.metrics["hotplug_offline"] > 0


def test_fail_fast_stops_at_the_first_violation() -> None:
    # deterministic: the same seed without --fail-fast runs on past the violation; no clock involved
    cfg = RunConfig(cpus=3, mutant="refcount-no-grab", sched="pct", steps=100_000, seed=7, fail_fast=True)
    stopped, whole = run(cfg), run(replace(cfg, fail_fast=False))
    assert stopped.verdict == whole.verdict == "violation"
    assert stopped.harness["stopped_early"] and not whole.harness["stopped_early"]
    assert stopped.metrics["context_switches"] < whole.metrics["context_switches"]
    assert stopped.violations[0] == whole.violations[0]  # the same first violation, then nothing more


def test_without_perturbation_nothing_is_injected() -> None:
    # zero on any host, refused for want of time or not: nothing asks for a perturbation
    m = run(RunConfig(cpus=4, duration=0.5, seed=8)).metrics
    assert m["noise_delays"] == 0 and m["hotplug_offline"] == 0
