"""``python -m stress``: run one emulated machine, or list what can be run.

Exit status: 0 clean, 1 violation found, 2 bad usage, 3 the harness itself failed, 4 the output could
not be written, 130 interrupted (docs/command-line.md).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import inspect
import math
import os
import re
import secrets
import shutil
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from emu.arch import ARCH_MUTANTS, ARCHES
from emu.harness.columns import Ev, columns_svg
from emu.harness.config import MEMORY_MODELS, SCHEDS, ConfigError, RunConfig, Workload, suggest, validate, validate_fix
from emu.harness.report import STATUS_USAGE, Report, headline
from emu.machine.shm import SegmentError, shm_needed, shm_room
from emu.strategies import MUTANTS, STRATEGIES, resolve
from stress.output import STATUS_INTERRUPTED, STATUS_OUTPUT, OutputError, to_stdout, write_json, write_text
from stress.progress import ProgressLine, render_report


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        where = f"{self.prog}: " if " " in self.prog else ""  # a command's parser names it; main says "stress: error:"
        raise UsageError(f"{where}{message}{self._hint(message)}")

    def parse_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None) -> argparse.Namespace:  # type: ignore[override]
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
            close = difflib.get_close_matches(bad.group(1), re.findall(r"[\w-]+", bad.group(2)), n=1)
            return f"; did you mean '{close[0]}'?" if close else ""
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


class Names:
    """An argparse type for a name from a registry: unknown names get the closest valid one."""

    def __init__(self, what: str, valid: Callable[[], list[str]]) -> None:
        self.what = what
        self.valid = valid

    def __call__(self, text: str) -> str:
        valid = self.valid()
        if text not in valid:
            raise argparse.ArgumentTypeError(f"unknown {self.what} '{text}' {suggest(text, valid)}")
        return text


class NameList(Names):
    """A comma list of names from a registry (``drop-check,scan-online``), each checked as ``Names`` does."""

    def __call__(self, text: str) -> str:
        if not text:
            return ""  # the default: none
        return ",".join(super(NameList, self).__call__(part) for part in text.split(","))


class Number:
    """An argparse type for a number; ranges are ``validate``'s job, so library callers get them too."""

    def __init__(self, kind: Callable[[str], float], what: str) -> None:
        self.kind = kind
        self.what = what
        self.__name__ = what  # argparse names the type in some messages

    def __call__(self, text: str) -> float:
        try:
            v = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.what}, got '{text}'") from None
        if isinstance(v, float) and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected {self.what}, got '{text}'")
        return v


class IntList(Number):
    """``2,8,32`` -> [2, 8, 32]: each a whole number (ranges are checked with the run's config)."""

    def __init__(self) -> None:
        super().__init__(int, "a whole number")

    def __call__(self, text: str) -> list[int]:  # type: ignore[override]
        parts = text.split(",")
        try:
            return [int(p) for p in parts]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number or a comma list of them (2,8,32), got '{text}'") from None


INT = Number(int, "a whole number")
FLOAT = Number(float, "a number")
STRATEGY = Names("strategy", lambda: sorted(STRATEGIES))
MUTANT = Names("mutant", lambda: sorted({**MUTANTS, **ARCH_MUTANTS}))
ARCH = Names("architecture", lambda: sorted(ARCHES))
MEMORY_MODEL = Names("memory model", lambda: sorted(MEMORY_MODELS))
SCHED = Names("scheduling mode", lambda: list(SCHEDS))
FIX = NameList("fix", lambda: sorted({f for s in STRATEGIES.values() for f in s.FIXES}))


