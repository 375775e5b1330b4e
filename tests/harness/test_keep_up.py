"""A host too slow for the machine: the run still ends by its deadline and says what did not fit.

The deadline's arithmetic is moved, not the host: with the reserve after the load larger than
the second the run may overrun, the load is shortened whatever the boot; with a negative second,
no boot is quick enough. Each is then a plain run on this machine."""

from __future__ import annotations

import pytest

import emu.harness.runner
from emu.harness.config import RunConfig
from emu.harness.runner import run


def test_a_load_shortened_by_the_boot_is_said_and_the_verdict_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        emu.harness.runner, "END_RESERVE_S", emu.harness.runner.KEEP_UP_S + 0.5
    )  # the load must end 0.5 s before the duration
    monkeypatch.setattr(emu.harness.runner, "OVERRUN_S", 60.0)  # and no boot of a busy host is refused: the same outcome on any host
    report = run(RunConfig(cpus=2, duration=2.0, seed=5))
    assert report.verdict == "clean" and report.status == 0 and report.harness["drained"]
    # a busy host may add notes of its own (a CPU process that never ran, a late end): only the shortened load's is this test's
    notes = report.harness["keep_up"]
    shortened = [n for n in notes if n.startswith("the load ran ")]
    assert len(shortened) == 1 and "s of the 2s asked, to leave about " in shortened[0], notes
    host = ("the run ended ", "1 of 2 CPU processes never ran", "2 of 2 CPU processes never ran")
    assert all(n.startswith(("the load ran ", *host)) for n in notes), notes


def test_a_boot_that_cannot_fit_the_duration_stops_at_once_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    # the boot's deadline is behind it before the first fork: refused on any host, however fast
    monkeypatch.setattr(emu.harness.runner, "KEEP_UP_S", -10.0)
    report = run(RunConfig(cpus=4, duration=1.0, seed=5))
    assert report.verdict == "harness_failure" and report.status == 3
    error = report.harness["error"]
    assert error.startswith("the machine cannot keep up: draining and stopping 4 CPU processes takes about "), error
    assert "give it a longer --duration or fewer --cpus" in error
    assert report.metrics["context_switches"] == 0
