from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import psutil
import pytest
from hypothesis import settings

import emu.arch as arches
import emu.strategies as strategies
from emu.machine.shm import PREFIX, SHM_DIR

# The unit suite is deterministic: every run draws the same hypothesis examples, and no example
# database carries one run's finds into the next. HYPOTHESIS_PROFILE=explore draws new ones.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

INCONCLUSIVE = "inconclusive: "  # a race run the host could not give its time: skipped with this reason, never passed


def segments_of(pid: int) -> list[str]:
    return [n for n in os.listdir(SHM_DIR) if n.startswith(f"{PREFIX}{pid}_")]


@pytest.fixture(autouse=True)
def registries() -> Iterator[None]:
    """The part tables as they were: a test that loads a part in this process (a spec in the docs,
    an out-of-tree scheme) leaves them so, and the next test in the worker sees the built-in ones."""
    tables = (strategies.STRATEGIES, strategies.MUTANTS, arches.ARCHES, arches.ARCH_MUTANTS)
    saved = [dict(t) for t in tables]
    yield
    for t, s in zip(tables, saved, strict=True):
        t.clear()
        t.update(s)


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    """Every test: no segment of this process and no child process survives it."""
    yield
    assert segments_of(os.getpid()) == []
    children = psutil.Process().children(recursive=True)
    gone, alive = psutil.wait_procs(children, timeout=3)
    assert alive == [], f"processes left behind: {alive}"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("lazytlb race hunting")
    g.addoption("--race-count", type=int, default=2, help="seeded runs per matrix cell in tests/race (default 2)")
    g.addoption("--race-seconds", type=float, default=2.0, help="length of each race-hunting run (default 2)")
    g.addoption("--race-cpus", type=int, default=8, help="emulated CPUs per race-hunting run (default 8)")
    g.addoption("--race-report", default=None, metavar="PATH", help="write the race stage's cells, outcomes and seconds as JSON")
    g.addoption(
        "--race-budget", type=float, default=None, metavar="SECONDS",
        help="the race stage's budget: a race test not started within it is skipped as inconclusive",
    )  # fmt: skip


RACE_DEADLINE = "LAZYTLB_RACE_DEADLINE"  # the budget's end, in time.time(): set by the controller, inherited by xdist's workers


def pytest_configure(config: pytest.Config) -> None:
    budget = config.getoption("--race-budget")
    if budget is not None and not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        os.environ[RACE_DEADLINE] = str(time.time() + budget)


def pytest_runtest_setup(item: pytest.Item) -> None:
    deadline = os.environ.get(RACE_DEADLINE)
    if deadline and item.get_closest_marker("race") and time.time() > float(deadline):
        budget = item.config.getoption("--race-budget")
        pytest.skip(f"{INCONCLUSIVE}the race stage's budget ({budget:g}s) was spent before this test started")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "race_round" in metafunc.fixturenames:
        n = metafunc.config.getoption("--race-count")
        metafunc.parametrize("race_round", range(n), ids=[f"r{i}" for i in range(n)])


# -- the race stage's own report: which cells ran, how each ended, how long it took ---------------
_RACE: list[dict[str, object]] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("race"):
            item.user_properties.append(("race", True))  # travels with its reports, from an xdist worker too


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collects the race tests' outcomes (under xdist, on the controller, from every worker)."""
    if ("race", True) not in report.user_properties or not (
        report.when == "call" or (report.when == "setup" and report.outcome != "passed")
    ):
        return
    reason = ""
    outcome = report.outcome
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        outcome = "inconclusive" if reason.startswith(INCONCLUSIVE) else "skipped"
    _RACE.append(
        {
            "cell": report.nodeid.split("::")[-1],
            "test": report.nodeid,
            "outcome": outcome,
            "seconds": round(report.duration, 2),
            "reason": reason,
        }
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    if not _RACE:
        return
    rows = sorted(_RACE, key=lambda r: str(r["test"]))
    counts = {k: sum(r["outcome"] == k for r in rows) for k in ("passed", "failed", "inconclusive", "skipped")}
    tr = terminalreporter
    tr.section("race stage: cells run")
    for r in rows:
        tr.write_line(f"{r['outcome']:>12} {r['seconds']:7.2f}s  {r['test']}" + (f"  ({r['reason']})" if r["reason"] else ""))
    total = sum(float(r["seconds"]) for r in rows)  # type: ignore[arg-type]
    tr.write_line(
        f"race stage: {len(rows)} cells, {counts['passed']} passed, {counts['failed']} failed, {counts['inconclusive']} inconclusive "
        f"(the host could not give the run its time), {counts['skipped']} skipped; {total:.0f}s of runs"
    )
    path = config.getoption("--race-report")
    if path:
        with open(path, "w") as f:
            json.dump({"counts": counts, "cells": rows}, f, indent=1)
