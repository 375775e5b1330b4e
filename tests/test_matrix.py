"""The scheme x architecture matrix: every cell's expected verdict, from whole runs.

A correct cell must come out clean over its seeds; a broken cell must show the named kind,
found by the generic oracle. The expectations restate the reference's sections 4 and 5.
"""

from __future__ import annotations

import pytest

from emu.config import RunConfig
from emu.runner import run

CLEAN = "clean"
CELLS = [
    # strategy, arch, options, expected
    ("refcount", "x86", {}, CLEAN),
    ("refcount", "x86-lazy-mask", {}, CLEAN),
    ("refcount", "powerpc", {}, CLEAN),
    ("refcount", "arm64", {}, CLEAN),
    ("refcount", "s390", {}, CLEAN),
    ("shoot-lazies", "powerpc", {}, CLEAN),
    ("shoot-lazies", "powerpc", {"radix_exit_shoot": False, "debug_check": True}, CLEAN),
    ("shoot-lazies", "x86-lazy-mask", {}, CLEAN),
    ("shoot-lazies", "arm64", {"shoot_all": True}, CLEAN),
    ("shoot-lazies", "s390", {"shoot_all": True}, CLEAN),
    ("shoot-lazies", "arm64", {}, "use_after_free"),  # B1: the mask is empty
    ("shoot-lazies", "s390", {}, "use_after_free"),
    ("shoot-lazies", "x86", {}, "freed_while_lazy"),  # the exit flush cleared the lazy CPU's bit
    ("refcount-no-grab", "x86", {}, "use_after_free"),  # B5
    ("shoot-irqs-enabled", "powerpc", {}, "lockdep"),  # B7
]


def config(strategy: str, arch: str, options: dict[str, bool], seed: int) -> RunConfig:
    mutant = strategy if strategy in ("refcount-no-grab", "shoot-irqs-enabled") else None
    base = {"refcount-no-grab": "refcount", "shoot-irqs-enabled": "shoot-lazies"}.get(strategy, strategy)
    return RunConfig(cpus=8, strategy=base, mutant=mutant, arch=arch, duration=2.0, seed=seed, **options)


@pytest.mark.parametrize("seed", [31, 32])
@pytest.mark.parametrize(("strategy", "arch", "options", "expected"), CELLS, ids=lambda v: str(v) if v else "")
def test_cell(strategy: str, arch: str, options: dict[str, bool], expected: str, seed: int) -> None:
    report = run(config(strategy, arch, options, seed))
    assert report.harness["error"] is None
    if expected == CLEAN:
        assert report.verdict == "clean", report.violations[:3]
        assert report.metrics["mm_freed"] == report.metrics["mm_created"] > 0
    else:
        assert expected in report.violation_counts, report.violation_counts


def test_shoot_all_costs_an_ipi_per_cpu_per_exit_where_powerpc_costs_the_footprint() -> None:
    arm = run(config("shoot-lazies", "arm64", {"shoot_all": True}, 41)).metrics
    ppc = run(config("shoot-lazies", "powerpc", {}, 41)).metrics
    assert arm["ipis_shootdown"] > 0 and arm["ipis_flush"] == 0  # no flush IPIs: broadcast TLBI
    assert arm["ipis_per_exit"] > 0.8 * 7  # about every other CPU, each exit
    assert ppc["ipis_shootdown"] < ppc["ipis_flush"]  # the exit flush did most of the shooting
    assert arm["ipis_wasted"] > arm["ipis_useful"]


def test_shoot_lazies_takes_no_lazy_reference() -> None:
    m = run(config("shoot-lazies", "powerpc", {}, 42)).metrics
    assert m["lazy_switches"] > 0 and m["lazy_refcount_atomics"] == 0