def _add_workload(p: argparse.ArgumentParser) -> None:
    d = Workload()
    g = p.add_argument_group("workload")
    g.add_argument("--procs", type=INT, default=d.procs, help="live user processes to keep (default: 0 = as many as CPUs, 2..64)")
    g.add_argument("--threads", type=INT, default=d.threads, help=f"threads per process (default: {d.threads})")
    g.add_argument("--kthreads", type=INT, default=d.kthreads, help=f"kernel threads per CPU (default: {d.kthreads})")
    g.add_argument("--p-fork", type=FLOAT, default=d.p_fork, help=f"per user quantum, fork while below --procs (default: {d.p_fork})")
    g.add_argument("--p-exit", type=FLOAT, default=d.p_exit, help=f"per user quantum, the thread exits (default: {d.p_exit})")
    g.add_argument("--p-block", type=FLOAT, default=d.p_block, help=f"per user quantum, the thread sleeps (default: {d.p_block})")
    g.add_argument("--p-migrate", type=FLOAT, default=d.p_migrate, help=f"per wake-up, move to another CPU (default: {d.p_migrate})")
    g.add_argument("--p-kthread", type=FLOAT, default=d.p_kthread, help=f"per schedule, a kernel thread wakes (default: {d.p_kthread})")
    g.add_argument("--p-use-mm", type=FLOAT, default=d.p_use_mm, help=f"per kthread quantum, kthread_use_mm (default: {d.p_use_mm})")
    g.add_argument("--p-munmap", type=FLOAT, default=d.p_munmap, help=f"per user quantum, a TLB flush of its mm (default: {d.p_munmap})")
    g.add_argument("--sleep-us", type=INT, default=d.sleep_us, help=f"mean sleep of a blocked thread in us (default: {d.sleep_us})")
    g.add_argument("--p-exec", type=FLOAT, default=d.p_exec, help=f"per user quantum, the task execs: a new mm (default: {d.p_exec})")
    g.add_argument(
        "--p-kernel-exec", type=FLOAT, default=d.p_kernel_exec,
        help=f"per fork from a kernel context, its first thread starts in kernel_execve (default: {d.p_kernel_exec})",
    )  # fmt: skip
    g.add_argument(
        "--p-preempt", type=FLOAT, default=d.p_preempt,
        help=f"per preemption point of kthread_use_mm / exec_mmap, the task is preempted there (default: {d.p_preempt})",
    )  # fmt: skip
    g.add_argument(
        "--p-free-tables", type=FLOAT, default=d.p_free_tables,
        help=f"per munmap, page-table pages are freed too: a freed-tables flush (default: {d.p_free_tables})",
    )  # fmt: skip


def _add_architecture(p: argparse.ArgumentParser) -> None:
    d = RunConfig()
    a = p.add_argument_group("architecture")
    a.add_argument(
        "--trim-timer", type=INT, default=d.trim_timer, metavar="N",
        help=f"powerpc: tlb_mm_cpumask_trim_timer, trim mm_cpumask on one flush in N (default: {d.trim_timer}; 1: every flush)",
    )  # fmt: skip
    a.add_argument(
        "--x86-unlazy-on-flush", action="store_true",
        help="x86 models: a flush IPI or leave_mm on a lazy CPU ends its lazy use; scans may use the mask (2022 series, 20/23, 21/23)",
    )  # fmt: skip
    a.add_argument(
        "--x86-idle-leave-mm", action="store_true", help="x86 models: an idle CPU calls leave_mm first (CPUIDLE_FLAG_TLB_FLUSHED, ACPI C3)"
    )


def _add_harness(p: argparse.ArgumentParser) -> None:
    d = RunConfig()
    g = p.add_argument_group("harness")
    g.add_argument(
        "--watchdog", type=FLOAT, default=d.watchdog, help=f"report a CPU stalled after this many seconds (default: {d.watchdog:g})"
    )
    g.add_argument(
        "--ipi-timeout", type=FLOAT, default=d.ipi_timeout, help=f"seconds an IPI sender waits for the target (default: {d.ipi_timeout:g})"
    )


