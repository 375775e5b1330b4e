"""Bad input for every option of every command, found by walking the parser: a command added later
is covered without a new test. Each mistake is one line on stderr, status 2, no traceback; a
hypothesis fuzz over whole command lines shows that no input escapes that or leaves anything."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import tempfile
from collections.abc import Iterator

import psutil
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stress.cli import build_parser, main, subcommands
from stress.hunt import Address
from stress.options import Names, Number
from tests.conftest import segments_of

PARSER = build_parser()
COMMANDS = subcommands(PARSER)


def call(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in this process: (status, stdout, stderr). An escaping exception fails the test
    with its traceback, which is exactly what a user must never see. A call that hangs is the
    per-test timeout's to name (pytest-timeout), not a clock of this test's."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


def assert_usage_error(argv: list[str], *expect: str) -> str:
    status, out, err = call(argv)
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("stress: error: "), (argv, status, err)
    assert "Traceback" not in err and out == ""
    for e in expect:
        assert e in lines[0], (argv, lines[0])
    return lines[0]


def options(cmd: str) -> list[argparse.Action]:
    return [a for a in COMMANDS[cmd]._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


def typo(name: str) -> str:
    """A near miss: one letter dropped from the middle."""
    i = len(name) // 2
    return name[:i] + name[i + 1 :]


CASES = [(cmd, a) for cmd in COMMANDS for a in options(cmd)]
IDS = [f"{cmd} {a.option_strings[-1]}" for cmd, a in CASES]


def _numbers(a: argparse.Action) -> Iterator[tuple[str, str]]:
    """(value, what the error must say) for a numeric option: not a number, and far out of range
    at both ends (every numeric option has a range: an unbounded one is a finding)."""
    yield "abc", "expected"
    yield "", "expected"
    if a.type.what == "a whole number":  # type: ignore[union-attr]
        yield "1.5", "expected a whole number"
        yield "9" * 30, a.option_strings[-1]
        yield "-" + "9" * 30, a.option_strings[-1]
    else:
        yield "nan", "expected a number"
        yield "1e30", a.option_strings[-1]
        yield "-1e30", a.option_strings[-1]


@pytest.mark.parametrize(("cmd", "action"), CASES, ids=IDS)
def test_every_option_rejects_bad_values_in_one_line(cmd: str, action: argparse.Action) -> None:
    opt = action.option_strings[-1]
    if action.nargs == 0:  # a flag: it takes no value
        assert_usage_error([cmd, f"{opt}=yes"], opt)
        return
    assert_usage_error([cmd, opt], opt, "expected one argument")  # the value is missing
    if isinstance(action.type, Number):
        for value, expect in _numbers(action):
            assert_usage_error([cmd, f"{opt}={value}"], expect)
    elif isinstance(action.type, Names) or action.choices:
        valid = action.type.valid() if isinstance(action.type, Names) else list(action.choices)  # type: ignore[union-attr, arg-type]
        near = typo(valid[0])
        assert_usage_error([cmd, opt, near], f"'{near}'", f"did you mean '{valid[0]}'?")
        assert_usage_error([cmd, opt, "zzzzzz"], "'zzzzzz'")
    elif action.metavar == "PATH":
        assert_usage_error([cmd, opt, "/nonexistent/dir/out.json"], opt, "cannot write")
    elif isinstance(action.type, Address):
        assert_usage_error([cmd, opt, "localhost"], opt, "expected a cluster address")
        assert_usage_error([cmd, opt, "head:99999"], opt, "expected a cluster address")
    elif action.metavar == "FILE":  # a file to read
        assert_usage_error([cmd, opt, "/nonexistent/dir/in.json"], opt, "cannot read")
    else:
        pytest.fail(f"{cmd} {opt}: give it a checked type (Number, Names, choices) or metavar PATH / FILE so bad values are tested")


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_misspelled_commands_and_options_get_the_closest_name(cmd: str) -> None:
    assert_usage_error([typo(cmd) + "x"], "invalid choice", f"did you mean '{cmd}'?")
    for a in options(cmd):
        opt = a.option_strings[-1]
        wrong = opt + "zz"
        if any(o.startswith(wrong) for b in options(cmd) for o in b.option_strings):
            continue  # an abbreviation of another option: argparse accepts it
        args = [cmd, wrong] if a.nargs == 0 else [cmd, wrong, "1"]
        assert_usage_error(args, "unrecognized arguments", f"did you mean '{opt}'?")


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_an_option_of_another_command_suggests_one_of_this_commands_or_none(cmd: str) -> None:
    """argparse reports unknown options against the whole program: the hint must come from this
    command's own options, and never be the word itself (``compare --quiet`` once got "did you mean '--quiet'?")."""
    own = {o for a in COMMANDS[cmd]._actions for o in a.option_strings}
    others = sorted({o for c in COMMANDS.values() for a in c._actions for o in a.option_strings if o.startswith("--")} - own)
    for word in others:
        if any(o.startswith(word) for o in own):
            continue  # an abbreviation of one of this command's options: argparse accepts it
        line = assert_usage_error([cmd, word], "unrecognized arguments")
        hint = re.search(r"did you mean '([^']*)'", line)
        assert hint is None or (hint.group(1) in own and hint.group(1) != word), line


