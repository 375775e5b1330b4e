"""The options the commands share (the machine's options, the argparse types for names, numbers
and budgets, the checks made before a run) and the configuration built from them: apart from
``stress.cli``, so that the subcommand modules import them without importing the CLI that imports them."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import os
import secrets
import sys
from collections.abc import Callable
from typing import Any

from emu.arch import ARCH_MUTANTS, ARCHES
from emu.harness import perturbations
from emu.harness.benchmark import bench_workload
from emu.harness.config import MAX_PROCS, MEMORY_MODELS, SCHEDS, ConfigError, RunConfig, Workload, scheds, suggest, validate, validate_fix
from emu.harness.plugins import load_config
from emu.machine.policies import policy_class, registry
from emu.machine.shm import shm_needed, shm_room
from emu.strategies import MUTANTS, STRATEGIES, resolve
from stress.output import to_stdout


def perturbation_options(ns: argparse.Namespace) -> dict[str, Any]:
    """The RunConfig options the perturbation flags set: a field each, or a name in ``perturb``."""
    on = [k for k in perturbations.kinds() if getattr(ns, k.name.replace("-", "_"), False)]
    fields: dict[str, Any] = {k.field: True for k in on if k.field}
    return {**fields, "perturb": tuple(k.name for k in on if not k.field)}


class Names:
    """An argparse type for a name from a registry: unknown names get the closest valid one."""

    def __init__(self, what: str, valid: Callable[[], list[str]]) -> None:
        self.what = what
        self.valid = valid

    def __call__(self, text: str) -> str:
        valid = self.valid()
        if ":" in text and self.what in ("strategy", "architecture") and type(self) is Names:
            return text  # FILE.py:Class or module:Class, loaded before the run (emu.harness.plugins)
        if self.what in ("strategy", "architecture") and text not in valid and (text.endswith(".py") or os.sep in text):
            raise argparse.ArgumentTypeError(class_missing(text, self.what))
        if text not in valid:
            raise argparse.ArgumentTypeError(f"unknown {self.what} '{text}' {suggest(text, valid)}")
        return text


def class_missing(path: str, what: str) -> str:
    """A part's file named without its class: the spec it needs, with the class when the file has one at its root."""
    import ast

    if os.path.isdir(path):
        return f"'{path}' is a directory: name the {what}'s file and its class, FILE.py:Class (docs/writing-a-scheme.md)"
    if not os.path.exists(path):
        return f"'{path}': no such file (a {what} from a file: FILE.py:Class, docs/writing-a-scheme.md)"
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return f"'{path}': name the {what}'s class too, {path}:Class (docs/writing-a-scheme.md)"
    classes = [c for c in tree.body if isinstance(c, ast.ClassDef)]
    here = {c.name for c in classes}
    # the classes whose bases come from elsewhere (Strategy, Arch): the part, not its mutants
    roots = [c.name for c in classes if not any(isinstance(b, ast.Name) and b.id in here for b in c.bases)]
    if len(roots) == 1:
        return f"'{path}' is a file: name its class too; did you mean '{path}:{roots[0]}'?"
    listed = f" (its classes: {', '.join(sorted(here))})" if here else ""
    return f"'{path}' is a file: name the {what}'s class too, {path}:Class{listed}"


class ScriptText(Names):
    """``--script``: a scripted load (``emu.workload.scripted``): a shipped scenario's name (its
    script), or the script itself (``CPU:ACTION,...``, checked against ``--cpus`` later)."""

    def __call__(self, text: str) -> str:
        from emu.harness.explore import SCENARIOS
        from emu.workload.scripted import parse_script

        if not text:
            return ""  # the default: the synthetic load
        if ":" not in text:
            return SCENARIOS[super().__call__(text)].script
        try:
            parse_script(text, 64)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
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
SCHED = Names("scheduling mode", lambda: list(scheds()))
FIX = NameList("fix", lambda: sorted({f for s in STRATEGIES.values() for f in s.FIXES}))


