"""Race hunting over the scheme x arch x mutant matrix (``emu.harness.matrix``), one seeded run a test.

Each test's seed is derived from its test id, so ``pytest '<id>'`` reruns a failure with the same
configuration and seed (the report also prints the ``python -m stress run`` command); the host
interleaves the CPU processes anew, so a rare race may not come back. ``test_det_races.py`` runs the
same table under the deterministic scheduler, where a rerun repeats the run event for event. Correct cells
must come out clean on every seed; broken cells must be caught by the generic oracle. Scale a
campaign with ``--race-count N`` (runs per cell), ``--race-seconds`` and ``--race-cpus``, and
spread it with ``pytest -n auto -m race`` (or remote workers, see the README).
"""

from __future__ import annotations

import zlib
from dataclasses import replace

import pytest

from emu.harness.matrix import CELLS, CLEAN, Cell
from emu.harness.runner import run

pytestmark = pytest.mark.race

CATCH_WITHIN_S = 30.0  # a broken cell's run stops at its first violation (mostly within a few seconds; B2 has a long tail)


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.id)
def test_cell(cell: Cell, race_round: int, request: pytest.FixtureRequest) -> None:
    seed = zlib.crc32(request.node.nodeid.encode())
    cfg = cell.config(seed, cpus=request.config.getoption("--race-cpus"), duration=request.config.getoption("--race-seconds"))
    if cell.expect != CLEAN:
        cfg = replace(cfg, duration=max(cfg.duration, CATCH_WITHIN_S), fail_fast=True)
    report = run(cfg)
    assert report.harness["error"] is None, report.harness
    context = f"{cell.why}; rerun: {report.command}"
    if cell.expect == CLEAN:
        assert report.verdict == "clean", f"{report.violations[:3]} ({context})"
        assert report.metrics["mm_freed"] + report.metrics["mm_held_lazily"] == report.metrics["mm_created"] > 0  # the rest: held lazily
    else:
        caught = [k for k in cell.kinds if k in report.violation_counts]
        assert caught, f"expected {' or '.join(cell.kinds)}, got {report.violation_counts} ({context})"
