"""``python -m stress``: run one emulated machine, or list what can be run.

Exit status: 0 clean, 1 violation found, 2 bad usage, 3 the harness itself failed, 4 the output could
not be written, 130 interrupted (docs/command-line.md).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import re
import shutil
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from emu.arch import ARCH_MUTANTS, ARCHES
from emu.harness.columns import columns_svg
from emu.harness.config import ConfigError, closest
from emu.harness.explore import SCENARIOS
from emu.harness.report import STATUS_USAGE, Report, event_timelines, headline
from emu.machine.shm import SegmentError
from emu.strategies import MUTANTS, STRATEGIES
from emu.workload.benchmarks import DRIVERS
from stress.options import INT, Names, ScriptText, add_machine_options, check_writable, config_from
from stress.output import STATUS_INTERRUPTED, STATUS_OUTPUT, OutputError, to_stdout, write_json, write_text
from stress.progress import ProgressLine, render_report


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        where = f"{self.prog}: " if " " in self.prog else ""  # a command's parser names it; main says "stress: error:"
        raise UsageError(f"{where}{message}{self._hint(message)}")

    argv: list[str] = []  # the words parsed, for a hint in a command's parser's error

    def parse_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None) -> argparse.Namespace:  # type: ignore[override]
        Parser.argv = list(sys.argv[1:] if args is None else args)
        ns, extras = self.parse_known_args(args, namespace)
        if extras:  # name the option meant from the command's own options (argparse knows no command here)
            command = subcommands(self).get(getattr(ns, "command", None) or "", self)
            hint = _option_hint(extras, command)
            where = f"{command.prog}: " if command is not self and "goes after" not in hint else ""
            raise UsageError(f"{where}unrecognized arguments: {' '.join(extras)}{hint}")
        sub = subcommands(self).get(getattr(ns, "command", None) or "")
        if sub is not None:
            argv = list(sys.argv[1:] if args is None else args)
            ns.given = given_options(sub, argv[argv.index(ns.command) + 1 :])
        return ns

    def _hint(self, message: str) -> str:
        """argparse names a bad command or option but not the one meant: add the closest."""
        bad = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if bad:
            close = closest(bad.group(1), re.findall(r"[\w-]+", bad.group(2)))
            return f"; did you mean '{close}'?" if close else ""
        dash = re.search(r"argument (--[\w-]+): expected one argument", message)
        if dash and dash.group(1) in Parser.argv:  # argparse takes a value like -5s for an option
            i = Parser.argv.index(dash.group(1))
            value = Parser.argv[i + 1] if i + 1 < len(Parser.argv) else ""
            if value.startswith("-") and not value.startswith("--") and value not in ("-", "-h"):  # -5s, not the next option
                return f" (a value that begins with '-' goes after '=': {dash.group(1)}={value})"
        if "required: COMMAND" in message:  # `python -m stress` alone: what there is to run
            return f": one of {', '.join(subcommands(self))} (start with: stress run --help)"
        return ""

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        # --help and --version end parsing here; never let argparse call sys.exit under a caller
        if message:
            sys.stderr.write(message)
        raise HelpShown(status)


class HelpShown(Exception):
    """``--help`` was printed: the command is done, with this status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _option_hint(extras: list[str], command: argparse.ArgumentParser) -> str:
    """The closest option of this command to the first unknown one: a different option, or none. An
    option of the command given before the command's name is told where it goes."""
    words = [a.split("=")[0] for a in extras if a.startswith("--")]
    if not words:
        return ""
    own = sorted({o for a in command._actions for o in a.option_strings if o.startswith("--")})
    if words[0] in own:
        return f"; '{words[0]}' goes after the command: {command.prog} {words[0]}"
    close = difflib.get_close_matches(words[0], own, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def given_options(p: argparse.ArgumentParser, args: list[str]) -> frozenset[str]:
    """The destinations of the options on the command line, whatever their values (a default
    restated is given too): ``args`` parsed again with every default left out."""
    saved = [(a, a.default) for a in p._actions], dict(p._defaults)
    try:
        for a in p._actions:
            a.default = argparse.SUPPRESS
        p._defaults.clear()
        ns, _ = argparse.ArgumentParser.parse_known_args(p, args)
    finally:
        for a, d in saved[0]:
            a.default = d
        p._defaults.update(saved[1])
    return frozenset(vars(ns))


def subcommands(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Command name -> its parser (the tests iterate over these, so new commands are covered)."""
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            return dict(a.choices)
    return {}


def build_parser() -> Parser:
    from stress import __version__, bench, compare, explore, findings, hunt, shrink

    p = Parser(prog="stress", description="lazytlb: stress the kernel's lazy-TLB mm reference schemes on an emulated SMP machine.")
    p.add_argument("--version", action="version", version=f"lazytlb {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    run = sub.add_parser("run", help="run one emulated machine under load and report costs and violations")
    add_machine_options(run, cpus=4, duration=3.0)
    run.add_argument(
        "--script", type=ScriptText("scenario", lambda: list(SCENARIOS)), default="",
        help="a scripted load instead of the synthetic one: a scenario's name (see 'list') or its script, CPU:ACTION,... (explore's)",
    )  # fmt: skip
    run.add_argument(
        "--benchmark", type=Names("benchmark-shaped load", lambda: sorted(DRIVERS)), default=None,
        help="a benchmark-shaped load instead of the synthetic one (emu/workload: will-it-scale, hackbench, Dolan's reproducer)",
    )  # fmt: skip
    run.add_argument(
        "--bench-tasks", type=INT, default=0, help="the benchmark's own task count (will-it-scale's -t, hackbench's groups; 0: its default)"
    )
    run.add_argument(
        "--json", metavar="PATH", default=None, help="also write the report as JSON ('-': to standard output, the text report to stderr)"
    )
    run.add_argument("--svg", metavar="PATH", default=None, help="write the first violation's timeline as an SVG picture, a column per CPU")
    run.add_argument("--quiet", action="store_true", help="no header line and no progress line on stderr")
    run.add_argument("--verbose", action="store_true", help="the report shows every counter, not only those that apply to this run")
    run.add_argument(
        "--expect", choices=("clean", "violation"), default=None, help="exit 0 only if the verdict is this (1 otherwise; 3 harness failure)"
    )
    hunt.add_parser(sub)
    shrink.add_parser(sub)
    compare.add_parser(sub)
    findings.add_parser(sub)
    bench.add_parser(sub)
    explore.add_parser(sub)
    ls = sub.add_parser("list", help="list strategies, mutants, architectures, scenarios, benchmarks and machines")
    ls.add_argument(
        "--json", metavar="PATH", default=None, help="write the lists as JSON instead of the text ('-': standard output, the JSON alone)"
    )
    ls.add_argument("--quiet", action="store_true", help="names only, one a line")
    for command in subcommands(p).values():  # each command answers --version too, not only the top level
        command.add_argument("--version", action="version", version=f"lazytlb {__version__}")
    return p


def cmd_list() -> int:
    # the names' column fits the longest name (a spec's long path aside), so that no name runs into its summary
    names = [*STRATEGIES, *MUTANTS, *ARCH_MUTANTS, *ARCHES, *(f"{n} {f}" for n, s in STRATEGIES.items() for f in s.FIXES)]
    wd = max([26, *(len(n) + 1 for n in names if len(n) <= 40)])
    print("strategies:")
    for name, s in sorted(STRATEGIES.items()):
        print(f"  {name:<{wd}} {s.summary}")
    print("mutants (deliberately broken; --mutant NAME):")
    for name, s in sorted(MUTANTS.items()):
        print(f"  {name:<{wd}} [{s.mutant_of}] {s.summary}")
    for name, a in sorted(ARCH_MUTANTS.items()):
        print(f"  {name:<{wd}} [arch {a.mutant_of}, any scheme] {a.summary}")
    print("fixes (--strategy NAME --fix FIX[,FIX...]; later patches' fixes, one at a time or together):")
    for name, s in sorted(STRATEGIES.items()):
        for fix, what in s.FIXES.items():
            print(f"  {name + ' ' + fix:<{wd}} {what}")
    print("architectures (--arch NAME):")
    for name, a in sorted(ARCHES.items()):
        print(f"  {name:<{wd}} {a.summary}")
    print("scenarios (explore --scenario NAME, or a JSON file of one):")
    for sc in SCENARIOS.values():
        print(f"  {sc.name:<{wd}} {sc.cpus} CPUs: {sc.summary}")
    print("benchmarks (compare --benchmark NAME --machine NAME; run --benchmark NAME):")
    for b in benchmark_items():
        print(f"  {b['name']:<{wd}} {b['summary']}")
    print("machines (compare --benchmark NAME --machine NAME: a cost MODEL of a real machine):")
    for m in machine_items():
        print(f"  {m['name']:<{wd}} {m['summary']}")
    return 0


def benchmark_items() -> list[dict[str, Any]]:
    from emu.harness.benchmark import BENCHMARKS

    return [{"name": n, "summary": f"{b.what}; --tasks: {b.param}", "source": b.source} for n, b in BENCHMARKS.items()]


def machine_items() -> list[dict[str, Any]]:
    from emu.harness.bench_projection import load_machine, machine_names

    items = []
    for n in machine_names():
        m = load_machine(n)
        fitted = f"; FITTED: {', '.join(m.fitted)}" if m.fitted else ""
        items.append({"name": n, "summary": f"{m.description}, {m.cpus} CPUs, {m.arch} model{fitted}", "published_as": m.published_as})
    return items


def cmd_list_options(ns: argparse.Namespace) -> int:
    """``list --quiet`` prints the names alone; ``--json PATH`` also writes the lists."""
    check_writable(ns.json)
    lists: dict[str, list[dict[str, Any]]] = {
        "strategies": [
            {"name": n, "summary": s.summary, "fixes": dict(s.FIXES), "source": s.source, "hooks": list(s.hooks())}
            for n, s in sorted(STRATEGIES.items())
        ],
        "mutants": [{"name": n, "mutant_of": s.mutant_of, "summary": s.summary} for n, s in sorted(MUTANTS.items())],
        "arch_mutants": [{"name": n, "mutant_of": a.mutant_of, "summary": a.summary} for n, a in sorted(ARCH_MUTANTS.items())],
        "architectures": [
            {"name": n, "summary": a.summary, "source": a.source, "memory_model": a.memory_model} for n, a in sorted(ARCHES.items())
        ],
        "scenarios": [{"name": sc.name, "summary": sc.summary, "cpus": sc.cpus, "script": sc.script} for sc in SCENARIOS.values()],
        "benchmarks": benchmark_items(),
        "machines": machine_items(),
    }
    if ns.json:  # the JSON instead of the text; --quiet's names too where the JSON is not on stdout
        write_json(ns.json, lists)
    if ns.quiet and not to_stdout(ns.json):
        print("\n".join(x["name"] for items in lists.values() for x in items))
    elif not ns.json:
        cmd_list()
    return 0


def cmd_run(ns: argparse.Namespace) -> int:
    from emu.harness.runner import run

    cfg = config_from(ns)
    length = f"{cfg.steps:,} steps under --sched {cfg.sched}" if cfg.deterministic else f"{cfg.duration:g}s"
    if not ns.quiet:
        notes = "".join(f"; {n}" for n in getattr(ns, "notes", []))  # on the first line: what an option does here
        head = f"lazytlb: seed {cfg.seed}, {cfg.cpus} CPUs, {cfg.scheme} on {cfg.arch} ({cfg.memory_model}), {length}"
        print(head + notes, file=sys.stderr)
    progress = ProgressLine() if not ns.quiet else None
    try:
        report = run(cfg, progress)
    finally:
        if progress:
            progress.done()
    text = sys.stderr if to_stdout(ns.json) else sys.stdout  # --json -: standard output carries the JSON alone
    tty = text.isatty()  # colour and the terminal's width; plain text, as wide as it needs, in a pipe
    print(render_report(report, ns.verbose, color=tty, width=shutil.get_terminal_size().columns if tty else None), file=text)
    if ns.json:
        write_json(ns.json, report.to_json())
    if ns.svg:
        write_svg(report, ns.svg)
    if report.harness.get("interrupted") == "SIGINT":  # Ctrl-C: the drained run is reported (and written) above
        print("stress: interrupted", file=sys.stderr)
        return STATUS_INTERRUPTED
    return expectation_status(report.status, report.verdict, ns.expect)


def write_svg(report: Report, path: str) -> None:
    """``--svg``: the first violation's timeline, a column per CPU; a run without one writes nothing."""
    timelines = event_timelines(report)
    if not timelines:
        why = "the run was clean" if report.verdict == "clean" else "no violation with a timeline"
        print(f"stress: --svg: {why}, nothing written to {path}", file=sys.stderr)
        return
    events = timelines[0]
    picture = columns_svg(events, events[0].unit if events else "ns", title=f"{headline(report)}\nrerun: {report.command}")
    write_text(path, picture, "--svg")


def expectation_status(status: int, verdict: str, expect: str | None) -> int:
    """With ``--expect``, success means the verdict came out as expected."""
    if expect is None or status == 3:
        return status
    if verdict == expect:
        return 0
    print(f"stress: expected {expect}, got {verdict}", file=sys.stderr)
    return 1


def one_line(text: str) -> str:
    """An error quotes what the user typed: escape what a terminal would not show as one line."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


def preload(argv: Sequence[str]) -> None:
    """Load the installed parts and any named by spec before parsing, so that their mutants and
    fixes are valid names (a spec's errors: one line, status 2)."""
    from emu.harness.plugins import load_arch, load_installed, load_scheme

    load_installed()
    flags = (("--strategy", load_scheme), ("--arch", load_arch), ("--strategies", load_scheme), ("--arches", load_arch))
    for i, arg in enumerate(argv):
        for flag, load in flags:
            value = argv[i + 1] if arg == flag and i + 1 < len(argv) else arg.partition("=")[2] if arg.startswith(flag + "=") else ""
            for part in value.split(",") if flag.endswith("es") else (value,):  # compare's comma lists
                if ":" in part:
                    try:
                        load(part.strip())
                    except ConfigError as e:  # an error that begins with the spec: say which option named it
                        raise ConfigError(f"{flag} {e}" if str(e).startswith("'") else str(e)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        preload(list(sys.argv[1:] if argv is None else argv))
        ns = parser.parse_args(argv)
        if ns.command == "list":
            return cmd_list_options(ns)
        if ns.command == "bench":
            from stress.bench import cmd_bench

            return cmd_bench(ns)
        if ns.command == "hunt":
            from stress.hunt import cmd_hunt

            return cmd_hunt(ns)
        if ns.command == "shrink":
            from stress.shrink import cmd_shrink

            return cmd_shrink(ns)
        if ns.command == "explore":
            from stress.explore import cmd_explore

            return cmd_explore(ns)
        if ns.command == "findings":
            from stress.findings import cmd_findings

            return cmd_findings(ns)
        if ns.command == "compare":
            from stress.compare import cmd_compare

            return cmd_compare(ns)
        return cmd_run(ns)
    except HelpShown as e:
        return e.status
    except (UsageError, ConfigError) as e:
        print(f"stress: error: {one_line(str(e))}", file=sys.stderr)
        return STATUS_USAGE
    except SegmentError as e:
        print(f"stress: error: {one_line(str(e))}", file=sys.stderr)
        return 3
    except OutputError as e:  # the command finished; only its file is missing
        print(f"stress: error: {one_line(str(e))}", file=sys.stderr)
        return STATUS_OUTPUT
    except KeyboardInterrupt:
        print("stress: interrupted", file=sys.stderr)
        return STATUS_INTERRUPTED
    except BrokenPipeError:  # the reader went away (| head): nothing more to say, and no traceback at exit
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
