"""The drain (``emu/kernel/drain.py``): every CPU switches into one short user task of its own and out
through ``do_exit``, and no hotplug-only path runs; a quiet kernel's lazy hold on the last mm is not a leak."""

from __future__ import annotations

import pytest

from emu.harness.config import RunConfig, Workload
from emu.harness.runner import run
from emu.kernel.cpu import Cpu

SMALL = Workload(procs=2, threads=2, kthreads=1)
SCHEMES = ("refcount", "shoot-lazies", "luto-hazard")


def _forbidden(self: Cpu) -> None:
    raise AssertionError("sched_force_init_mm ran outside the hotplug path")


# shoot-lazies only where its mask covers the lazy CPUs (not arm64's empty mask, B1, nor x86 up to 6.13, B9)
CASES = [(s, a) for s in SCHEMES for a in ("x86", "arm64", "powerpc", "s390") if not (s == "shoot-lazies" and a in ("x86", "arm64"))]


@pytest.mark.parametrize(("strategy", "arch"), CASES)
def test_the_drain_runs_no_hotplug_path(strategy: str, arch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A correct scheme drains clean without it."""
    # the CPU processes are forked: they inherit the patch, and a call would kill a CPU (a harness failure)
    monkeypatch.setattr(Cpu, "sched_force_init_mm", _forbidden)
    report = run(RunConfig(cpus=3, strategy=strategy, arch=arch, sched="pct", steps=20_000, seed=2, workload=SMALL))
    assert report.harness["error"] is None and report.harness["drained"], report.harness
    assert report.verdict == "clean", report.violations[:3]
    assert report.metrics["forks"] >= 3  # one drain task a CPU at least


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_hazptr_with_the_drop_fixed_shows_no_warning_at_the_drain(seed: int) -> None:
    """H3 needs a grab of init_mm over a busy slot: x86 has none without --hotplug, and the drain runs none."""
    cfg = RunConfig(cpus=3, strategy="hazptr", fix="drop-irqs-off", arch="x86", sched="pct", steps=20_000, seed=seed, workload=SMALL)
    report = run(cfg)
    assert report.harness["drained"] and report.verdict == "clean", report.violations[:3]


def test_hazptr_under_hotplug_still_shows_h3() -> None:
    """The control: the same fix under --hotplug with the later path (sched_force_init_mm), and H3's WARN fires."""
    for seed in range(1, 30):
        cfg = RunConfig(
            cpus=3,
            strategy="hazptr",
            fix="drop-irqs-off,sched-force-init-mm",
            arch="x86",
            sched="pct",
            steps=50_000,
            seed=seed,
            workload=SMALL,
            hotplug=True,
        )
        if "scheme_warning" in run(cfg).violation_counts:
            return
    raise AssertionError("H3 not caught under --hotplug in 29 seeds")
