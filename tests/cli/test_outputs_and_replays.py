"""Where the output goes and what a replay accepts: ``--json -``, an unwritable output (status 4),
``--quiet``, ``--version`` on a command, options given with ``--replay``, options that do nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emu.harness.report import Report, event_timelines
from stress.cli import build_parser, given_options, subcommands
from stress.output import STATUS_OUTPUT
from tests.procs import stress

B3 = ["--cpus", "3", "--strategy", "luto-rfc", "--arch", "arm64", "--fix", "drop-check,scan-online,integrated", "--race-delay", "1",
      "--sched", "pct", "--steps", "50000", "--seed", "9", "--procs", "4", "--threads", "1", "--kthreads", "1", "--fail-fast"]  # fmt: skip


def one_line_error(r: object) -> str:
    err = r.stderr.strip()  # type: ignore[attr-defined]
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


# the run is deterministic: the same outcome on any host
@pytest.mark.parametrize("command", [["run", "--sched", "random", "--steps", "5000", "--quiet"], ["list"]])
def test_an_unwritable_json_is_one_line_and_status_4(command: list[str]) -> None:
    r = stress(*command, "--json", "/dev/full")
    assert r.returncode == STATUS_OUTPUT == 4
    assert "could not write '/dev/full'" in one_line_error(r)


def test_json_dash_writes_the_report_to_stdout_and_the_text_to_stderr() -> None:
    r = stress("run", "--sched", "random", "--steps", "5000", "--seed", "1", "--quiet", "--json", "-")  # clean on any host
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["config"]["seed"] == 1
    assert r.stderr.startswith("CLEAN: ") and not Path("-").exists()


def test_list_json_prints_the_json_alone() -> None:
    r = stress("list", "--json", "-")
    assert r.returncode == 0
    assert {s["name"] for s in json.loads(r.stdout)["strategies"]} >= {"refcount", "luto-rfc"}


def test_quiet_prints_no_header_and_run_knows_its_version() -> None:
    r = stress("run", "--sched", "random", "--steps", "5000", "--quiet")  # clean on any host
    assert r.returncode == 0 and r.stderr == "", r.stderr
    v = stress("run", "--version")
    assert v.returncode == 0 and v.stdout.startswith("lazytlb ")


def test_given_options_sees_an_option_given_at_its_default() -> None:
    run = subcommands(build_parser())["run"]
    assert given_options(run, ["--strategy", "refcount", "--cpus", "4"]) == {"strategy", "cpus"}
    assert given_options(run, []) == set()
    assert run.get_default("cpus") == 4  # the defaults are back after the second parse


@pytest.fixture(scope="module")
def b3_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("b3") / "b3.json"
    r = stress("run", *B3, "--quiet", "--json", str(path))
    assert r.returncode == 1, r.stderr
    return path


def test_an_option_given_at_its_default_value_with_replay_is_refused(b3_report: Path) -> None:
    r = stress("run", "--replay", str(b3_report), "--strategy", "refcount")
    assert r.returncode == 2
    assert "--strategy luto-rfc there, refcount here" in one_line_error(r)
    again = stress("run", "--replay", str(b3_report), "--strategy", "luto-rfc", "--quiet")  # restated: accepted
    assert again.returncode == 1, again.stderr


def test_an_edited_recording_replays_with_a_warning(b3_report: Path, tmp_path: Path) -> None:
    doc = json.loads(b3_report.read_text())
    doc["config"]["workload"]["p_fork"] = 0.07
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(doc))
    r = stress("run", "--replay", str(edited), "--quiet")
    assert "recorded setup was edited" in r.stderr and "no longer repeats the recorded run" in r.stderr
    plain = stress("run", "--replay", str(b3_report), "--quiet")
    assert "edited" not in plain.stderr


def test_the_story_shows_the_schemes_own_steps(b3_report: Path) -> None:
    texts = [e.text for e in event_timelines(Report.from_json(json.loads(b3_report.read_text())))[0]]
    assert any(t.startswith("reads cpu") and "'s lazy_mm: " in t for t in texts), texts
    assert any(t.startswith("xchg: parks ") and t.endswith("'s mm_to_mmdrop") for t in texts)
    assert any(t.startswith("stalls in the race window") for t in texts)


@pytest.mark.parametrize(
    "args, says",
    [
        (["--steps", "1000"], "--steps sets a deterministic run's load"),
        (["--depth", "2"], "--depth sets PCT's bug depth: add --sched pct"),  # not random, where --depth does nothing either
        (["--sched", "random", "--depth", "2"], "--depth is an option of --sched pct"),
        (["--race-delay", "1"], "refcount marks no race window"),
    ],
)
def test_an_option_that_does_nothing_is_refused(args: list[str], says: str) -> None:
    r = stress("run", "--duration", "0.3", *args)
    assert r.returncode == 2
    assert says in one_line_error(r)


def test_race_delay_is_taken_where_the_kernel_marks_a_window_for_every_scheme() -> None:
    """x86's --x86-unlazy-on-flush runs unlazy_mm_irqs_off, whose window is the kernel's, not a scheme's:
    --race-delay has somewhere to stall there under refcount too."""
    r = stress("run", "--sched", "random", "--steps", "3000", "--cpus", "2", "--x86-unlazy-on-flush", "--race-delay", "1")
    assert r.returncode in (0, 1), r.stderr
    assert "marks no race window" not in r.stderr


def test_procs_1_is_said_on_the_first_line() -> None:
    r = stress("run", "--sched", "random", "--steps", "5000", "--procs", "1")  # clean on any host
    assert r.returncode == 0
    assert "--procs 1: one user process lives at a time" in r.stderr.splitlines()[0]


def test_detection_help_is_whole_and_an_unknown_cell_is_an_error() -> None:
    import subprocess
    import sys

    h = subprocess.run([sys.executable, "-m", "stress.detection", "--help"], capture_output=True, text=True, timeout=60)
    assert h.returncode == 0 and "--only" in h.stdout and "broken cells' ids" in h.stdout and "--seeds" in h.stdout
    r = subprocess.run([sys.executable, "-m", "stress.detection", "free", "--only", "nope"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no broken cell 'nope'" in one_line_error(r)
