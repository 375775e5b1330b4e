"""The first Ctrl-C stops every command, which reports what it has, leaves nothing behind and exits
130: a real SIGINT to a real process, sent once the command is at work (never after a sleep)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import psutil

from tests.cli.test_outputs_and_replays import B3
from tests.procs import CMD, poll, semaphores, stress


def _interrupt_when_busy(args: list[str], at_work: int = 1) -> tuple[subprocess.Popen[str], str, str, list[psutil.Process]]:
    """Start ``python -m stress ARGS``, wait for ``at_work`` processes under it (its CPUs), SIGINT it once."""
    p = subprocess.Popen([*CMD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    me = psutil.Process(p.pid)
    kids = poll(lambda: [k for k in me.children(recursive=True) if "resource_tracker" not in " ".join(k.cmdline())][:at_work]
                if len(me.children(recursive=True)) >= at_work else None, 60, "the command at work")  # fmt: skip
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    return p, out, err, kids


def test_run_reports_and_exits_130(tmp_path: Path) -> None:
    sems = semaphores()
    # no host is refused a 60 s run, and refcount is clean wherever the signal lands: the same outcome on any host
    p, out, err, kids = _interrupt_when_busy(["run", "--cpus", "2", "--duration", "60", "--json", str(tmp_path / "r.json")], 2)
    assert p.returncode == 130, err
    assert out.startswith("CLEAN: ") and "interrupted by SIGINT" in out and "Traceback" not in err
    assert json.loads((tmp_path / "r.json").read_text())["harness"]["interrupted"] == "SIGINT"  # what it has, written
    _, alive = psutil.wait_procs(kids, timeout=10)
    assert alive == [] and not (semaphores() - sems)


def test_bench_stops_at_the_first_ctrl_c() -> None:
    # a 30 s bench stopped at work: how far it got is the host's, the status and what is left are not
    p, _, err, kids = _interrupt_when_busy(["bench", "--cpus", "2", "--duration", "30", "--det-cpus", "3", "--quiet"], 2)
    assert p.returncode == 130 and "interrupted" in err and "Traceback" not in err
    _, alive = psutil.wait_procs(kids, timeout=10)
    assert alive == []


def test_shrink_keeps_the_smallest_failing_run_found_so_far(tmp_path: Path) -> None:
    report = tmp_path / "b3.json"
    assert stress("run", *B3, "--quiet", "--json", str(report)).returncode == 1
    out = tmp_path / "small.json"
    p, stdout, err, _ = _interrupt_when_busy(["shrink", str(report), "--json", str(out), "--budget", "5m", "--quiet"], 3)
    assert p.returncode == 130, err
    assert "interrupted after" in err and str(out) in err and "Traceback" not in err
    kept = json.loads(out.read_text())
    assert kept["verdict"] == "violation" and kept["violations"][0]["kind"] == "freed_while_lazy"
    assert stdout.startswith("VIOLATION: ")
    again = stress("run", "--replay", str(out), "--quiet", "--json", str(tmp_path / "again.json"))
    assert again.returncode == 1  # the run kept fails again, the same way
    assert json.loads((tmp_path / "again.json").read_text())["violations"][0]["kind"] == "freed_while_lazy"
