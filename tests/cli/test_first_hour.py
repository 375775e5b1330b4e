"""What a newcomer meets in the first hour: a real Ctrl-C (to the whole process group, as a
terminal sends it), a name typed as uname or the kernel spells it, a part's file named without
its class, a progress display in a pipe. Each answer is one line, names the fix, and leaves nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import segments_of
from tests.procs import CMD, assert_nothing_left, poll, semaphores, start, stress, wait_for_cpus, wait_for_run

CEILING = "import sys\nfrom stress.bench import ceiling\ntry:\n    ceiling(2, 1.0, 4.0, 60)\nexcept KeyboardInterrupt:\n    sys.exit(130)\n"


def test_ctrl_c_to_the_group_stops_bench_ceiling_workers_without_a_traceback() -> None:
    # a terminal's Ctrl-C reaches every process of the group: the workers too, not only the parent
    p = subprocess.Popen([sys.executable, "-c", CEILING], stderr=subprocess.PIPE, text=True, start_new_session=True)
    me = psutil.Process(p.pid)

    def workers() -> list[psutil.Process] | None:
        kids = [k for k in me.children() if "resource_tracker" not in " ".join(k.cmdline())]
        return kids if len(kids) >= 2 else None

    kids = poll(workers, 60, "the ceiling's workers")
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    _, alive = psutil.wait_procs(kids, timeout=10)
    assert alive == []


def test_explore_progress_in_a_pipe_is_plain_lines() -> None:
    # a CI log has no carriage returns to redraw with: each progress line is a line
    r = stress("explore", "--scenario", "lazy-exit", "--preemptions", "6", "--reduce", "none", "--budget", "60")
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr
    lines = r.stderr.splitlines()
    assert lines[0].startswith("explore: lazy-exit") and all(line.startswith("  ") and "schedules" in line for line in lines[1:])
    assert r.stdout.startswith("NOT COMPLETE: the budget of 60 schedules ran out")


def test_ctrl_c_in_explore_says_how_far_it_got() -> None:
    args = ["explore", "--scenario", "lazy-exit", "--preemptions", "8", "--reduce", "none", "--quiet"]
    p = subprocess.Popen([*CMD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    me = psutil.Process(p.pid)
    poll(lambda: len(me.children()) >= 2, 60, "explore's CPUs")
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert out.startswith("NOT COMPLETE: interrupted "), out
    assert err.strip() == "stress: interrupted"


@pytest.mark.parametrize(
    ("argv", "meant"),
    [
        (["run", "--arch", "x86_64"], "x86"),  # uname -m's name, not the closest spelling ('x86-v6.14')
        (["run", "--arch", "aarch64"], "arm64"),
        (["compare", "--arches", "x86,ppc64le"], "powerpc"),
        (["run", "--sched", "PCT"], "pct"),  # another case
        (["RUN"], "run"),
        (["compare", "--benchmark", "hackbench", "--machine", "emu/harness/machines/milan-36.json"], "milan-36"),  # the file's path
        (["explore", "--reduce", "DPOR"], "dpor"),
        (["explore", "--scenario", "b3", "--preemptions", "1"], "b3-rescan"),  # the one name it begins
    ],
)
def test_a_name_typed_as_uname_or_in_another_case_gets_the_one_meant(argv: list[str], meant: str) -> None:
    r = stress(*argv)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.rstrip().endswith(f"did you mean '{meant}'?"), r.stderr


EXAMPLE = str(Path(__file__).parents[2] / "examples" / "remote_active_mm.py")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        # the file without its class: the spec meant, with the class at the file's root (not its mutant)
        (["run", "--strategy", EXAMPLE], f"'{EXAMPLE}' is a file: name its class too; did you mean '{EXAMPLE}:RemoteActiveMm'?"),
        (["run", "--arch", "/"], "'/' is a directory: name the architecture's file and its class, FILE.py:Class"),
        (["run", "--strategy", "/nowhere/scheme.py"], "'/nowhere/scheme.py': no such file (a strategy from a file: FILE.py:Class"),
        # a directory named as the file: said so, and which option named it
        (["run", "--strategy", "/tmp:Foo"], "--strategy '/tmp': a directory, not a Python file: FILE.py:Class"),
        (["compare", "--strategies", "refcount,/nowhere/scheme.py:Foo"], "--strategies '/nowhere/scheme.py': no such file"),
    ],
)
def test_a_part_named_by_file_is_told_what_the_spec_needs(argv: list[str], says: str) -> None:
    r = stress(*argv)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert says in r.stderr, r.stderr


FAKE_RAY = "def init(address=None, **kw):\n    raise RuntimeError(f'fake ray: address={address!r}')\n"


def test_executor_ray_starts_its_own_cluster_whatever_one_was_left_running(tmp_path: Path) -> None:
    # ray.init() without an address joins a cluster that `ray start` (or a stale address file) left,
    # and refuses num_cpus there: hunt asks for a local one, and says what failed, not "--address None"
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text(FAKE_RAY)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    r = stress("hunt", "--executor", "ray", "--strategy", "refcount", "--runs", "1", env=env)
    assert r.returncode == 2
    assert r.stderr.strip() == "stress: error: --executor ray: cannot start a Ray cluster here: fake ray: address='local'"


def test_an_unknown_matrix_cell_is_a_readable_line() -> None:
    # the matrix has a hundred cells: the nearest few and the one meant, not every id on one line
    r = stress("hunt", "--matrix", "--cell", "refcount@x87")
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1
    assert len(r.stderr) < 400 and r.stderr.rstrip().endswith("did you mean 'refcount@x86'?"), r.stderr
    assert "unknown matrix cell 'refcount@x87' (one of " in r.stderr


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["findings", "/"], "stress: error: findings: '/' is a directory, not a campaign database (hunt --db PATH writes one)"),
        (["explore", "--scenario", "b3-rescan"], "stress: error: explore: give --preemptions K (e.g. 2)"),
        (["explore", "--preemptions", "2"], "stress: error: explore: give --scenario NAME (see 'list')"),
    ],
)
def test_what_is_missing_or_misplaced_is_named(argv: list[str], line: str) -> None:
    r = stress(*argv)
    assert r.returncode == 2 and r.stderr.strip() == line


def test_a_sigterm_to_the_group_drains_and_reports_as_one_to_the_runner_does(tmp_path: Path) -> None:
    # timeout(1) and a cancelled CI job signal the whole group: the CPUs must not die of it (a harness failure)
    sems = semaphores()
    p, proc = start("--cpus", "2", "--duration", "60", "--seed", "1", "--quiet", start_new_session=True)
    kids = wait_for_cpus(proc, 2)
    wait_for_run(proc)  # a signal during the boot ends a run undrained
    os.killpg(p.pid, signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, out + err
    assert out.startswith("CLEAN: ") and "no violation (interrupted by SIGTERM)" in out.splitlines()[0]
    assert_nothing_left(p.pid, kids, sems)


def test_a_sigterm_to_explores_group_cleans_up_and_says_how_far_it_got() -> None:
    args = ["explore", "--scenario", "lazy-exit", "--preemptions", "8", "--reduce", "none", "--quiet"]
    p = subprocess.Popen([*CMD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    me = psutil.Process(p.pid)
    kids = poll(lambda: me.children() if len(me.children()) >= 2 else None, 60, "explore's CPUs")
    os.killpg(p.pid, signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert out.startswith("NOT COMPLETE: interrupted ") and err.strip() == "stress: interrupted"
    _, alive = psutil.wait_procs(kids, timeout=10)
    assert alive == [] and segments_of(p.pid) == []


def test_a_duration_past_the_limit_is_told_the_limit() -> None:
    # 1e9 is positive: the line says what the bound is, not only that the number must be positive
    r = stress("run", "--duration", "1e9")
    assert r.returncode == 2
    assert r.stderr.strip() == "stress: error: --duration must be a positive number of seconds up to a week (604,800), got 1e+09"


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["run", "--duration", "0.1", "--json", "{d}/r", "--svg", "{d}/r"], "--json and --svg name the same file '{d}/r'"),
        (["run", "--duration", "0.1", "--json", "{d}/r", "--svg", "{d}/./r"], "--json and --svg name the same file '{d}/./r'"),
        (["findings", "{d}/c.db", "--json", "{d}/c.db"], "DB and --json name the same file '{d}/c.db'"),
        (["hunt", "--db", "{d}/c.db", "--json", "{d}/c.db"], "--db and --json name the same file '{d}/c.db'"),
        (["shrink", "{d}/r.json", "--svg", "{d}/r.json"], "REPORT and --svg name the same file '{d}/r.json'"),
    ],
)
def test_two_files_of_a_command_that_are_one_are_refused_before_anything_runs(tmp_path: Path, argv: list[str], line: str) -> None:
    # the SVG written over the JSON report (or a database overwritten by its findings' JSON) is found out too late
    (tmp_path / "c.db").write_bytes(b"")
    (tmp_path / "r.json").write_text("{}")
    r = stress(*(a.format(d=tmp_path) for a in argv))
    assert r.returncode == 2 and r.stderr.strip() == f"stress: error: {line.format(d=tmp_path)}: give each its own"
    assert (tmp_path / "c.db").read_bytes() == b"" and (tmp_path / "r.json").read_text() == "{}" and not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv", [["run", "--json", ""], ["run", "--svg", ""], ["hunt", "--db", ""], ["list", "--json", ""]])
def test_an_empty_output_path_is_refused_not_ignored(argv: list[str]) -> None:
    # `--json "$OUT"` with OUT unset wrote nothing and said nothing
    r = stress(*argv, "--quiet")
    assert r.returncode == 2 and r.stderr.strip().startswith(f"stress: error: {argv[1]}: an empty path (an unset shell variable?)")


def test_the_program_alone_lists_its_commands() -> None:
    r = stress()
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1
    commands = "run, hunt, shrink, compare, findings, bench, explore, list"
    assert r.stderr.strip().endswith(f"COMMAND: one of {commands} (start with: stress run --help)")


def test_a_benchmark_too_big_for_the_pools_names_the_options_given() -> None:
    # the pools are sized from --bench-tasks: the line named --procs, which was never given
    r = stress("run", "--benchmark", "tlb_flush2_threads", "--bench-tasks", "4000", "--quiet")
    assert r.returncode == 2 and "--procs" not in r.stderr
    assert r.stderr.strip() == (
        "stress: error: --benchmark tlb_flush2_threads --bench-tasks 4000 on 4 CPUs needs 5,336 process slots, "
        "more than 4,096: give fewer --bench-tasks or --cpus"
    )


def test_a_value_that_begins_with_a_dash_is_told_to_use_equals() -> None:
    # argparse takes -5s for an option and says only 'expected one argument'
    r = stress("hunt", "--budget", "-5s")
    assert r.returncode == 2
    assert r.stderr.strip().endswith("expected one argument (a value that begins with '-' goes after '=': --budget=-5s)")
    r = stress("run", "--json", "--quiet")  # a path forgotten: no such hint
    assert r.returncode == 2 and r.stderr.strip().endswith("argument --json: expected one argument")
