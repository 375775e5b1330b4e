"""``stress shrink``: a failing deterministic run becomes a smaller one that fails the same way,
whose report replays exactly; what cannot be shrunk is refused in one line."""

from __future__ import annotations

import json
import signal
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil

from emu.arch.base import EV_SWITCH_MM
from emu.checks.oracle import EV_VIOLATION
from emu.harness.config import RunConfig, Workload
from emu.harness.events import Event
from emu.harness.events import to_json as events_to_json
from emu.harness.findings import STORY_EVENTS, story
from emu.harness.report import Report, event_timelines
from emu.harness.runner import run
from emu.kernel.mm import EV_ALLOC, EV_MMDROP, EV_MMGRAB, EV_MMPUT_LAST
from emu.kernel.sched import EV_EXEC, EV_LAZY_ENTER
from emu.kernel.tasks import EV_FORK
from emu.machine.trace import format_of, kind_of
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


def step_events(*rows: tuple[int, int, int, tuple[Any, ...]]) -> list[Event]:
    """Events of a deterministic run from (step, cpu, event code, values); the last one is the violation's, marked."""
    last = len(rows) - 1
    return [Event(kind_of(code), cpu, t, "step", format_of(code), vals, i == last) for i, (t, cpu, code, vals) in enumerate(rows)]


def test_the_story_shows_the_exit_of_a_cpu_that_dropped_the_mm_from_afar() -> None:
    events = step_events(
        (1, 0, EV_FORK, ("mm2#1", 1)),
        (2, 0, EV_SWITCH_MM, ("mm12#1", "mm2#1")),
        (3, 2, EV_MMPUT_LAST, ("mm12#1",)),
        (4, 1, EV_MMPUT_LAST, ("mm9#1",)),
        (5, 0, EV_LAZY_ENTER, ("mm2#1",)),
        (6, 1, EV_MMGRAB, ("mm2#1", 2)),
        (7, 2, EV_MMDROP, ("mm2#1", 1)),
        (8, 1, EV_SWITCH_MM, ("mm2#1", "mm21#1")),
        (9, 1, EV_MMDROP, ("mm2#1", 0)),
        (9, 1, EV_VIOLATION, ("freed_while_lazy", "mm2#1")),
    )  # fmt: skip
    report = {"events": events_to_json([events]), "violations": [{"mm": "mm2#1"}]}
    shown = [(e.t, e.cpu) for e in story(report)]
    # cpu2 only dropped a count of mm2: its exit of mm12 explains it; cpu1 ran mm2, so its other exit stays out
    assert (3, 2) in shown and (4, 1) not in shown
    assert shown == sorted(shown) and len(shown) == len(events) - 1


def test_a_long_story_starts_at_the_birth_of_its_mm() -> None:
    life = [(10 + i, i % 2, EV_LAZY_ENTER, ("mm5#2",)) for i in range(3 * STORY_EVENTS)]
    events = step_events(
        (1, 0, EV_ALLOC, ("mm5#2", 1)),
        (2, 0, EV_SWITCH_MM, ("mm3#1", "mm5#2")),
        (3, 0, EV_EXEC, ("mm5#2", "mm3#1")),
        *life,
        (900, 1, EV_VIOLATION, ("use_after_free", "mm5#2")),
    )
    shown = story({"events": events_to_json([events]), "violations": [{"mm": "mm5#2"}]})
    # its allocation and the exec that made it a task's, then its last events up to the violation
    assert [e.kind for e in shown[:3]] == ["mm_alloc", "exec_mmap", "lazy_enter"] and shown[2].t > 10
    assert len(shown) == STORY_EVENTS and shown[-1].mark


def test_the_story_of_an_mm_born_by_exec_starts_at_its_birth() -> None:
    # a real run: the scan-online luto-rfc mockup frees an mm that a task's exec made, the 157 events
    # that name it in the timeline more than a story holds (its last 40 alone begin mid-life)
    cfg = replace(FAILING, sched="random", seed=2, workload=replace(FAILING.workload, p_exec=0.01))
    doc = run(cfg).to_json()
    name = doc["violations"][0]["mm"]
    (events,) = event_timelines(Report.from_json(doc))[:1]
    assert len([e for e in events if e.names(name)]) > STORY_EVENTS, "the story is cut: the birth is not among its last events"
    shown = story(doc)
    assert (shown[0].kind, shown[0].values[0]) == ("mm_alloc", name)
    assert (shown[1].kind, shown[1].values[0]) == ("exec_mmap", name), [e.text for e in shown[:3]]
    assert shown[-1].mark and shown[-1].kind == "violation" and len(shown) == STORY_EVENTS