def _add_workload(p: argparse.ArgumentParser) -> None:
    d = Workload()
    g = p.add_argument_group("workload")
    g.add_argument("--procs", type=INT, default=d.procs, help="live user processes to keep (default: 0 = as many as CPUs, from 2 to 64)")
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
    for kind in perturbations.kinds():  # each perturbation's flag, from its declaration (emu.harness.perturbations)
        t.add_argument(f"--{kind.name}", action="store_true", help=kind.help)
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
        help=f"free (default: the host interleaves the CPU processes), or one CPU at a time by a seeded policy: {', '.join(SCHEDS[1:])}",
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
    given: frozenset[str] = getattr(ns, "given", frozenset())
    benchmark, bench_tasks = getattr(ns, "benchmark", None) or "", getattr(ns, "bench_tasks", 0)
    if benchmark and not given & {"procs", "threads", "kthreads"}:  # its pools sized for its tasks, as compare's runs are
        wl = bench_workload(benchmark, max(0, bench_tasks), max(1, ns.cpus), wl)
        if wl.procs > MAX_PROCS:  # the pools are sized from --bench-tasks and --cpus: name those, not --procs
            raise ConfigError(
                f"--benchmark {benchmark} --bench-tasks {bench_tasks or 'default'} on {ns.cpus} CPUs needs {wl.procs:,} process slots, "
                f"more than {MAX_PROCS:,}: give fewer --bench-tasks or --cpus"
            )
    seed = ns.seed if ns.seed is not None else secrets.randbits(32)
    cfg = RunConfig(
        cpus=ns.cpus, strategy=strategy, mutant=ns.mutant, arch=arch, duration=ns.duration, seed=seed, workload=wl,
        shoot_all=ns.shoot_all, debug_check=ns.debug_check, fix=ns.fix,
        # the architecture group (compare offers none of it: the defaults)
        trim_timer=getattr(ns, "trim_timer", d.trim_timer), x86_unlazy_on_flush=getattr(ns, "x86_unlazy_on_flush", False),
        x86_idle_leave_mm=getattr(ns, "x86_idle_leave_mm", False),
        noise=ns.noise, fail_fast=ns.fail_fast, **perturbation_options(ns),
        memory_model=ns.memory_model, race_delay=ns.race_delay, watchdog=ns.watchdog, ipi_timeout=ns.ipi_timeout,
        sched=getattr(ns, "sched", d.sched), steps=getattr(ns, "steps", d.steps), depth=getattr(ns, "depth", d.depth),
        script=getattr(ns, "script", ""), benchmark=benchmark, bench_tasks=bench_tasks,
    )  # fmt: skip
    if getattr(ns, "replay", ""):
        cfg = replayed_config(ns.replay, cfg, given)
    cfg = load_config(cfg)  # a part named by spec: loaded, its path made absolute for the rerun command
    validate(cfg, sorted(STRATEGIES), {m: c.mutant_of or "" for m, c in MUTANTS.items()}, sorted(ARCHES))
    if not cfg.replay:  # after the ranges: a value out of range is said as such first
        check_mode(cfg, given)
        ns.notes = mode_notes(cfg, given)
    validate_fix(cfg, resolve(cfg.scheme).FIXES)
    if cfg.script:
        from emu.workload.scripted import parse_script

        try:
            parse_script(cfg.script, cfg.cpus)
        except ValueError as e:
            raise ConfigError(f"--script: {e}") from None
    check_shm_room(cfg)
    check_writable(ns.json)
    check_writable(getattr(ns, "svg", None), "--svg")  # run's own: compare and hunt build configs too
    check_distinct(**{"--replay": getattr(ns, "replay", None), "--json": ns.json, "--svg": getattr(ns, "svg", None)})
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
        what = {"steps": "sets a deterministic run's load", "depth": "sets PCT's bug depth"}
        for dest in ("steps", "depth"):
            if dest in given:
                fix = "add --sched pct or random (a free run lasts --duration)" if dest == "steps" else "add --sched pct"
                raise ConfigError(f"--{dest} {what[dest]}: {fix}")
    else:
        for dest in given & {"depth"}:  # the policies' own options (emu.machine.policy's ``options``)
            if dest not in policy_class(cfg.sched, False).options:
                owners = ", ".join(name for name, cls in registry().items() if dest in cls.options)
                raise ConfigError(f"--{dest} is an option of --sched {owners}: it does nothing under --sched {cfg.sched}")
    # the kernel's own window: unlazy_mm_irqs_off (x86 with --x86-unlazy-on-flush), under every scheme
    if cfg.race_delay and not resolve(cfg.scheme).has_race_window and not cfg.x86_unlazy_on_flush:
        raise ConfigError(f"--race-delay: {cfg.scheme} marks no race window, so the delay would never be taken")