def add_machine_options(p: argparse.ArgumentParser, cpus: int, duration: float) -> None:
    """What one emulated machine is: shared by ``run`` and ``hunt``."""
    p.add_argument("--cpus", type=INT, default=cpus, help=f"emulated CPUs, one process each (default: {cpus})")
    p.add_argument("--strategy", type=STRATEGY, default=None, help="lazy-TLB scheme (default: refcount; see 'list')")
    p.add_argument("--mutant", type=MUTANT, default=None, help="a deliberately broken scheme or architecture (see 'list')")
    p.add_argument("--fix", type=FIX, metavar="NAME[,NAME...]", default="", help="apply later patches' fixes to the scheme (see 'list')")
    p.add_argument("--arch", type=ARCH, default=None, help="architecture model (default: x86, or the one an arch mutant patches)")
    p.add_argument("--duration", type=FLOAT, default=duration, help=f"seconds of load per run (default: {duration:g})")
    p.add_argument("--seed", type=INT, default=None, help="run seed (default: random, printed)")
    t = p.add_argument_group("race hunting (all off by default; drawn from the seed)")
    t.add_argument("--noise", type=FLOAT, default=0.0, metavar="RATE", help="delay probability at each scheme access and atomic")
    t.add_argument("--stutter", action="store_true", help="all CPUs run, pause together, run again")
    t.add_argument("--shuffle", action="store_true", help="move CPU processes between the real cores at intervals")
    t.add_argument("--hotplug", action="store_true", help="take random CPUs offline and back online")
    t.add_argument("--use-mm-bursts", action="store_true", help="now and then every kernel thread adopts a live mm at once")
    t.add_argument("--fail-fast", action="store_true", help="stop at the first violation")
    p.add_argument(
        "--memory-model",
        type=MEMORY_MODEL,
        default="sc",
        help="sc (default); tso: a FIFO store buffer per CPU; weak: LKMM's ordering (arm64, powerpc); arch: each arch its own",
    )
    d = RunConfig()
    g = p.add_argument_group("scheduling (emu/machine/detsched.py; see docs/deterministic-mode.md)")
    g.add_argument(
        "--sched", type=SCHED, default="free",
        help="free (default: the host interleaves the CPU processes), or one CPU at a time: pct (seeded priorities) or random",
    )  # fmt: skip
    g.add_argument("--steps", type=INT, default=d.steps, help=f"a deterministic run's load, in scheduling points (default: {d.steps:,})")
    g.add_argument("--depth", type=INT, default=d.depth, help=f"pct: the bug depth targeted, depth-1 priority changes (default: {d.depth})")
    g.add_argument(
        "--replay", metavar="FILE", default="", help="follow the schedule of a deterministic run's JSON report (its configuration too)"
    )
    t.add_argument("--race-delay", type=FLOAT, default=0.0, help="chance to stall at a scheme's marked race window, per pass (default: 0)")
    s = p.add_argument_group("shoot-lazies")
    s.add_argument(
        "--shoot-all", action="store_true", help="IPI every online CPU at each free, not mm_cpumask (the fallback without a mask)"
    )
    s.add_argument("--debug-check", action="store_true", help="CONFIG_DEBUG_VM_SHOOT_LAZIES: do_check_lazy_tlb on every CPU at each free")
    _add_architecture(p)
    _add_workload(p)
    _add_harness(p)


