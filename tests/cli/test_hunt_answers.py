"""``stress hunt``'s answers: a budget refused with its minimum, "not run", the violating runs'
seeds in the JSON, names whole at 80 columns, a Ctrl-C that says so and exits 130."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import psutil

from emu.harness.config import RunConfig
from stress.hunt import Target, minimum_budget, render, table_lines, verdict
from tests.procs import poll

CMD = [sys.executable, "-m", "stress", "hunt"]


def test_a_budget_too_small_is_refused_with_the_minimum() -> None:
    r = subprocess.run([*CMD, "--matrix", "--budget", "30s", "--jobs", "2"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    least = int(re.search(r"at least --budget (\d+)s", line).group(1))  # type: ignore[union-attr]
    assert least > 30
    # the minimum is enough: the same budget passes the check (and --runs 0 of a tiny matrix is not needed to see it)
    targets = [Target("a", RunConfig(duration=2.0), "violation", needed=3), Target("b", RunConfig(duration=2.0), "clean")]
    need = minimum_budget(targets, 2, 0)
    assert need == (3 * 3.5 + 1 * 3.5) / 2 + 3.5


def test_a_configuration_never_run_is_not_run_not_no() -> None:
    ran = Target("ran", RunConfig(), "clean", runs=2)
    unrun = Target("unrun", RunConfig(), "violation")
    assert unrun.answer == "not run" and ran.answer == "yes"
    assert verdict([ran, unrun], interrupted=False) == "not known (1 of 2 configurations not run)"
    assert verdict([ran], interrupted=True) == "not known (interrupted)"
    caught_wrong = Target("wrong", RunConfig(), "clean", runs=1, violating=1)
    assert verdict([caught_wrong, unrun], interrupted=True) == "NO"  # a failed expectation is known, interrupted or not
    assert "all expectations held: not known" in render([ran, unrun], 1.0, False)


def test_names_are_whole_at_80_columns() -> None:
    long = "luto-rfc@powerpc+fix=drop-check,scan-online,integrated+race-delay=1.0+threads=1"
    text = table_lines([Target(long, RunConfig(), "violation", runs=1, violating=1), Target("refcount@x86", RunConfig(), "clean")], 80)
    assert long in text.splitlines()
    assert all(len(line) <= 80 for line in text.splitlines())


def test_the_json_keeps_each_violating_runs_seed_and_rerun_command() -> None:
    r = subprocess.run([*CMD, "--quiet", "--sched", "pct", "--mutant", "refcount-no-grab", "--runs", "2", "--seed", "5", "--json", "-"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    (cfg,) = json.loads(r.stdout)["configs"]
    assert cfg["violating_runs"] and all(v["seed"] in (5, 6) for v in cfg["violating_runs"])
    for v in cfg["violating_runs"]:
        assert f"--seed {v['seed']}" in v["command"] and v["command"].startswith("python -m stress run ")


def test_a_single_configuration_is_named_with_its_options() -> None:
    r = subprocess.run([*CMD, "--quiet", "--sched", "pct", "--strategy", "luto-rfc", "--fix", "drop-check", "--runs", "1", "--seed", "1",
                        "--expect", "violation", "--json", "-"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert json.loads(r.stdout)["configs"][0]["name"] == "luto-rfc@x86+fix=drop-check"


def test_ctrl_c_stops_the_hunt_says_so_and_exits_130() -> None:
    # a 30 s run, stopped once at work: no host is refused it, and the hunt answers the signal the same way wherever it lands
    p = subprocess.Popen([*CMD, "--strategy", "refcount", "--budget", "120", "--jobs", "1", "--duration", "30", "--cpus", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    me = psutil.Process(p.pid)
    # a run has started: its CPU processes are there (grandchildren of the hunt)
    poll(lambda: any(len(k.children()) >= 2 for k in me.children()), 60, "a run's CPU processes")
    kids = me.children(recursive=True)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=90)
    assert p.returncode == 130, err
    assert "interrupted" in out and "all expectations held: not known (interrupted" in out and "Traceback" not in err
    _, alive = psutil.wait_procs(kids, timeout=10)
    assert alive == []
