"""``compare``'s rows say how their run went: a violation, a starved machine, a harness failure with
its reason; the projection prices clean rows only; the plot leaves a failure out and says so."""

from __future__ import annotations

from typing import Any

import pytest

from emu.harness.projection import DEFAULT_COSTS
from stress.compare import COLUMNS, PANELS, add_projection, clean, figure, render, starved, state, wrapped
from tests.procs import stress, stress_given_its_time


def _row(
    strategy: str, cpus: int, verdict: str = "clean", forks: int = 50, forks_no_mm: int = 0, reason: str | None = None
) -> dict[str, Any]:
    m: dict[str, Any] = {key: 1.0 + cpus / 10 for key, _, _ in COLUMNS} | {key: 1.0 for key, _ in PANELS}
    m |= {"forks": forks, "forks_no_mm": forks_no_mm, "cpus_scanned_per_exit": 0.0, "remote_slot_reads_per_exit": 0.0}
    return {"strategy": strategy, "arch": "x86", "cpus": cpus, "shoot_all": False, "verdict": verdict, "reason": reason,
            "starved": starved(m), "fix": "", "mutant": None, "memory_model": "sc", **m}  # fmt: skip


def test_starved_is_more_forks_refused_than_made() -> None:
    assert starved({"forks": 30, "forks_no_mm": 400}) and not starved({"forks": 30, "forks_no_mm": 0})
    assert state(_row("luto-rfc", 4, "violation", forks_no_mm=400)) == "violation+starved"
    assert state(_row("refcount", 4)) == "clean"
    assert state(_row("hazptr", 4, "harness_failure", reason="the machine cannot keep up")) == "harness failure"


def test_a_failed_or_broken_row_is_not_priced_and_says_why() -> None:
    rows = [_row("refcount", 2), _row("refcount", 4), _row("luto-rfc", 2, "violation", forks_no_mm=400),
            _row("hazptr", 2, "harness_failure", reason="cpu1 hung in the boot")]  # fmt: skip
    add_projection(rows, 64, DEFAULT_COSTS)
    assert all("proj_switches_per_second" in r for r in rows if clean(r))
    assert not any("proj_switches_per_second" in r for r in rows if not clean(r))
    text = render(rows, 64, DEFAULT_COSTS, False, 4)
    assert "harness failure: hazptr on x86, 2 CPUs: cpu1 hung in the boot" in text
    assert "not priced (2 rows" in text and "luto-rfc on x86 at 2 (violation+starved)" in text
    model = text.split("MODEL@64", 1)[1].split("not priced", 1)[0]
    assert "refcount" in model and "luto-rfc" not in model and "hazptr" not in model


def test_the_table_fits_80_columns() -> None:
    rows = [_row(s, n, v) for s, v in (("shoot-lazies", "clean"), ("luto-rfc", "violation")) for n in (2, 8, 32)]
    for r in rows:
        r["arch"] = "x86-lazy-mask"
    text = wrapped(render(rows, None, DEFAULT_COSTS, False, len(rows)), 80)
    assert max(map(len, text.splitlines())) <= 80, text
    assert "useful" not in text.split("--verbose adds")[0]  # the rest of the columns are --verbose's
    assert "useful" in render(rows, None, DEFAULT_COSTS, False, len(rows), verbose=True)


def test_the_plot_leaves_a_harness_failure_out_and_says_so() -> None:
    rows = [_row("refcount", 2), _row("refcount", 4), _row("hazptr", 2, "harness_failure", reason="x")]
    fig = figure(rows, seed=1, duration=1.0)
    assert "left out, harness failure: hazptr on x86 at 2 CPUs" in fig._suptitle.get_text()
    assert all(len(ax.lines) == 1 for ax in fig.axes)  # refcount's line alone


@pytest.mark.race  # compare runs the free mode only: whether its runs are refused (status 3) is the host's
def test_fix_memory_model_and_mutant_are_accepted() -> None:
    r = stress_given_its_time("compare", "--strategies", "hazptr", "--arches", "x86", "--cpus", "2", "--duration", "0.3", "--seed", "1",
               "--fix", "skip-init-mm,drop-irqs-off", "--memory-model", "tso", "--quiet", "--json", "-", timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    import json

    (row,) = json.loads(r.stdout)["rows"]
    assert row["fix"] == "skip-init-mm,drop-irqs-off" and row["memory_model"] == "tso"
    assert "--fix skip-init-mm,drop-irqs-off" in row["command"]
    mutant = stress_given_its_time(
        "compare", "--mutant", "refcount-no-grab", "--arches", "x86", "--cpus", "2", "--duration", "0.3", "--quiet", timeout=120
    )
    assert mutant.returncode == 0 and mutant.stdout.startswith("refcount (--mutant refcount-no-grab)\n"), mutant.stderr
    bad = stress("compare", "--strategies", "refcount", "--fix", "drop-check")
    assert bad.returncode == 2 and "none of refcount offers it" in bad.stderr
