"""hazptr's hotplug path as its base had it (H4), and the later path, under the deterministic scheduler.

Before "lazy tlb: fix hotplug exit race with MMU_LAZY_TLB_SHOOTDOWN" (Nov 2024) the dying CPU ran
``idle_task_exit()`` (the MMU to init_mm only: its hazard slot keeps the mm) and the control CPU's
``finish_cpu()`` cleared its own slot; a later scan of the mm waits on the offline CPU. A
deterministic run repeats event for event, so each seed's verdict is a fact of the code.
"""

from __future__ import annotations

import pytest

from emu.harness.config import RunConfig
from emu.harness.report import Report
from emu.harness.runner import run
from tests.kernel.test_drain import SMALL

FIXED = "skip-init-mm,drop-irqs-off"  # H1 and H3 out of the way: what is left under --hotplug is the path's
SEEDS = (1, 3, 5, 9)  # seeds whose load takes a CPU down while it is lazy on an mm that then exits


def hotplug_run(fix: str, seed: int) -> Report:
    cfg = RunConfig(cpus=3, strategy="hazptr", fix=fix, arch="x86", sched="pct", steps=50_000, seed=seed, workload=SMALL, hotplug=True)
    return run(cfg)


@pytest.mark.parametrize("seed", SEEDS)
def test_h4_the_rfc_era_path_leaves_a_scan_waiting_on_an_offline_cpu(seed: int) -> None:
    report = hotplug_run(FIXED, seed)
    assert report.verdict == "violation", report.violations[:3]
    found = [v for v in report.violations if v["kind"] == "liveness"]
    assert found, report.violation_counts
    v = found[0]
    assert v["other_cpu"] not in (-1, v["cpu"]) and v["mm"].startswith("mm"), v  # the waiter, the offline CPU it waits on, the mm
    assert "offline" in v["detail"], v


@pytest.mark.parametrize("seed", SEEDS)
def test_h4_absent_with_the_later_path(seed: int) -> None:
    report = hotplug_run(FIXED + ",sched-force-init-mm", seed)
    assert report.metrics["hotplug_offline"] > 0  # the same load took CPUs down
    assert report.harness["error"] is None and report.verdict == "clean", report.violations[:3]
