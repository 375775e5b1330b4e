"""The race matrix (``emu.harness.matrix``) under the deterministic scheduler: the same table, on the small
machine PCT suits (3 CPUs, two processes of two threads, one kernel thread a CPU, unless the
cell sets its own workload), each run one seeded ``--sched pct`` run; and x86's TLB-generation
cells once more under the load shaped like Stephen Dolan's reproducer (``emu.workload.dolan``).

Everything here is deterministic: a test's seeds come from its id, so ``pytest '<id>'`` repeats
its runs event for event, a failure included. A correct cell must come out clean on its seed; a
broken one is hunted over consecutive seeds until caught, within a bound of runs (a count, not a
time: the outcome must not depend on the host), and the catch must repeat when its seed runs again.
"""

from __future__ import annotations

import zlib
from dataclasses import replace

import pytest

from emu.arch import ARCH_MUTANTS, ARCHES
from emu.arch.x86_invlpgb import X86Invlpgb
from emu.arch.x86_lazy_mask import X86LazyMask
from emu.arch.x86_stable import X86Stable
from emu.harness.config import RunConfig
from emu.harness.matrix import CELLS, Cell
from emu.harness.runner import run

pytestmark = [pytest.mark.race, pytest.mark.timeout(600)]

CATCH_WITHIN = 300  # deterministic runs of one broken cell (B3 on x86, the rarest, needs 35 for the median seed, 9 for its seed here)
# Dolan's load: the fewest catches a run of x86's TLB-generation cells makes there is about 1 in 6 (X3,
# docs/race-hunting.md, 10 seeds each), so a seed that needs more than this many runs has a chance below 1e-7
DOLAN_CATCH_WITHIN = 100


def tlb_gen_cell(cell: Cell) -> bool:
    """A cell of x86's TLB-generation protocol as v6.14 and the stable trees have it (``cpu_tlbstate.loaded_mm``
    read by the flush, IPIs for every flush): the refcount rows of ``x86-lazy-mask``, its versions, its
    mutants, and the stable trees (not INVLPGB's broadcast flushes)."""
    model = ARCH_MUTANTS[cell.arch_mutant] if cell.arch_mutant else ARCHES[cell.arch]
    return cell.strategy == "refcount" and issubclass(model, (X86LazyMask, X86Stable)) and not issubclass(model, X86Invlpgb)


TLB_GEN_CELLS = [c for c in CELLS if tlb_gen_cell(c)]


def dolan(cfg: RunConfig) -> RunConfig:
    """The cell's deterministic run under Dolan's load (its writer's and readers' own tasks: no synthetic workload)."""
    return replace(cfg, benchmark="dolan")


def hunt(cell: Cell, seed: int, within: int, load: str = "") -> None:
    """A correct cell is clean on ``seed``; a broken one is caught within ``within`` consecutive seeds, and again on a rerun."""
    config = (lambda s: dolan(cell.det_config(s))) if load else cell.det_config
    if not cell.det_kinds:  # clean, or a broken cell whose window PCT misses (Cell.det_expect)
        report = run(config(seed))
        assert report.harness["error"] is None, report.harness
        assert report.verdict == "clean", f"{report.violations[:3]} ({cell.why}; rerun: {report.command} {load})"
        return
    tries = 0
    while True:
        report = run(config(seed + tries))
        tries += 1
        assert report.harness["error"] is None, report.harness
        if any(k in report.violation_counts for k in cell.kinds):
            break
        if tries >= within:
            pytest.fail(f"{cell.id} not caught in {tries} deterministic runs {load} ({cell.why}); the last: {report.command}")
    again = run(config(seed + tries - 1))
    assert again.violations == report.violations and again.violation_counts == report.violation_counts, report.command


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.id)
def test_det_cell(cell: Cell, request: pytest.FixtureRequest) -> None:
    hunt(cell, zlib.crc32(request.node.nodeid.encode()), CATCH_WITHIN)


@pytest.mark.parametrize("cell", TLB_GEN_CELLS, ids=lambda c: c.id)
def test_det_tlb_gen_cell_under_dolans_load(cell: Cell, request: pytest.FixtureRequest) -> None:
    """Dolan's reproducer brings the flushes of one mm and the switches into it together: each broken
    version caught, each fixed one clean, under every memory model its cells name."""
    hunt(cell, zlib.crc32(request.node.nodeid.encode()), DOLAN_CATCH_WITHIN, load="dolan")