def build_parser() -> Parser:
    from stress import __version__, bench, compare, findings, hunt, shrink

    p = Parser(prog="stress", description="lazytlb: stress the kernel's lazy-TLB mm reference schemes on an emulated SMP machine.")
    p.add_argument("--version", action="version", version=f"lazytlb {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    run = sub.add_parser("run", help="run one emulated machine under load and report costs and violations")
    add_machine_options(run, cpus=4, duration=3.0)
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
    ls = sub.add_parser("list", help="list strategies, mutants and architectures")
    ls.add_argument(
        "--json", metavar="PATH", default=None, help="write the lists as JSON instead of the text ('-': standard output, the JSON alone)"
    )
    ls.add_argument("--quiet", action="store_true", help="names only, one a line")
    for command in subcommands(p).values():  # each command answers --version too, not only the top level
        command.add_argument("--version", action="version", version=f"lazytlb {__version__}")
    return p


def config_from(ns: argparse.Namespace) -> RunConfig:
    strategy = ns.strategy
    if strategy is None:
        strategy = MUTANTS[ns.mutant].mutant_of if ns.mutant in MUTANTS else "refcount"
    arch = ns.arch
    if arch is None:
        arch = ARCH_MUTANTS[ns.mutant].mutant_of if ns.mutant in ARCH_MUTANTS else "x86"
    d = RunConfig()
    wl = Workload(
        procs=ns.procs, threads=ns.threads, kthreads=ns.kthreads, p_fork=ns.p_fork, p_exit=ns.p_exit,
        p_block=ns.p_block, p_migrate=ns.p_migrate, p_kthread=ns.p_kthread, p_use_mm=ns.p_use_mm, sleep_us=ns.sleep_us,
        p_munmap=ns.p_munmap, p_free_tables=ns.p_free_tables, p_exec=ns.p_exec, p_kernel_exec=ns.p_kernel_exec, p_preempt=ns.p_preempt,
    )  # fmt: skip
    seed = ns.seed if ns.seed is not None else secrets.randbits(32)
    cfg = RunConfig(
        cpus=ns.cpus, strategy=strategy, mutant=ns.mutant, arch=arch, duration=ns.duration, seed=seed, workload=wl,
        shoot_all=ns.shoot_all, debug_check=ns.debug_check, fix=ns.fix,
        # the architecture group (compare offers none of it: the defaults)
        trim_timer=getattr(ns, "trim_timer", d.trim_timer), x86_unlazy_on_flush=getattr(ns, "x86_unlazy_on_flush", False),
        x86_idle_leave_mm=getattr(ns, "x86_idle_leave_mm", False),
        noise=ns.noise, stutter=ns.stutter, shuffle=ns.shuffle, hotplug=ns.hotplug, fail_fast=ns.fail_fast,
        use_mm_bursts=ns.use_mm_bursts,
        memory_model=ns.memory_model, race_delay=ns.race_delay, watchdog=ns.watchdog, ipi_timeout=ns.ipi_timeout,
        sched=getattr(ns, "sched", d.sched), steps=getattr(ns, "steps", d.steps), depth=getattr(ns, "depth", d.depth),
    )  # fmt: skip
    given: frozenset[str] = getattr(ns, "given", frozenset())
    if getattr(ns, "replay", ""):
        cfg = replayed_config(ns.replay, cfg, given)
    validate(cfg, sorted(STRATEGIES), {m: c.mutant_of or "" for m, c in MUTANTS.items()}, sorted(ARCHES))
    if not cfg.replay:  # after the ranges: a value out of range is said as such first
        check_mode(cfg, given)
        ns.notes = mode_notes(cfg, given)
    validate_fix(cfg, resolve(cfg.scheme).FIXES)
    check_shm_room(cfg)
    check_writable(ns.json)
    check_writable(getattr(ns, "svg", None), "--svg")  # run's own: compare and hunt build configs too
    return cfg


# the options of ``run`` that say where the report goes or how it looks, not what the machine does
OUTPUT_OPTIONS = frozenset({"json", "svg", "quiet", "verbose", "expect", "replay", "command", "version"})


def replayed_config(path: str, here: RunConfig, given: frozenset[str]) -> RunConfig:
    """``--replay FILE``: the configuration recorded in FILE, which the command line may restate
    but not change: an option given (even at its default value) that differs from the recording is
    an error. A recording whose setup was edited since replays, with a warning."""
    from emu.harness.replay import load_replay, read_report, setup_digest

    data = read_report(path, "--replay")
    try:
        recorded = RunConfig.from_dict(data["config"])
    except ConfigError as e:
        raise ConfigError(f"--replay {path}: {e}") from None
    other = f"--replay {path}: recorded for another configuration:"
    workload = {f.name for f in dataclasses.fields(Workload)}
    for dest in sorted(given - OUTPUT_OPTIONS):
        if dest in workload:
            mine, theirs = getattr(here.workload, dest), getattr(recorded.workload, dest)
        elif hasattr(recorded, dest):
            mine, theirs = getattr(here, dest), getattr(recorded, dest)
        else:
            continue
        if mine != theirs:
            raise ConfigError(f"{other} --{dest.replace('_', '-')} {theirs} there, {mine} here")
    digest = data.get("setup_digest")
    if digest is not None and digest != setup_digest(data["config"]):
        print(f"stress: warning: --replay {path}: its recorded setup was edited: this replay no longer repeats the recorded run",
              file=sys.stderr)  # fmt: skip
    cfg = dataclasses.replace(recorded, replay=path)
    load_replay(cfg)  # the schedule itself: there, whole, and for this machine
    return cfg


def check_mode(cfg: RunConfig, given: frozenset[str]) -> None:
    """Refuse an option that does nothing in this run's mode, rather than accept it silently."""
    if not cfg.deterministic:
        for dest in ("steps", "depth"):
            if dest in given:
                raise ConfigError(f"--{dest} sets a deterministic run's load: add --sched pct or random (a free run lasts --duration)")
    elif "depth" in given and cfg.sched != "pct":
        raise ConfigError(f"--depth is PCT's bug depth: it does nothing under --sched {cfg.sched}")
    if cfg.race_delay and not resolve(cfg.scheme).has_race_window:
        raise ConfigError(f"--race-delay: {cfg.scheme} marks no race window, so the delay would never be taken")


def mode_notes(cfg: RunConfig, given: frozenset[str]) -> list[str]:
    """What an option does in this run, where that differs from what its name suggests."""
    if "procs" in given and cfg.workload.procs == 1:
        return ["--procs 1: one user process lives at a time; the next forks only once the last has exited"]
    return []


def check_writable(path: str | None, option: str = "--json") -> None:
    """Refuse, before the run, a path that its file cannot be written to (``-``: standard output)."""
    if path and not to_stdout(path):
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
            raise ConfigError(f"{option}: cannot write to '{path}' (no such writable directory)")
        if os.path.isdir(path):  # open() would fail only after the whole run
            raise ConfigError(f"{option}: cannot write to '{path}' (a directory)")


def check_shm_room(cfg: RunConfig) -> None:
    """Refuse a run whose segment and semaphores /dev/shm cannot hold, before anything is created."""
    from emu.harness.runner import layout_for
    from emu.machine.atomics import make_locks

    room = shm_room()
    nlocks = inspect.signature(make_locks).parameters["n"].default
    need = shm_needed(layout_for(cfg).nbytes, nlocks + cfg.cpus)  # the lock table and one doorbell per CPU
    if room is not None and need > room:
        raise ConfigError(f"--cpus {cfg.cpus}: the run needs {need / 2**20:.1f} MiB of /dev/shm and only {room / 2**20:.1f} MiB is free")


def cmd_list() -> int:
    print("strategies:")
    for name, s in sorted(STRATEGIES.items()):
        print(f"  {name:<26} {s.summary}")
    print("mutants (deliberately broken; --mutant NAME):")
    for name, s in sorted(MUTANTS.items()):
        print(f"  {name:<26} [{s.mutant_of}] {s.summary}")
    for name, a in sorted(ARCH_MUTANTS.items()):
        print(f"  {name:<26} [arch {a.mutant_of}, any scheme] {a.summary}")
    print("fixes (--strategy NAME --fix FIX[,FIX...]; later patches' fixes, one at a time or together):")
    for name, s in sorted(STRATEGIES.items()):
        for fix, what in s.FIXES.items():
            print(f"  {name + ' ' + fix:<26} {what}")
    print("architectures (--arch NAME):")
    for name, a in sorted(ARCHES.items()):
        print(f"  {name:<26} {a.summary}")
    return 0


def cmd_list_options(ns: argparse.Namespace) -> int:
    """``list --quiet`` prints the names alone; ``--json PATH`` also writes the lists."""
    check_writable(ns.json)
    lists: dict[str, list[dict[str, Any]]] = {
        "strategies": [{"name": n, "summary": s.summary, "fixes": dict(s.FIXES)} for n, s in sorted(STRATEGIES.items())],
        "mutants": [{"name": n, "mutant_of": s.mutant_of, "summary": s.summary} for n, s in sorted(MUTANTS.items())],
        "arch_mutants": [{"name": n, "mutant_of": a.mutant_of, "summary": a.summary} for n, a in sorted(ARCH_MUTANTS.items())],
        "architectures": [{"name": n, "summary": a.summary} for n, a in sorted(ARCHES.items())],
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
    if not report.timeline_events:
        why = "the run was clean" if report.verdict == "clean" else "no violation with a timeline"
        print(f"stress: --svg: {why}, nothing written to {path}", file=sys.stderr)
        return
    events = [Ev(*e) for e in report.timeline_events[0]]
    picture = columns_svg(events, "step" if "sched" in report.harness else "ns", title=f"{headline(report)}\nrerun: {report.command}")
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
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
