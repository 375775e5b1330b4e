"""x86's TLB-generation protocol version by version (issue 26; reference section 4.1): each version
is a model on the command line, its bugs caught as ``missed_flush`` where the reference says (X2
and X3 windows under ``sc``, X1 store buffering under ``tso`` only) and the fixed code clean.

Every run here is deterministic (``--sched pct`` on the matrix cell's machine), so each seed's
outcome repeats; each seed is the first from 1 on which the cell is caught at the user-code check
and its fix is clean (found by running consecutive seeds, as ``tests/race/test_det_races.py`` hunts)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from emu.arch import ARCH_MUTANTS, ARCHES
from emu.arch.x86 import X86
from emu.arch.x86_invlpgb import X86Invlpgb
from emu.arch.x86_lazy_mask import X86V614, X86V6147, X86LazyMask
from emu.arch.x86_stable import X86Stable, X86StableDolanFix
from emu.harness.matrix import CELLS, Cell
from emu.harness.runner import run
from tests.procs import stress

VERSIONS = ("x86-v6.14", "x86-v6.14.7", "x86-lazy-mask", "x86-stable-6.12.29", "x86-stable-dolan-fix", "x86-invlpgb")


def cell(cell_id: str) -> Cell:
    return next(c for c in CELLS if c.id == cell_id)


def test_each_version_is_an_arch_list_shows() -> None:
    assert {ARCHES[v] for v in VERSIONS} == {X86V614, X86V6147, X86LazyMask, X86Stable, X86StableDolanFix, X86Invlpgb}
    out = stress("list").stdout
    for name in (*VERSIONS, "x86-freed-tables-skip-lazy", "x86-lazy-mask-switching-skipped", "x86-invlpgb-no-switching-spin"):
        assert name in out
    assert {ARCH_MUTANTS[m].mutant_of for m in ("x86-freed-tables-skip-lazy", "x86-lazy-mask-switching-skipped")} == {
        "x86",
        "x86-lazy-mask",
    }


def test_the_versions_differ_where_their_commits_do() -> None:
    assert not X86V614.switching_flushed and X86V6147.switching_flushed and X86LazyMask.switching_flushed
    assert not X86Stable.switching_first and X86StableDolanFix.switching_first
    assert X86.tracks_tlb_gen and all(ARCHES[v].tracks_tlb_gen for v in VERSIONS)


@pytest.mark.parametrize(
    ("cell_id", "seed", "fixed"),
    [
        ("refcount@x86-v6.14", 4, "x86-v6.14.7"),  # X2: a window, under sc
        ("refcount@x86-stable-6.12.29", 8, "x86-stable-dolan-fix"),  # X3: the backport's window, under sc
        ("refcount@x86-v6.14.7+memory-model=tso", 20, "x86-lazy-mask"),  # X1: store buffering, under tso
    ],
)
def test_a_version_bug_is_caught_and_its_fix_is_clean_on_the_same_seed(cell_id: str, seed: int, fixed: str) -> None:
    c = cell(cell_id)
    report = run(c.det_config(seed))
    assert report.violation_counts.get("missed_flush"), (report.violation_counts, report.command)
    assert {v["site"] for v in report.violations} <= {"user code runs on the loaded mm"}
    clean = run(replace(c.det_config(seed), arch=fixed, fail_fast=False))
    assert clean.verdict == "clean", (clean.violations[:2], clean.command)


def test_x1_needs_store_buffering() -> None:
    """6.14.7's switch (X1) under sc, on the seed where tso catches it: the loads and stores in program order."""
    c = cell("refcount@x86-v6.14.7+memory-model=tso")
    report = run(replace(c.det_config(20), memory_model="sc", fail_fast=False))
    assert report.verdict == "clean", (report.violations[:2], report.command)
