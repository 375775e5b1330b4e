"""The load shaped like Stephen Dolan's reproducer (``emu.workload.dolan``): its tasks where the reproducer
has them, and what it is for: X2's window reached under the deterministic scheduler, the fix clean on
the same schedule. Deterministic runs (``--sched pct``): the same on every host."""

from __future__ import annotations

import random
from dataclasses import replace

from emu.harness.config import Workload
from emu.harness.matrix import CELLS
from emu.harness.runner import run
from emu.workload.benchmarks import DRIVERS
from emu.workload.dolan import WRITER, DolanReproducer


def test_the_writer_is_alone_on_cpu0_and_each_reader_shares_a_cpu_with_its_partner_process() -> None:
    d = DolanReproducer(Workload(kthreads=0), 3, random.Random(0), tasks=0)
    assert DRIVERS["dolan"] is DolanReproducer
    assert d.ntasks == 5  # the writer, then (partner, reader) for each CPU but cpu0
    assert d.cpu_of(WRITER) == 0 and not d.is_partner(WRITER)
    roles = [(d.cpu_of(j), d.is_partner(j)) for j in range(1, d.ntasks)]
    assert roles == [(1, True), (1, False), (2, True), (2, False)]
    for j in range(1, d.ntasks):  # each end of a pipe names the other
        assert d.index(d.other(d.task_id(j))) == (j + 1 if d.is_partner(j) else j - 1)


def test_x2_is_reached_under_dolans_load_and_its_fix_is_clean_on_the_same_seed() -> None:
    cell = next(c for c in CELLS if c.id == "refcount@x86-v6.14")
    cfg = replace(cell.det_config(1), benchmark="dolan")
    report = run(cfg)
    assert report.harness["error"] is None, report.harness
    assert report.violation_counts.get("missed_flush"), (report.violation_counts, report.command)
    assert {v["site"] for v in report.violations} == {"user code runs on the loaded mm"}
    fixed = run(replace(cfg, arch="x86-v6.14.7", fail_fast=False))
    assert fixed.verdict == "clean", (fixed.violations[:2], fixed.command)
    m = fixed.metrics
    # the writer's copy-on-write breaks flush M; each reader's CPU switches between M and its partner's mm at every byte
    assert m["tlb_flushes"] > 0 and m["context_switches"] > 10 * m["tlb_flushes"], m
