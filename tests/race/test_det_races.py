"""The race matrix (``emu.matrix``) under the deterministic scheduler: the same table, on the small
machine PCT suits (3 CPUs, two processes of two threads, one kernel thread a CPU, unless the
cell sets its own workload), each run one seeded ``--sched pct`` run.

Everything here is deterministic: a test's seeds come from its id, so ``pytest '<id>'`` repeats
its runs event for event, a failure included. A correct cell must come out clean on its seed; a
broken one is hunted over consecutive seeds until caught, within ``CATCH_WITHIN`` runs (a
count, not a time: the outcome must not depend on the host), and the catch must repeat when
its seed runs again.
"""

from __future__ import annotations

import zlib
from dataclasses import replace

import pytest

from emu.config import RunConfig
from emu.matrix import CELLS, CLEAN, Cell
from emu.runner import run

pytestmark = pytest.mark.race

CATCH_WITHIN = 200  # deterministic runs of one broken cell (B3, the rarest, needs tens)
STEPS = 50_000
SMALL = {"procs": 2, "threads": 2, "kthreads": 1}


def det_config(cell: Cell, seed: int) -> RunConfig:
    cfg = cell.config(seed, cpus=3, sched="pct", steps=STEPS)
    small = {k: v for k, v in SMALL.items() if k not in cell.workload}
    return replace(cfg, workload=replace(cfg.workload, **small), fail_fast=cell.expect != CLEAN)


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.id)
def test_det_cell(cell: Cell, request: pytest.FixtureRequest) -> None:
    seed = zlib.crc32(request.node.nodeid.encode())
    if cell.expect == CLEAN:
        report = run(det_config(cell, seed))
        assert report.harness["error"] is None, report.harness
        assert report.verdict == "clean", f"{report.violations[:3]} ({cell.why}; rerun: {report.command})"
        return
    tries = 0
    while True:
        report = run(det_config(cell, seed + tries))
        tries += 1
        assert report.harness["error"] is None, report.harness
        if any(k in report.violation_counts for k in cell.kinds):
            break
        if tries >= CATCH_WITHIN:
            pytest.fail(f"{cell.id} not caught in {tries} deterministic runs ({cell.why}); the last: {report.command}")
    again = run(det_config(cell, seed + tries - 1))
    assert again.violations == report.violations and again.violation_counts == report.violation_counts, report.command
