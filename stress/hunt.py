"""``python -m stress hunt``: many short seeded runs within a time budget, across the cores.

Each run is a separate ``python -m stress run`` process (its own machine, its own CPU
processes), up to ``--jobs`` at a time. Configurations are served round-robin: one chosen with
``--strategy/--mutant/--arch``, or the whole ``emu.harness.matrix`` with ``--matrix``. Expectation mode,
as rcutorture's busted flavours and jcstress: a correct scheme is expected clean, a mutant (or a
cell the matrix marks broken) is expected caught; a configuration expected caught stops at its
first detection (its runs use ``--fail-fast``) unless ``--runs`` asks for a fixed count. The exit
status says whether every expectation held (0), one did not (1), or the harness failed (3).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emu.harness.config import ConfigError, RunConfig, Workload
from emu.harness.matrix import CELLS, DET_MACHINE, Cell, find
from emu.harness.report import command_for
from stress.options import Duration
from stress.output import STATUS_INTERRUPTED, to_stdout, write_json
from stress.progress import LiveStatus, console_for, plain_table, table_text

DEFAULT_NOISE = 0.0  # hunt's default perturbation: see the README's race-hunting section
RUN_OVERHEAD_S = 1.5  # interpreter start, boot, drain and report of one run


def add_parser(sub: Any) -> None:
    from stress.options import INT, add_machine_options

    h = sub.add_parser("hunt", help="many short seeded runs within a time budget, with expectations")
    add_machine_options(h, cpus=8, duration=2.0)
    h.set_defaults(noise=DEFAULT_NOISE)
    h.add_argument("--matrix", action="store_true", help="hunt the whole scheme x arch x mutant matrix (see emu/harness/matrix.py)")
    h.add_argument("--budget", type=Duration(), default=60.0, help="wall-clock budget, e.g. 90s, 5m (default: 60s)")
    h.add_argument("--jobs", type=INT, default=None, help="runs at a time (default: the number of cores)")
    h.add_argument("--runs", type=INT, default=0, help="runs per configuration (default: until the budget; caught ones stop)")
    h.add_argument("--expect", choices=("clean", "violation"), default=None, help="the expected verdict of a single configuration")
    h.add_argument("--json", metavar="PATH", default=None, help="write the results as JSON ('-': to standard output, the table to stderr)")
    h.add_argument("--quiet", action="store_true", help="no header line and no progress line")


@dataclass
class Target:
    name: str
    cfg: RunConfig
    expect: str
    runs: int = 0
    launched: int = 0
    violating: int = 0
    harness_failures: int = 0
    first_detection_s: float | None = None
    detections: list[float] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    example: str = ""  # the rerun command of the first violating run
    failure: str = ""  # the rerun command of the first run whose harness failed, and why
    needed: int = 1  # the runs the expectation needs before it can be called: a broken cell's catch_runs
    violating_runs: list[dict[str, Any]] = field(default_factory=list)  # seed and rerun command of each

    def done(self, runs_wanted: int) -> bool:
        if runs_wanted:
            return self.launched >= runs_wanted
        return self.expect == "violation" and self.violating > 0

    @property
    def held(self) -> bool:
        if self.harness_failures or not self.runs:
            return False
        return self.violating == 0 if self.expect == "clean" else self.violating > 0

    @property
    def answer(self) -> str:
        """The table's word: a configuration never run is not a failed expectation."""
        if self.harness_failures:
            return "NO (harness failure)"
        if not self.runs:
            return "not run"
        return "yes" if self.held else "NO"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "strategy": self.cfg.strategy,
            "arch": self.cfg.arch,
            "mutant": self.cfg.mutant,
            "expect": self.expect,
            "runs": self.runs,
            "violations": self.violating,
            "harness_failures": self.harness_failures,
            "first_detection_s": self.first_detection_s,
            "median_detection_s": round(statistics.median(self.detections), 4) if self.detections else None,
            "kinds": dict(self.kinds),
            "held": self.held if self.runs else None,  # null: never run
            "example": self.example or None,
            "violating_runs": self.violating_runs,
            "harness_failure": self.failure or None,
        }


def expected_s(cfg: RunConfig) -> float:
    """About how long a run of ``cfg`` lasts: its duration, or for a deterministic run its steps."""
    return cfg.steps / DET_STEPS_PER_S if cfg.deterministic else cfg.duration


# A deterministic hunt runs on emu.harness.matrix.DET_MACHINE unless the command line says otherwise: PCT
# finds a bug of depth d with probability 1 / (n k^(d-1)) a run, so few CPUs and short runs, many of them.
DET_STEPS_PER_S = 50_000  # about, on the 2-core development machine (stress bench measures it)


