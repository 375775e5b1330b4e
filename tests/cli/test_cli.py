"""The command line: one-line errors with status 2, and nothing left behind on any exit path."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from emu.harness.bench_projection import machine_names
from emu.harness.benchmark import BENCHMARKS
from tests.procs import stress


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
        (["run", "--json", "."], "--json: cannot write to '.' (a directory)"),  # refused before the run, not a traceback after it
        (["run", "--svg", "/nonexistent/dir/t.svg"], "--svg: cannot write"),
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
    # every name stands in one column, apart from its summary (the longest, loongarch-drop-forgets-lazy, too)
    rows = [line for line in r.stdout.splitlines() if line.startswith("  ")]
    starts = {len(m.group(1)) for m in (re.match(r"(  \S+(?: [a-z0-9-]+)? {2,})\S", line) for line in rows) if m}
    assert len(starts) == 1 and all(re.match(r"  \S+(?: [a-z0-9-]+)? {2,}\S", line) for line in rows), r.stdout
    assert re.search(r"loongarch-drop-forgets-lazy {2,}\[arch loongarch", r.stdout)


def test_run_writes_json_and_exits_by_verdict(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    r = stress("run", "--cpus", "2", "--sched", "random", "--steps", "20000", "--seed", "3", "--json", str(out))  # clean on any host
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("CLEAN: ") and "\nrerun: python -m stress run --cpus 2 " in r.stdout
    report = json.loads(out.read_text())
    assert report["verdict"] == "clean" and report["config"]["seed"] == 3

    # deterministic: the seed's run catches the mutant on any host
    r = stress("run", "--cpus", "3", "--sched", "pct", "--steps", "50000", "--seed", "3", "--mutant", "refcount-no-grab")
    assert r.returncode == 1 and r.stdout.startswith("VIOLATION: cpu"), r.stdout + r.stderr


@pytest.mark.parametrize(("expect", "status"), [("clean", 0), ("violation", 1)])
def test_expect_turns_the_verdict_into_the_exit_status(expect: str, status: int) -> None:
    r = stress("run", "--cpus", "2", "--sched", "random", "--steps", "20000", "--quiet", "--expect", expect)  # clean on any host
    assert r.returncode == status, r.stderr
    assert ("expected violation, got clean" in r.stderr) == (status == 1)


def test_the_rerun_command_reproduces_every_setting() -> None:
    from dataclasses import replace

    from emu.harness.config import RunConfig, Workload
    from emu.harness.report import command_for
    from stress.cli import build_parser
    from stress.options import config_from

    cfg = replace(
        RunConfig(cpus=3, strategy="shoot-lazies", arch="powerpc", duration=1.5, seed=99, workload=Workload(threads=2, p_exit=0.05)),
        debug_check=True, trim_timer=3, noise=0.01, stutter=True, shuffle=True, hotplug=True, fail_fast=True,
    )  # fmt: skip
    argv = command_for(cfg).split()[3:]  # after "python -m stress"
    assert config_from(build_parser().parse_args(argv)) == cfg
    # a benchmark-shaped load's run (Dolan's reproducer: the race suite's x86 cells) reruns as such
    argv = ["run", "--cpus", "4", "--arch", "x86-v6.14", "--seed", "5", "--benchmark", "dolan", "--bench-tasks", "2"]
    bench = config_from(build_parser().parse_args(argv))
    assert bench.benchmark == "dolan" and bench.workload.kthreads == 0  # its pools sized for it: a quiet machine
    assert "--benchmark dolan --bench-tasks 2" in command_for(bench)
    assert config_from(build_parser().parse_args(command_for(bench).split()[3:])) == bench


def test_version_on_the_module_and_the_script_entry_point() -> None:
    from stress import __version__

    r = stress("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"lazytlb {__version__}", r
    # the console script is pyproject's entry point: what it names must exist and answer the same,
    # whether or not this tree is installed (a checkout run through PYTHONPATH has no script)
    entry = re.search(r'^lazytlb = "([\w.]+):(\w+)"$', (Path(__file__).parents[2] / "pyproject.toml").read_text(), re.M)
    assert entry, "pyproject.toml's [project.scripts] names no lazytlb"
    module, func = entry.groups()
    r = subprocess.run([sys.executable, "-c", f"import sys; from {module} import {func}; sys.exit({func}(['--version']))"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip() == f"lazytlb {__version__}", r


def test_the_installed_script_answers_where_there_is_one() -> None:
    from stress import __version__

    script = Path(sys.executable).parent / "lazytlb"  # the console script an install puts beside the interpreter
    if not script.exists():
        pytest.skip("this tree is not installed here (pip install .): no console script to run")
    r = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"lazytlb {__version__}", r


def test_every_command_takes_quiet_and_json() -> None:
    from stress.cli import build_parser, subcommands

    for name, parser in subcommands(build_parser()).items():
        options = {o for a in parser._actions for o in a.option_strings}
        assert {"--quiet", "--json"} <= options, name


def test_list_quiet_prints_names_and_json_writes_them(tmp_path: Path) -> None:
    out = tmp_path / "list.json"
    r = stress("list", "--quiet", "--json", str(out))
    assert r.returncode == 0, r.stderr
    lists = json.loads(out.read_text())
    names = [x["name"] for items in lists.values() for x in items]
    assert r.stdout.split() == names and "refcount-no-grab" in names and "x86" in names
    assert {x["mutant_of"] for x in lists["mutants"]} <= {x["name"] for x in lists["strategies"]}
    # what compare --benchmark takes: every benchmark and machine file, a variant naming the machine it stands for
    assert [x["name"] for x in lists["benchmarks"]] == list(BENCHMARKS)
    assert [x["name"] for x in lists["machines"]] == machine_names()
    assert {x["name"]: x["published_as"] for x in lists["machines"]}["milan-36-nodrain"] == "milan-36"
    text = stress("list").stdout
    assert "benchmarks (compare --benchmark" in text and "machines (compare" in text and "FITTED: lru_gen_store" in text


def test_a_benchmark_run_says_in_one_line_what_it_cannot_do() -> None:
    for argv, expect in (
        (["run", "--bench-tasks", "3"], "add --benchmark NAME"),
        (["run", "--benchmark", "context_switch1_threads", "--bench-tasks", "50", "--procs", "2"], "whose pool holds"),
    ):
        r = stress(*argv)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and expect in lines[0], (argv, r.returncode, r.stderr)
