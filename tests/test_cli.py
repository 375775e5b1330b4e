"""The command line: one-line errors with status 2, and nothing left behind on any exit path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from emu.shm import PREFIX, SHM_DIR, sweep_stale
from tests.conftest import segments_of

CMD = [sys.executable, "-m", "stress"]


def stress(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["run", "--cpus", "0"], "--cpus must be at least 1"),
        (["run", "--cpus", "abc"], "expected a whole number, got 'abc'"),
        (["run", "--strategy", "refcont"], "did you mean 'refcount'"),
        (["run", "--duration", "-1"], "--duration must be a positive number"),
        (["run", "--duration", "nan"], "expected a number"),
        (["run", "--cpus", "100000"], "more than this machine can hold"),
        (["run", "--mutant", "no-such"], "unknown mutant"),
        (["run", "--arch", "x68"], "did you mean 'x86'"),
        (["run", "--p-exit", "1.5"], "--p-exit must be a probability"),
        (["run", "--json", "/nonexistent/dir/r.json"], "--json: cannot write"),
        (["frobnicate"], "invalid choice"),
        (["run", "--shoot-all"], "--shoot-all applies to --strategy shoot-lazies"),
        (["run", "--expect", "maybe"], "invalid choice"),
        (["run", "--memory-model", "tos"], "did you mean 'tso'"),
        (["run", "--race-delay", "2"], "--race-delay must be a probability"),
    ],
)
def test_bad_input_is_one_line_with_status_2(args: list[str], expect: str) -> None:
    r = stress(*args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_list_names_strategies_mutants_and_arches() -> None:
    r = stress("list")
    assert r.returncode == 0
    for name in ("refcount", "refcount-no-grab", "x86"):
        assert name in r.stdout


def test_run_writes_json_and_exits_by_verdict(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    r = stress("run", "--cpus", "2", "--duration", "0.5", "--seed", "3", "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert "verdict: CLEAN" in r.stdout and "rerun:   python -m stress run --cpus 2" in r.stdout
    report = json.loads(out.read_text())
    assert report["verdict"] == "clean" and report["config"]["seed"] == 3

    r = stress("run", "--cpus", "8", "--duration", "2", "--seed", "3", "--mutant", "refcount-no-grab")
    assert r.returncode == 1 and "verdict: VIOLATION" in r.stdout


@pytest.mark.parametrize(("expect", "status"), [("clean", 0), ("violation", 1)])
def test_expect_turns_the_verdict_into_the_exit_status(expect: str, status: int) -> None:
    r = stress("run", "--cpus", "2", "--duration", "0.5", "--quiet", "--expect", expect)
    assert r.returncode == status, r.stderr
    assert ("expected violation, got clean" in r.stderr) == (status == 1)


def _start(*args: str) -> tuple[subprocess.Popen[str], psutil.Process]:
    p = subprocess.Popen([*CMD, "run", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc = psutil.Process(p.pid)
    return p, proc


def _wait_for_cpus(proc: psutil.Process, n: int, timeout: float = 30) -> list[psutil.Process]:
    """Poll until the runner has its n CPU processes and its segment (a condition, not a guess)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = [k for k in proc.children() if "resource_tracker" not in " ".join(k.cmdline())]
        if len(kids) >= n and segments_of(proc.pid):
            return kids
        time.sleep(0.02)
    raise AssertionError("the run did not start its CPUs")


def _assert_nothing_left(pid: int, kids: list[psutil.Process]) -> None:
    _, alive = psutil.wait_procs(kids, timeout=5)
    assert alive == [], f"orphan CPU processes: {alive}"
    assert segments_of(pid) == []


def test_ctrl_c_stops_cleanly_and_still_reports() -> None:
    p, proc = _start("--cpus", "4", "--duration", "60", "--seed", "1")
    kids = _wait_for_cpus(proc, 4)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "interrupted by SIGINT" in out and "verdict: CLEAN" in out
    _assert_nothing_left(p.pid, kids)


def test_a_killed_cpu_process_is_a_harness_failure() -> None:
    p, proc = _start("--cpus", "4", "--duration", "60", "--seed", "1")
    kids = _wait_for_cpus(proc, 4)
    os.kill(kids[2].pid, signal.SIGKILL)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 3, (out, err)
    assert "harness failure: cpu" in out and "died" in out
    _assert_nothing_left(p.pid, kids)


def test_a_killed_runner_takes_its_cpus_along_and_its_segment_is_swept() -> None:
    p, proc = _start("--cpus", "3", "--duration", "60", "--seed", "1")
    kids = _wait_for_cpus(proc, 3)
    p.kill()
    p.communicate(timeout=30)
    _, alive = psutil.wait_procs(kids, timeout=5)
    assert alive == [], "CPU processes outlived their runner"
    # SIGKILL leaves the segment (unless a concurrent test's run swept it already); the next run removes it
    r = stress("run", "--cpus", "1", "--duration", "0.2", "--quiet")
    assert r.returncode == 0
    assert segments_of(p.pid) == []


def test_sweep_removes_only_segments_of_dead_runners() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = Path(SHM_DIR) / f"{PREFIX}{dead.pid}_feedface"
    live = Path(SHM_DIR) / f"{PREFIX}{os.getpid()}_cafebabe"
    stale.write_bytes(b"x")
    live.write_bytes(b"x")
    try:
        removed = sweep_stale()
        assert stale.name in removed and not stale.exists()
        assert live.exists()
    finally:
        live.unlink()
        stale.unlink(missing_ok=True)


def test_the_rerun_command_reproduces_every_setting() -> None:
    from dataclasses import replace

    from emu.config import RunConfig, Workload
    from emu.report import command_for
    from stress.cli import build_parser, config_from

    cfg = replace(
        RunConfig(cpus=3, strategy="shoot-lazies", arch="powerpc", duration=1.5, seed=99, workload=Workload(threads=2, p_exit=0.05)),
        radix_exit_shoot=False, debug_check=True, noise=0.01, stutter=True, shuffle=True, hotplug=True, fail_fast=True,
    )  # fmt: skip
    argv = command_for(cfg).split()[3:]  # after "python -m stress"
    assert config_from(build_parser().parse_args(argv)) == cfg