def small_machine_for_det(ns: argparse.Namespace, defaults: dict[str, Any]) -> None:
    """``hunt --sched pct|random``: a 3-CPU machine with two processes of two threads and one kernel
    thread per CPU, for each of those settings left at the hunt's default."""
    if ns.sched == "free":
        return
    for name, value in DET_MACHINE.items():
        if getattr(ns, name) == defaults[name]:
            setattr(ns, name, value)


def targets_from(ns: argparse.Namespace, base: RunConfig) -> list[Target]:
    cell: Cell | None
    perturb: dict[str, Any] = {"noise": base.noise, "stutter": base.stutter, "shuffle": base.shuffle, "hotplug": base.hotplug}
    if ns.matrix:
        out = []
        for cell in CELLS:
            cfg = cell.config(
                0, cpus=base.cpus, duration=base.duration, workload=base.workload, sched=base.sched, steps=base.steps, depth=base.depth
            )
            cfg = replace(cfg, **{k: v or getattr(cfg, k) for k, v in perturb.items()})
            verdict = cell.verdict_expected(cfg.deterministic)
            out.append(Target(cell.id, cfg, verdict, needed=cell.catch_runs if verdict != "clean" else 1))
        return out
    options = {
        k: getattr(base, k)
        for k in (
            "shoot_all", "debug_check", "trim_timer", "x86_unlazy_on_flush", "x86_idle_leave_mm", "hotplug", "use_mm_bursts", "fix",
            "race_delay", "memory_model",
        )
    }  # fmt: skip
    # the deterministic hunt's small machine is not part of what the cell is
    workload = {k: v for k, v in vars(base.workload).items() if not (base.deterministic and DET_MACHINE.get(k) == v)}
    cell = find(base.scheme, base.arch, options, arch_mutant=base.arch_mutant, workload=workload)
    expect = ns.expect or (cell.verdict_expected(base.deterministic) if cell else ("violation" if base.mutant else "clean"))
    # a configuration outside the matrix is named as a cell would be, with every option it sets
    name = (cell or Cell(base.scheme, base.arch, arch_mutant=base.arch_mutant, options=_set(options, RunConfig()),
                         workload=_set(workload, Workload()))).id  # fmt: skip
    needed = (cell.catch_runs if cell else Cell("", "").catch_runs) if expect == "violation" else 1
    return [Target(name, base, expect, needed=needed)]


def _set(values: dict[str, Any], default: object) -> dict[str, Any]:
    return {k: v for k, v in values.items() if getattr(default, k) != v}


def run_cost(t: Target) -> float:
    """The wall time one run of ``t`` may take, start to report."""
    return expected_s(t.cfg) + RUN_OVERHEAD_S


def minimum_budget(targets: list[Target], jobs: int, runs: int) -> float:
    """The budget in which every configuration gets the runs its expectation needs (``--runs``: that
    many), ``jobs`` at a time: their total time shared out, and the longest run for the last slot."""
    need = [(runs or t.needed) * run_cost(t) for t in targets]
    return sum(need) / jobs + max(run_cost(t) for t in targets)


