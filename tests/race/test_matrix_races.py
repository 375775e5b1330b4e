"""Race hunting over the scheme x arch x mutant matrix (``emu.harness.matrix``), one seeded run a test.

Each test's seed is derived from its test id, so ``pytest '<id>'`` reruns a failure with the same
configuration and seed (the report also prints the ``python -m stress run`` command); the host
interleaves the CPU processes anew, so a rare race may not come back. ``test_det_races.py`` runs the
same table under the deterministic scheduler, where a rerun repeats the run event for event. Correct cells
must come out clean on every seed; broken cells must be caught by the generic oracle, within
``CATCH_TRIES`` runs of new seeds. A run the host cannot give its time (the runner's "the
machine cannot keep up") runs again with more; refused again, the test is skipped as
inconclusive, with the reason, and the race stage's report counts it so: never a pass. Scale a
campaign with ``--race-count N`` (runs per cell), ``--race-seconds`` and ``--race-cpus``, and
spread it with ``pytest -n auto -m race`` (or remote workers, see the README).
"""

from __future__ import annotations

import zlib
from dataclasses import replace

import pytest

from emu.harness.config import RunConfig
from emu.harness.matrix import CELLS, CLEAN, Cell
from emu.harness.report import Report
from emu.harness.runner import run
from tests.conftest import INCONCLUSIVE

CANNOT_KEEP_UP = "the machine cannot keep up"  # emu.harness.runner's refusal (CannotKeepUp)

pytestmark = [pytest.mark.race, pytest.mark.timeout(600)]

CATCH_WITHIN_S = 30.0  # a broken cell's run stops at its first violation (mostly within a few seconds; B2 has a long tail)
CATCH_TRIES = 3  # a broken cell's free-running runs (each a new seed) before it counts as missed: a race is found by chance
KEEP_UP_RETRIES = 2  # a run the host could not give its time runs again, each time with twice the duration


def run_given_its_time(cfg: RunConfig) -> Report:
    """``run(cfg)``; a run the harness refuses or cuts short because this host cannot keep up runs
    again with twice the time; still refused, the test is inconclusive (a skip that says so)."""
    for _ in range(KEEP_UP_RETRIES + 1):
        report = run(cfg)
        error = report.harness["error"] or ""
        if not error.startswith(CANNOT_KEEP_UP):
            return report
        cfg = replace(cfg, duration=cfg.duration * 2)
    pytest.skip(f"{INCONCLUSIVE}{error}")


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.id)
def test_cell(cell: Cell, race_round: int, request: pytest.FixtureRequest) -> None:
    seed = zlib.crc32(request.node.nodeid.encode())
    cfg = cell.config(seed, cpus=request.config.getoption("--race-cpus"), duration=request.config.getoption("--race-seconds"))
    if cell.expect == CLEAN:
        report = run_given_its_time(cfg)
        assert report.harness["error"] is None, report.harness
        assert report.verdict == "clean", f"{report.violations[:3]} ({cell.why}; rerun: {report.command})"
        assert report.metrics["mm_freed"] + report.metrics["mm_held_lazily"] == report.metrics["mm_created"] > 0  # the rest: held lazily
        return
    cfg = replace(cfg, duration=max(cfg.duration, CATCH_WITHIN_S), fail_fast=True)
    seen: list[dict[str, int]] = []
    tries = max(CATCH_TRIES, cell.catch_runs)  # a cell whose catch is rarer says so
    for attempt in range(tries):
        report = run_given_its_time(replace(cfg, seed=seed + attempt))
        if any(k in report.violation_counts for k in cell.kinds):
            return  # a drain that then failed (a CPU stuck by the bug) stays beside the catch
        assert report.harness["error"] is None, report.harness
        seen.append(report.violation_counts)
    pytest.fail(f"expected {' or '.join(cell.kinds)} within {tries} runs, got {seen} ({cell.why}; the last: {report.command})")