def test_an_option_before_the_command_is_told_where_it_goes() -> None:
    assert_usage_error(["--quiet", "compare"], "'--quiet' goes after the command: stress compare --quiet")


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["run", "--shoot-all"], "--shoot-all applies to --strategy shoot-lazies"),
        (["run", "--debug-check", "--strategy", "refcount"], "--debug-check applies to --strategy shoot-lazies"),
        (["run", "--mutant", "refcount-no-grab", "--strategy", "shoot-lazies"], "belongs to strategy 'refcount'"),
        (["run", "--cpus", "100000"], "more than this machine can hold"),
        (["run", "--p-exit", "0"], "--p-exit must be above 0"),
        ([], "required"),
    ],
)
def test_conflicting_and_impossible_settings_are_one_line(argv: list[str], expect: str) -> None:
    assert_usage_error(argv, expect)


def test_help_is_not_an_error() -> None:
    for cmd in [[], *([c] for c in COMMANDS)]:
        status, out, err = call([*cmd, "--help"])
        assert status == 0 and "usage:" in out and err == ""


# -- the fuzz -------------------------------------------------------------------------------

JUNK = st.sampled_from(["", "-", "--", "-x", "--=", "abc", "1e999", "-1", "0", "nan", "\x00", "é", "--cpus=", "=1"])


def _values(a: argparse.Action) -> st.SearchStrategy[str]:
    """Values that mostly fail fast; those that pass keep a run tiny (a few CPUs, < 0.2s)."""
    if "--duration" in a.option_strings:
        return st.sampled_from(["0.05", "0.1", "0", "-1", "1e30", "x"])
    if isinstance(a.type, Number):
        return st.one_of(
            st.integers(0, 3).map(str),
            st.floats(0, 1).map(lambda f: f"{f:.3f}"),
            st.integers(-(10**20), 10**20).map(str),
            JUNK,
            st.text(max_size=4),
        )
    if isinstance(a.type, Names):
        valid = a.type.valid()
        return st.one_of(st.sampled_from(valid), st.sampled_from(valid).map(typo), st.text(max_size=6))
    if a.choices:
        return st.one_of(st.sampled_from(list(a.choices)), st.text(max_size=6))  # type: ignore[arg-type]
    if a.metavar in ("PATH", "FILE"):
        return st.sampled_from(["r.json", "sub/r.json", "", "/nonexistent/r.json", "."])
    return st.text(max_size=8)


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    cmd = draw(st.one_of(st.sampled_from(list(COMMANDS)), JUNK))
    argv = [cmd]
    acts = options(cmd) if cmd in COMMANDS else options(next(iter(COMMANDS)))
    if cmd == "run":
        argv += ["--cpus", draw(st.sampled_from(["1", "2"])), "--duration", "0.05", "--quiet"]  # later options override these
    if cmd == "hunt":
        argv += ["--cpus", "1", "--duration", "0.05", "--budget", "1", "--quiet"]  # a budget too small to start a run
    if cmd == "bench":
        argv += ["--cpus", "1", "--duration", "0.2", "--det-cpus", "1"]  # the shortest bench there is
    if cmd == "compare":
        argv += ["--strategies", "refcount", "--arches", "x86", "--cpus", "1", "--duration", "0.05"]  # one tiny run
    for _ in range(draw(st.integers(0, 4)) if acts else 0):
        a = draw(st.sampled_from(acts))
        opt = draw(st.one_of(st.just(a.option_strings[-1]), st.just(typo(a.option_strings[-1])), JUNK))
        argv.append(opt)
        if a.nargs != 0 and draw(st.integers(0, 5)):
            argv.append(draw(_values(a)))
    return argv


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argv=command_lines())
@example(argv=["run", "--cpus", "2", "--duration", "0.05", "--quiet", "--json", "r.json"])  # valid runs, tiny
@example(argv=["run", "--cpus", "1", "--duration", "0.05", "--quiet", "--mutant", "refcount-no-grab", "--p-fork", "1"])
@example(argv=["run", "--cpus", "2", "--duration", "0.05", "--quiet", "--json", ".", "--svg", "."])  # a directory: refused up front
def test_no_command_line_gives_a_traceback_or_leaves_anything(argv: list[str]) -> None:
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            status, out, err = call(argv)
        finally:
            os.chdir(cwd)
        # the tiny free runs' verdicts are the host's, so any exit status is let through: no traceback,
        # the one-line error and nothing left behind hold on any host, refused for want of time or not
        assert status in (0, 1, 2, 3) and "Traceback" not in err
        if status == 2:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("stress: error: "), (argv, err)
        # the JSON report, run's SVG timeline, compare's plot and bench's profiles are the only files written, and only where asked
        written = {os.path.join(d, f) for d, _, fs in os.walk(tmp) for f in fs}
        allowed = {os.path.join(tmp, argv[i + 1]) for i, x in enumerate(argv[:-1]) if x in ("--json", "--svg", "--plot")}
        profiles = [os.path.normpath(os.path.join(tmp, argv[i + 1])) + os.sep for i, x in enumerate(argv[:-1]) if x == "--profile"]
        assert {p for p in written if not any(p.startswith(d) for d in profiles)} <= allowed, (argv, written)
    assert segments_of(os.getpid()) == []
    _, alive = psutil.wait_procs(psutil.Process().children(recursive=True), timeout=3)
    assert alive == [], (argv, alive)