class Hunt:
    def __init__(self, targets: list[Target], budget: float, jobs: int, runs: int, seed: int, quiet: bool) -> None:
        self.targets = targets
        self.budget = budget
        self.jobs = jobs
        self.runs_wanted = runs
        self.seed = seed
        self.status = None if quiet else LiveStatus(what="hunt")
        self.next_seed = 0
        self.rr = 0
        self.t0 = 0.0
        self.interrupted = False
        self.running: dict[subprocess.Popen[bytes], tuple[Target, Path, float, str, int]] = {}

    def _pick(self, now: float) -> Target | None:
        # first the runs each expectation needs, then more of whatever is not done, round-robin
        for t in self.targets:
            if not t.done(self.runs_wanted) and t.launched < t.needed and now - self.t0 + run_cost(t) <= self.budget:
                return t
        for _ in range(len(self.targets)):
            t = self.targets[self.rr % len(self.targets)]
            self.rr += 1
            if not t.done(self.runs_wanted) and now - self.t0 + expected_s(t.cfg) + RUN_OVERHEAD_S <= self.budget:
                return t
        return None

    def run(self) -> float:
        """Run the campaign; return its elapsed seconds."""
        self.t0 = time.monotonic()
        running: dict[subprocess.Popen[bytes], tuple[Target, Path, float, str, int]] = {}
        self.running = running
        old = signal.signal(signal.SIGTERM, self._on_term)
        with tempfile.TemporaryDirectory(prefix="lazytlb-hunt-") as tmp:
            try:
                while True:
                    now = time.monotonic()
                    while not self.interrupted and len(running) < self.jobs and (t := self._pick(now)) is not None:
                        running.update(self._launch(t, Path(tmp)))
                    if not running:
                        break
                    self._reap_finished(running, block=True)
                    self._progress()
            except KeyboardInterrupt:
                self.interrupted = True
            finally:
                # each run is in a session of its own, so a Ctrl-C reaches the hunt alone: it passes one
                # SIGINT to each run, which drains and reports (a second one would stop it without a report)
                if self.interrupted:
                    for p in running:
                        with contextlib.suppress(ProcessLookupError):
                            p.send_signal(signal.SIGINT)
                deadline = time.monotonic() + 30
                while running and time.monotonic() < deadline:
                    self._reap_finished(running, block=True)
                for p in running:
                    p.kill()
                    p.wait()
                signal.signal(signal.SIGTERM, old)
                if self.status:
                    self.status.done()
        return time.monotonic() - self.t0

    def _on_term(self, signum: int, frame: object) -> None:
        self.interrupted = True
        for p in list(self.running):  # the runs are in sessions of their own: pass it on
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signum)

    def _launch(self, t: Target, tmp: Path) -> dict[subprocess.Popen[bytes], tuple[Target, Path, float, str, int]]:
        seed = (self.seed + self.next_seed) % 2**63
        self.next_seed += 1
        t.launched += 1
        # a run expected to be caught stops at its first violation: the time to it is the measure
        cfg = replace(t.cfg, seed=seed, fail_fast=t.cfg.fail_fast or t.expect == "violation")
        command = command_for(cfg)
        out = tmp / f"run{self.next_seed}.json"
        argv = [sys.executable, "-m", "stress", *shlex.split(command)[3:], "--quiet", "--json", str(out)]
        # stderr to a file, not a pipe: a run that writes more than a pipe holds would block until read
        with open(out.with_suffix(".err"), "wb") as err:
            p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        return {p: (t, out, time.monotonic() - self.t0, command, seed)}

    def _reap_finished(self, running: dict[subprocess.Popen[bytes], tuple[Target, Path, float, str, int]], block: bool) -> None:
        while True:
            done = [p for p in running if p.poll() is not None]
            if done or not block:
                break
            time.sleep(0.02)
        for p in done:
            t, out, started, command, seed = running.pop(p)
            try:
                stderr = out.with_suffix(".err").read_text(errors="replace")
            except OSError:
                stderr = ""
            self._record(t, out, started, command, seed, stderr)

    def _record(self, t: Target, out: Path, started: float, command: str, seed: int, stderr: str) -> None:
        try:
            report = json.loads(out.read_text())
        except (OSError, ValueError):
            if not self.interrupted:
                t.harness_failures += 1
                t.failure = t.failure or f"{command}  # {(stderr.strip().splitlines() or ['no report'])[-1]}"
            return
        t.runs += 1
        if report["verdict"] == "harness_failure":
            t.harness_failures += 1
            t.failure = t.failure or f"{command}  # {report['harness'].get('error')}"
        elif report["verdict"] == "violation":
            t.violating += 1
            t.kinds.update(report["violation_counts"])
            first = report["metrics"].get("first_violation_s")
            if "schedule" in report:  # deterministic: the step is no host time; the run's whole wall time is the cost
                first = round(time.monotonic() - self.t0 - started, 4)
            if first is not None:
                t.detections.append(first)
                at = round(started + first, 3)
                t.first_detection_s = at if t.first_detection_s is None else min(t.first_detection_s, at)
            t.example = t.example or command
            t.violating_runs.append({"seed": seed, "kinds": dict(report["violation_counts"]), "command": command})

    def _progress(self) -> None:
        if not self.status:
            return
        runs = sum(t.runs for t in self.targets)
        caught = sum(1 for t in self.targets if t.violating)
        held = sum(1 for t in self.targets if t.held)
        text = f"{runs} runs, {caught}/{len(self.targets)} configurations with violations, {held} expectations held"
        self.status.update(time.monotonic() - self.t0, self.budget, text)


HEADS = (("configuration", "left"), ("expect", "left"), ("runs", "right"), ("violating", "right"),
         ("first(s)", "right"), ("median(s)", "right"), ("held", "left"))  # fmt: skip


