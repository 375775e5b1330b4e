"""``stress shrink``: a failing deterministic run becomes a smaller one that fails the same way,
whose report replays exactly; what cannot be shrunk is refused in one line."""

from __future__ import annotations

import json
import signal
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import psutil

from emu.harness.config import RunConfig, Workload
from emu.harness.runner import run
from tests.conftest import segments_of
from tests.procs import CMD, poll, stress

FAILING = RunConfig(
    cpus=3, strategy="luto-rfc", arch="arm64", fix="integrated,scan-online", sched="pct", steps=50_000, seed=1,
    workload=Workload(procs=2, threads=2, kthreads=1), fail_fast=True,
)  # fmt: skip


def test_a_failing_run_shrinks_to_a_smaller_one_that_replays_exactly(tmp_path: Path) -> None:
    first = run(FAILING)
    kind = next(v["kind"] for v in first.violations if v["kind"] != "leak")
    src = tmp_path / "failing.json"
    src.write_text(json.dumps(first.to_json()))
    out = stress("shrink", str(src), "--budget", "25", "--quiet", "--svg", str(tmp_path / "s.svg"), timeout=120)
    assert out.returncode == 0, out.stderr
    assert "shrunk:" in out.stdout and ">>" in out.stdout and "replay: python -m stress run --replay" in out.stdout
    shrunk = json.loads((tmp_path / "failing.shrunk.json").read_text())
    assert kind in shrunk["violation_counts"]
    # smaller, not just no larger: the first cut (the steps after the violation, and their hand-overs)
    # takes one replay; the rest of the budget's progress depends on the host and is not asserted
    assert shrunk["schedule"]["count"] < first.to_json()["schedule"]["count"]
    assert shrunk["config"]["steps"] < FAILING.steps and shrunk["config"]["cpus"] <= FAILING.cpus
    ET.fromstring((tmp_path / "s.svg").read_text())
    again = stress("run", "--replay", str(tmp_path / "failing.shrunk.json"), "--quiet", "--json", str(tmp_path / "again.json"))
    replayed = json.loads((tmp_path / "again.json").read_text())
    assert replayed["violations"] == shrunk["violations"] and replayed["timelines"] == shrunk["timelines"], again.stderr


def test_what_has_nothing_to_shrink_is_one_line(tmp_path: Path) -> None:
    free = tmp_path / "free.json"
    # any free run's report, refused for want of time or not: shrink turns away the mode before the verdict
    free.write_text(json.dumps(run(RunConfig(cpus=1, duration=0.2, seed=1)).to_json()))
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps(run(replace(FAILING, strategy="refcount", fix="", steps=5_000)).to_json()))
    for path, expect in ((free, "free-mode run"), (clean, "did not fail"), (tmp_path / "none.json", "cannot read")):
        out = stress("shrink", str(path))
        assert out.returncode == 2 and expect in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_ctrl_c_stops_a_shrink_and_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "failing.json"
    src.write_text(json.dumps(run(FAILING).to_json()))
    p = subprocess.Popen([*CMD, "shrink", str(src), "--budget", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    me = psutil.Process(p.pid)
    poll(lambda: me.children(), 30, "the first replay's CPUs")
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert json.loads((tmp_path / "failing.shrunk.json").read_text())["verdict"] == "violation"  # the smallest failing run so far
    assert segments_of(p.pid) == []


def test_the_story_shows_the_exit_of_a_cpu_that_dropped_the_mm_from_afar() -> None:
    from stress.shrink import story

    events = [
        [1, 0, "fork: mm2#1, 1 threads", False],
        [2, 0, "switch_mm mm12#1 -> mm2#1", False],
        [3, 2, "__mmput(mm12#1): exit_mmap, last user gone", False],
        [4, 1, "__mmput(mm9#1): exit_mmap, last user gone", False],
        [5, 0, "lazy on mm2#1 (user -> kernel)", False],
        [6, 1, "mm_count(mm2#1) +1 -> 2", False],
        [7, 2, "mm_count(mm2#1) -1 -> 1", False],
        [8, 1, "switch_mm mm2#1 -> mm21#1", False],
        [9, 1, "mm_count(mm2#1) -1 -> 0", False],
        [9, 1, "VIOLATION freed_while_lazy on mm2#1", True],
    ]
    report = {"timeline_events": [events], "violations": [{"mm": "mm2#1"}]}
    shown = [(e.t, e.cpu) for e in story(report)]
    # cpu2 only dropped a count of mm2: its exit of mm12 explains it; cpu1 ran mm2, so its other exit stays out
    assert (3, 2) in shown and (4, 1) not in shown
    assert shown == sorted(shown) and len(shown) == len(events) - 1
