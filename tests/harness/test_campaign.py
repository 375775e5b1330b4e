"""A campaign's pieces without a cluster: a run's record, a crashed run's clean-up, signatures."""

from __future__ import annotations

import json
import os
import signal
import threading
from typing import Any

import psutil

from emu.harness.campaign import run_one
from emu.harness.events import Event
from emu.harness.findings import Signature, group, shape
from emu.machine.shm import PREFIX, SHM_DIR
from tests.procs import poll


def test_a_run_killed_mid_way_leaves_no_process_and_no_segment() -> None:
    got: dict[str, Any] = {}
    t = threading.Thread(target=lambda: got.update(run_one(["--cpus", "2", "--duration", "60", "--seed", "1"], "here", 120)))
    t.start()

    def the_run() -> psutil.Process | None:
        for k in psutil.Process().children():
            if "run" in k.cmdline() and any(n.startswith(f"{PREFIX}{k.pid}_") for n in os.listdir(SHM_DIR)) and k.children():
                return k
        return None

    run = poll(the_run, 60, "the run, its segment and its CPUs")
    session = os.getsid(run.pid)
    cpus = run.children()
    run.send_signal(signal.SIGKILL)  # as the OOM killer would: no drain, no report, its CPUs orphaned
    t.join(60)
    assert not t.is_alive()
    assert got["verdict"] == "harness_failure" and got["no_report"] and "status -9" in got["error"]
    assert [n for n in os.listdir(SHM_DIR) if n.startswith(f"{PREFIX}{run.pid}_")] == []
    gone, alive = psutil.wait_procs(cpus, timeout=5)
    assert alive == []
    assert [p for p in psutil.process_iter() if _sid(p.pid) == session] == []


def _sid(pid: int) -> int:
    try:
        return os.getsid(pid)
    except OSError:
        return -1


def test_a_runs_record_is_small_and_carries_its_replay() -> None:
    rec = run_one(
        ["--strategy", "shoot-lazies", "--arch", "arm64", "--sched", "pct", "--cpus", "3", "--procs", "2", "--threads", "2",
         "--kthreads", "1", "--steps", "50000", "--fail-fast", "--seed", "1"],
        "here", 120,
    )  # fmt: skip
    assert rec["verdict"] == "violation" and rec["mode"] == "pct" and rec["node"] == "here"
    assert rec["replay"]["schedule"]["handovers"] and rec["replay"]["config"]["seed"] == 1
    assert len(repr(rec)) < 32_000  # the full report is about 150 kB: its timelines stay on the node
    sig = Signature.from_dict(rec["signature"])
    assert sig.kind == "freed_while_lazy" and sig.site == "__mmdrop" and sig.hooks[-1] == "__mmdrop"


def ev(kind: str, cpu: int, t: int) -> Event:
    return Event(kind, cpu, t, "step", kind, ())


def test_the_shape_is_the_top_of_the_violating_cpus_path_and_the_cpus_of_the_drop() -> None:
    path = ["switch_mm", "exit_mm", "mmput", "__mmput", "tlb_broadcast", "mmdrop", "__mmdrop"]
    alone = [ev(kind, 1, i) for i, kind in enumerate(path)]
    # another CPU switching away from the mm meanwhile is the workload's: the same shape
    busy = [*alone[:5], ev("switch_mm", 0, 5), *alone[5:]]
    # another CPU dropping a count of it meanwhile takes part in the drop: two CPUs
    raced = [*alone[:5], ev("mmdrop", 0, 5), *alone[5:]]
    top = ["tlb_broadcast", "mmdrop", "__mmdrop"]
    assert shape(alone, 1) == (top, 1)
    assert shape(busy, 1) == (top, 1)
    assert shape(raced, 1) == (top, 2)
    # each hook by its last occurrence: a switch_mm after the broadcast moves up
    assert shape([*alone[:5], ev("switch_mm", 1, 5), *alone[5:]], 1) == (["switch_mm", "mmdrop", "__mmdrop"], 1)


def test_findings_group_by_signature_and_pick_the_shortest_deterministic_replay() -> None:
    a = Signature("shoot-lazies", "arm64", "", "", "freed_while_lazy", "__mmdrop", ("tlb_broadcast", "mmdrop", "__mmdrop"), 1)
    b = Signature("shoot-lazies", "x86", "", "", "freed_while_lazy", "__mmdrop", ("switch_mm", "mmdrop", "__mmdrop"), 1)

    def row(i: int, sig: Signature, step: int | None) -> dict[str, Any]:
        replay = '{"x": 1}' if step is not None else None
        return {"id": i, "signature": json.dumps(sig.to_dict()), "finished": f"t{i}", "first_violation_step": step,
                "replay": replay, "config": '{"cpus": 3}', "campaign": 1, "target": sig.arch, "seed": i, "command": f"c{i}"}  # fmt: skip

    found = group([row(1, a, 900), row(2, b, None), row(3, a, 300), row(4, a, None)])
    assert [(f.signature, f.count) for f in found] == [(a, 3), (b, 1)]
    assert found[0].best_run()["id"] == 3  # type: ignore[index]
    assert found[1].best_run() is None  # free-running only: no deterministic reproducer
    assert (found[0].first_seen, found[0].last_seen) == ("t1", "t4")