def rows_of(targets: list[Target]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for t in targets:
        j = t.to_json()
        first = "-" if j["first_detection_s"] is None else f"{j['first_detection_s']:.2f}"
        med = "-" if j["median_detection_s"] is None else f"{j['median_detection_s']:.3f}"
        out.append((t.name, t.expect, str(t.runs), str(t.violating), first, med, t.answer))
    return out


def table_lines(targets: list[Target], width: int) -> str:
    """The table, if its names fit whole in ``width``; else a block per configuration: its name
    on a line of its own, the figures under it (a name is never cut)."""
    rows = rows_of(targets)
    cols = [max(len(h), *(len(r[i]) for r in rows)) for i, (h, _) in enumerate(HEADS)]
    if sum(cols) + 2 * (len(cols) - 1) <= width:
        table = plain_table(*HEADS)
        for r in rows:
            table.add_row(*r)
        return table_text(table)
    lines = []
    for name, expect, runs, violating, first, med, held in rows:
        lines.append(name)
        lines.append(f"    expect {expect}, {runs} runs, {violating} violating, first {first}s, median {med}s; held: {held}")
    return "\n".join(lines)


def render(targets: list[Target], elapsed: float, interrupted: bool, width: int = 200) -> str:
    lines = [table_lines(targets, width)]
    for t in targets:
        if t.failure:
            lines.append(f"harness failure in {t.name}: {t.failure}")
        elif not t.held and t.example:
            lines.append(f"rerun {t.name}: {t.example}")
    lines.append("")
    lines.append(f"hunt: {elapsed:.1f}s, {sum(t.runs for t in targets)} runs" + (", interrupted" if interrupted else ""))
    lines.append(f"all expectations held: {verdict(targets, interrupted)}")
    return "\n".join(lines)


def verdict(targets: list[Target], interrupted: bool) -> str:
    """yes, NO, or not known: a campaign cut short, or a configuration never run, proves nothing either way."""
    if any(t.runs and not t.held for t in targets):
        return "NO"
    unrun = sum(1 for t in targets if not t.runs)
    if interrupted:
        return f"not known (interrupted; {unrun} of {len(targets)} configurations not run)" if unrun else "not known (interrupted)"
    if unrun:
        return f"not known ({unrun} of {len(targets)} configurations not run)"
    return "yes"


def run_length(cfg: RunConfig) -> str:
    return f"{cfg.steps:,} steps (--sched {cfg.sched})" if cfg.deterministic else f"{cfg.duration:g}s"


def cmd_hunt(ns: argparse.Namespace) -> int:
    import os

    from stress.options import check_writable, config_from

    if ns.jobs is not None and not 1 <= ns.jobs <= 256:
        raise ConfigError(f"--jobs must be between 1 and 256, got {ns.jobs}")
    if not 0 <= ns.runs <= 100_000:
        raise ConfigError(f"--runs must be between 0 (until the budget) and 100000, got {ns.runs}")
    if ns.matrix and (ns.strategy or ns.mutant or ns.expect):
        raise ConfigError("--matrix hunts every configuration: drop --strategy, --mutant and --expect")
    small_machine_for_det(ns, {"cpus": 8, "procs": Workload().procs, "threads": Workload().threads, "kthreads": Workload().kthreads})
    base = config_from(ns)
    check_writable(ns.json)
    targets = targets_from(ns, base)
    jobs = ns.jobs or len(os.sched_getaffinity(0))
    need = minimum_budget(targets, jobs, ns.runs)
    if ns.budget < need:
        runs = f"{ns.runs} runs each" if ns.runs else "the runs each expectation needs (a broken one's catch_runs, emu/harness/matrix.py)"
        raise ConfigError(
            f"--budget {ns.budget:g}s cannot give {len(targets)} configuration(s) {runs} at --jobs {jobs}: "
            f"it takes at least --budget {math.ceil(need)}s"
        )
    if not ns.quiet:
        print(
            f"hunt: {len(targets)} configuration(s), budget {ns.budget:g}s (at least {math.ceil(need)}s needed), {jobs} at a time, "
            f"{base.cpus} CPUs x {run_length(base)} runs, seeds from {base.seed}",
            file=sys.stderr,
        )
    h = Hunt(targets, ns.budget, jobs, ns.runs, base.seed, ns.quiet)
    elapsed = h.run()
    text = sys.stderr if to_stdout(ns.json) else sys.stdout
    print(render(targets, elapsed, h.interrupted, console_for(text).width), file=text)
    answer = verdict(targets, h.interrupted)
    if ns.json:
        doc = {"configs": [t.to_json() for t in targets], "all_held": answer == "yes", "held": answer, "interrupted": h.interrupted,
               "elapsed_s": round(elapsed, 2), "budget_s": ns.budget}  # fmt: skip
        write_json(ns.json, doc)
    if h.interrupted:
        return STATUS_INTERRUPTED
    if any(t.harness_failures for t in targets):
        return 3
    return 0 if answer == "yes" else 1