def mode_notes(cfg: RunConfig, given: frozenset[str]) -> list[str]:
    """What an option does in this run, where that differs from what its name suggests."""
    if "procs" in given and cfg.workload.procs == 1:
        return ["--procs 1: one user process lives at a time; the next forks only once the last has exited"]
    return []


def check_writable(path: str | None, option: str = "--json") -> None:
    """Refuse, before the run, a path that its file cannot be written to (``-``: standard output)."""
    if path == "":  # `--json "$OUT"` with OUT unset: no file would be written, and nothing said
        raise ConfigError(f"{option}: an empty path (an unset shell variable?); give a file, or '-' for standard output")
    if path and not to_stdout(path):
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
            raise ConfigError(f"{option}: cannot write to '{path}' (no such writable directory)")
        if os.path.isdir(path):  # open() would fail only after the whole run
            raise ConfigError(f"{option}: cannot write to '{path}' (a directory)")


def check_distinct(**paths: str | None) -> None:
    """Refuse, before the work, two of a command's files that are one file: an output would overwrite
    another output, or its input (``--json`` and ``--svg`` alike; ``findings --json DB``). Keys are option names."""
    seen: dict[str, str] = {}
    for option, path in paths.items():
        if not path or to_stdout(path):
            continue
        real = os.path.realpath(path)
        if real in seen:
            raise ConfigError(f"{seen[real]} and {option} name the same file '{path}': give each its own")
        seen[real] = option


def check_shm_room(cfg: RunConfig) -> None:
    """Refuse a run whose segment and semaphores /dev/shm cannot hold, before anything is created."""
    from emu.harness.runner import layout_for
    from emu.machine.atomics import make_locks

    room = shm_room()
    nlocks = inspect.signature(make_locks).parameters["n"].default
    need = shm_needed(layout_for(cfg).nbytes, nlocks + cfg.cpus)  # the lock table and one doorbell per CPU
    if room is not None and need > room:
        raise ConfigError(f"--cpus {cfg.cpus}: the run needs {need / 2**20:.1f} MiB of /dev/shm and only {room / 2**20:.1f} MiB is free")


def parse_budget(text: str) -> float:
    """``90``, ``90s``, ``5m``, ``1h`` -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    t = text.strip().lower()
    scale = units.get(t[-1:], 0)
    try:
        value = float(t[:-1] if scale else t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds or a duration like 90s, 5m, 1h, got '{text}'") from None
    seconds = value * (scale or 1)
    if not 0 < seconds <= 7 * 24 * 3600:  # nan fails this too
        raise argparse.ArgumentTypeError(f"expected a number of seconds up to a week, got '{text}'")
    return seconds


class Duration(Number):
    """A budget: seconds, or a number with s, m or h."""

    def __init__(self) -> None:
        super().__init__(float, "a number of seconds")

    def __call__(self, text: str) -> float:
        return parse_budget(text)
