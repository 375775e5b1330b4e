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
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emu.harness import perturbations
from emu.harness.campaign import CampaignDB, RayExecutor, RayUnavailable, failed, summarize
from emu.harness.config import ConfigError, RunConfig, Workload, suggest
from emu.harness.matrix import CLEAN, DET_MACHINE, DET_STEPS, Cell, all_arches, all_cells, find
from emu.harness.report import command_for
from stress.options import Duration, Names
from stress.output import STATUS_INTERRUPTED, to_stdout, write_json
from stress.progress import LiveStatus, console_for, plain_table, table_text

DEFAULT_NOISE = 0.0  # hunt's default perturbation: see the README's race-hunting section
RUN_OVERHEAD_S = 1.5  # interpreter start, boot, drain and report of one run
SHRINK_BUDGET_S = 20.0  # hunt --db: the shrink of each new finding's reproducer


class Address:
    """A Ray cluster's address: HOST:PORT as ``ray start --head`` prints it, ``auto`` or a ``ray://`` URL."""

    __name__ = "address"

    def __call__(self, text: str) -> str:
        host, _, port = text.removeprefix("ray://").rpartition(":")
        if text == "auto" or (host and port.isdigit() and 0 < int(port) < 65536):
            return text
        raise argparse.ArgumentTypeError(f"expected a cluster address HOST:PORT (as ray start prints it) or auto, got '{text}'")


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
    h.add_argument(
        "--cell",
        action="append",
        type=Names("matrix cell", lambda: sorted(c.id for c in all_cells())),
        default=None,
        metavar="ID",
        help="with --matrix: only this cell (its id, as the table names it); repeatable",
    )
    c = h.add_argument_group("campaign")
    c.add_argument(
        "--executor", choices=("local", "ray"), default="local", help="where the runs go: this machine, or a Ray cluster (default: local)"
    )
    c.add_argument(
        "--address",
        type=Address(),
        default=None,
        help="--executor ray: the cluster's address, as `ray start --head` prints it (default: start a local one)",
    )
    c.add_argument(
        "--db",
        metavar="PATH",
        default=None,
        help="record every run in this SQLite file; a campaign recorded there resumes with new seeds only",
    )
    c.add_argument(
        "--shrink-budget",
        type=Duration(),
        default=None,
        metavar="SECONDS",
        help=f"--db: shrink each new finding's best deterministic reproducer for up to this long (default: {SHRINK_BUDGET_S:g}s)",
    )


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


# the perturbations a scheme is checked under, as RunConfig options: none, then each declared one that
# the deterministic mode runs too (emu.harness.perturbations), in the order of their columns
def matrix_perturbations() -> dict[str, dict[str, Any]]:
    columns = sorted((k for k in perturbations.kinds() if k.in_matrix), key=lambda k: (k.column_order, k.name))
    return {"none": {}, **{k.column(): k.options() for k in columns}}


def scheme_targets(base: RunConfig) -> list[Target]:
    """``hunt --matrix --strategy S``: S on every architecture model x perturbation, in the free mode
    and under ``--sched pct`` (on the deterministic matrix's small machine). Each is expected as S
    declares its cell on that arch without options (``Strategy.cells``), clean where it declares
    none; the rows S's declarations add with options, a workload or a mutant come after them."""
    out = []
    cells = [c for c in all_cells() if c.base == base.strategy]
    for arch in all_arches():
        plain = next((c for c in cells if c.arch == arch and not (c.options or c.workload or c.mutant)), None)
        expect = plain.expect_verdict if plain else "clean"
        needed = plain.catch_runs if plain and plain.expect != CLEAN else 1
        for pname, options in matrix_perturbations().items():
            free = replace(base, arch=arch, sched="free", **options)
            det = Cell(base.strategy, arch, options=options).det_config(0, steps=base.steps if base.deterministic else DET_STEPS)
            det = replace(det, duration=base.duration, fail_fast=expect != "clean")
            out += [Target(f"{arch} {pname} free", free, expect, needed=needed), Target(f"{arch} {pname} pct", det, expect, needed=needed)]
    for cell in cells:
        if cell.options or cell.workload or cell.mutant:
            cfg = cell.config(0, cpus=base.cpus, duration=base.duration, workload=base.workload)
            out.append(Target(cell.id, cfg, cell.expect_verdict, needed=cell.catch_runs if cell.expect != CLEAN else 1))
    return out


def targets_from(ns: argparse.Namespace, base: RunConfig) -> list[Target]:
    cell: Cell | None
    # the perturbations asked for apply to every cell (a field each, or named in perturb)
    perturb: dict[str, Any] = {
        "noise": base.noise,
        "perturb": base.perturb,
        **{k.field: getattr(base, k.field) for k in perturbations.kinds() if k.field},
    }
    if ns.matrix and ns.strategy:
        return scheme_targets(base)
    if ns.matrix:
        out = []
        cells = all_cells()
        if ns.cell:
            ids = {c.id: c for c in cells}
            for want in ns.cell:
                if want not in ids:
                    raise ConfigError(f"--cell: no matrix cell '{want}' {suggest(want, sorted(ids))}")
            cells = [c for c in cells if c.id in ns.cell]
        for cell in cells:
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


def config_key(cfg: RunConfig) -> str:
    """What a recorded run is matched by when a campaign resumes: its configuration's rerun command, seed left out."""
    return command_for(replace(cfg, seed=0))


def run_cost(t: Target) -> float:
    """The wall time one run of ``t`` may take, start to report."""
    return expected_s(t.cfg) + RUN_OVERHEAD_S


def minimum_budget(targets: list[Target], jobs: int, runs: int) -> float:
    """The budget in which every configuration gets the runs its expectation needs (``--runs``: that
    many), ``jobs`` at a time: their total time shared out, and the longest run for the last slot."""
    need = [(runs or t.needed) * run_cost(t) for t in targets]
    return sum(need) / jobs + max(run_cost(t) for t in targets)


class LocalRuns:
    """Runs on this machine: each a ``python -m stress run`` process in a session of its own."""

    name = "local"

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.n = 0
        self.running: dict[subprocess.Popen[bytes], tuple[Any, Path, float, str]] = {}

    def __len__(self) -> int:
        return len(self.running)

    def launch(self, key: Any, args: list[str], cfg: RunConfig) -> None:
        self.n += 1
        out = self.tmp / f"run{self.n}.json"
        argv = [sys.executable, "-m", "stress", "run", *args, "--quiet", "--json", str(out)]
        # stderr to a file, not a pipe: a run that writes more than a pipe holds would block until read
        with open(out.with_suffix(".err"), "wb") as err:
            p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        self.running[p] = (key, out, time.monotonic(), cfg.sched)

    def reap(self, block: bool) -> list[tuple[Any, dict[str, Any]]]:
        while True:
            done = [p for p in self.running if p.poll() is not None]
            if done or not block:
                break
            time.sleep(0.02)
        out = []
        for p in done:
            key, path, started, mode = self.running.pop(p)
            wall = time.monotonic() - started
            try:
                report = json.loads(path.read_text())
            except (OSError, ValueError):
                try:
                    lines = path.with_suffix(".err").read_text(errors="replace").strip().splitlines()
                except OSError:
                    lines = []
                out.append((key, failed(lines[-1] if lines else "no report", wall, "local", mode)))
                continue
            out.append((key, summarize(report, wall, "local")))
        return out

    def signal(self, signum: int) -> None:
        for p in self.running:  # the runs are in sessions of their own: pass it on
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signum)

    def kill(self) -> None:
        for p in self.running:
            p.kill()
            p.wait()
        self.running.clear()

    def close(self) -> None:
        pass


class RayRuns:
    """Runs on a Ray cluster (emu.harness.campaign.RayExecutor): each the subprocess of a task."""

    name = "ray"

    def __init__(self, executor: RayExecutor, timeout_s: float) -> None:
        self.ex = executor
        self.timeout_s = timeout_s

    def __len__(self) -> int:
        return len(self.ex.pending)

    def launch(self, key: Any, args: list[str], cfg: RunConfig) -> None:
        # a free-running run's CPUs each spin a host core; a deterministic run's take turns on one
        self.ex.submit(key, args, 1 if cfg.deterministic else cfg.cpus, self.timeout_s)

    def reap(self, block: bool) -> list[tuple[Any, dict[str, Any]]]:
        return list(self.ex.wait(timeout=1.0 if block else 0.0))

    def signal(self, signum: int) -> None:
        self.ex.interrupt()

    def kill(self) -> None:
        self.ex.kill()

    def close(self) -> None:
        self.ex.close()


class Hunt:
    def __init__(self, targets: list[Target], budget: float, jobs: int, runs: int, seed: int, quiet: bool,
                 db: CampaignDB | None = None, campaign: int = 0) -> None:  # fmt: skip
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
        self.db = db
        self.campaign = campaign
        self.skip: dict[str, set[int]] = {t.name: set() for t in targets}  # seeds already recorded in the database
        self.resumed = 0
        if db is not None:
            self._resume(db)
        self.runs: LocalRuns | RayRuns | None = None

    def _resume(self, db: CampaignDB) -> None:
        """Count each configuration's recorded runs as run: a resumed campaign runs only new seeds."""
        for t in self.targets:
            for r in db.finished(config_key(t.cfg)):
                self.skip[t.name].add(int(r["seed"]))
                rec = {k: r[k] for k in ("verdict", "first_violation_s", "first_violation_step", "wall_s", "mode", "error")}
                rec.update(kinds=json.loads(r["kinds"]), signature=None, replay=None, node=r["node"])
                t.launched += 1
                self._count(t, rec, 0.0, r["command"], int(r["seed"]))
                self.resumed += 1

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

    def run(self, executor: RayExecutor | None = None) -> float:
        """Run the campaign, here or on ``executor``'s cluster; return its elapsed seconds."""
        self.t0 = time.monotonic()
        old = signal.signal(signal.SIGTERM, self._on_term)
        # on a cluster, a Ctrl-C only marks the campaign interrupted: the loop passes it on (a
        # KeyboardInterrupt raised inside Ray's client calls would leave its tasks running)
        old_int = signal.signal(signal.SIGINT, self._on_term) if executor else None
        with tempfile.TemporaryDirectory(prefix="lazytlb-hunt-") as tmp:
            runs: LocalRuns | RayRuns
            runs = RayRuns(executor, max(run_cost(t) for t in self.targets) * 4 + 60) if executor else LocalRuns(Path(tmp))
            self.runs = runs
            passed_on = 0.0
            try:
                while True:
                    now = time.monotonic()
                    if self.interrupted and not passed_on and executor:
                        runs.signal(signal.SIGINT)
                        passed_on = now
                    if passed_on and now - passed_on > 30:
                        break
                    while not self.interrupted and len(runs) < self.jobs and (t := self._pick(now)) is not None:
                        self._launch(t, runs)
                    if not len(runs):
                        break
                    self._collect(runs.reap(block=True))
                    self._progress()
            except KeyboardInterrupt:
                self.interrupted = True
            finally:
                # each run is in a session of its own, so a Ctrl-C reaches the hunt alone: it passes one
                # SIGINT to each run, which drains and reports (a second one would stop it without a report)
                if self.interrupted and not passed_on:
                    runs.signal(signal.SIGINT)
                deadline = time.monotonic() + 30
                while len(runs) and time.monotonic() < deadline:
                    self._collect(runs.reap(block=True))
                runs.kill()
                signal.signal(signal.SIGTERM, old)
                if old_int is not None:
                    signal.signal(signal.SIGINT, old_int)
                if self.status:
                    self.status.done()
        return time.monotonic() - self.t0

    def _on_term(self, signum: int, frame: object) -> None:
        self.interrupted = True
        if isinstance(self.runs, LocalRuns):
            self.runs.signal(signum)

    def _launch(self, t: Target, runs: LocalRuns | RayRuns) -> None:
        while (seed := (self.seed + self.next_seed) % 2**63) in self.skip[t.name]:
            self.next_seed += 1  # recorded by the campaign this one resumes
        self.next_seed += 1
        t.launched += 1
        # a run expected to be caught stops at its first violation: the time to it is the measure
        cfg = replace(t.cfg, seed=seed, fail_fast=t.cfg.fail_fast or t.expect == "violation")
        command = command_for(cfg)
        runs.launch((t, time.monotonic() - self.t0, command, seed), shlex.split(command)[4:], cfg)

    def _collect(self, done: list[tuple[Any, dict[str, Any]]]) -> None:
        for (t, started, command, seed), rec in done:
            if rec.get("no_report"):
                if not self.interrupted:
                    t.harness_failures += 1
                    t.failure = t.failure or f"{command}  # {rec.get('error') or 'no report'}"
                    if self.db is not None:
                        self.db.add(self.campaign, t.name, t.cfg.to_dict(), config_key(t.cfg), seed, t.expect, command, rec)
                continue
            if self.db is not None:
                self.db.add(self.campaign, t.name, t.cfg.to_dict(), config_key(t.cfg), seed, t.expect, command, rec)
            self._count(t, rec, started, command, seed)

    def _count(self, t: Target, rec: dict[str, Any], started: float, command: str, seed: int) -> None:
        t.runs += 1
        if rec["verdict"] == "harness_failure":
            t.harness_failures += 1
            t.failure = t.failure or f"{command}  # {rec.get('error')}"
        elif rec["verdict"] == "violation":
            t.violating += 1
            t.kinds.update(rec["kinds"])
            first = rec["first_violation_s"]
            if rec["mode"] != "free":  # deterministic: the step is no host time; the run's whole wall time is the cost
                first = rec["wall_s"]
            if first is not None:
                t.detections.append(first)
                at = round(started + first, 3)
                t.first_detection_s = at if t.first_detection_s is None else min(t.first_detection_s, at)
            t.example = t.example or command
            t.violating_runs.append({"seed": seed, "kinds": dict(rec["kinds"]), "command": command})

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


def verdict_table(targets: list[Target]) -> str:
    """``hunt --matrix --strategy S``: arch x perturbation, each cell the free and the pct mode's
    verdict (``clean``, the violation kind its runs met most, or ``-`` where none ran); the rerun
    command of each violation is in the lines above (``rerun NAME: ...``)."""
    by_name = {t.name: t for t in targets}

    def word(t: Target | None) -> str:
        if t is None or not t.runs:
            return "-"
        if t.harness_failures:
            return "harness"
        return t.kinds.most_common(1)[0][0] if t.violating else "clean"

    arches = list(dict.fromkeys(n.split(" ")[0] for n in by_name if n.endswith((" free", " pct"))))
    columns = matrix_perturbations()
    rows = [["arch", *(f"{p} (free/pct)" for p in columns)]]
    for a in arches:
        rows.append([a, *(f"{word(by_name.get(f'{a} {p} free'))}/{word(by_name.get(f'{a} {p} pct'))}" for p in columns)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


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


def open_executor(ns: argparse.Namespace) -> RayExecutor | None:
    """The Ray cluster of ``--executor ray`` (joined, or started here), or None for the local executor."""
    if ns.executor != "ray":
        if ns.address:
            raise ConfigError("--address names a Ray cluster: give --executor ray with it")
        return None
    try:
        return RayExecutor(ns.address, num_cpus=ns.jobs)
    except RayUnavailable as e:
        raise ConfigError(str(e)) from None


def cmd_hunt(ns: argparse.Namespace) -> int:
    import os

    from stress.options import check_distinct, check_writable, config_from

    if ns.jobs is not None and not 1 <= ns.jobs <= 256:
        raise ConfigError(f"--jobs must be between 1 and 256, got {ns.jobs}")
    if not 0 <= ns.runs <= 100_000:
        raise ConfigError(f"--runs must be between 0 (until the budget) and 100000, got {ns.runs}")
    if ns.matrix and (ns.mutant or ns.expect):
        raise ConfigError("--matrix hunts every configuration: drop --mutant and --expect (--strategy: one scheme's rows)")
    if ns.cell and not ns.matrix:
        raise ConfigError("--cell picks cells of the matrix: give --matrix with it")
    if ns.shrink_budget is not None and not ns.db:
        raise ConfigError("--shrink-budget shrinks the findings recorded with --db: give --db PATH")
    small_machine_for_det(ns, {"cpus": 8, "procs": Workload().procs, "threads": Workload().threads, "kthreads": Workload().kthreads})
    base = config_from(ns)
    check_writable(ns.json)
    check_writable(ns.db, "--db")
    check_distinct(**{"--db": ns.db, "--json": ns.json})
    targets = targets_from(ns, base)
    if ns.jobs is None and ns.executor == "ray" and ns.address is None:
        ns.jobs = len(os.sched_getaffinity(0))  # the local cluster's CPUs
    ex = open_executor(ns)
    try:
        return _hunt(ns, base, targets, ex)
    finally:
        if ex is not None:
            ex.close()


def _hunt(ns: argparse.Namespace, base: RunConfig, targets: list[Target], ex: RayExecutor | None) -> int:
    import os

    per_run = 1 if base.deterministic else base.cpus
    jobs = ns.jobs or (max(1, ex.cpus() // min(per_run, ex.largest_node_cpus())) if ex else len(os.sched_getaffinity(0)))
    need = minimum_budget(targets, jobs, ns.runs)
    if ns.budget < need:
        runs = f"{ns.runs} runs each" if ns.runs else "the runs each expectation needs (a broken one's catch_runs, emu/harness/matrix.py)"
        raise ConfigError(
            f"--budget {ns.budget:g}s cannot give {len(targets)} configuration(s) {runs} at --jobs {jobs}: "
            f"it takes at least --budget {math.ceil(need)}s"
        )
    db = None
    if ns.db:
        try:
            db = CampaignDB(ns.db)
        except sqlite3.DatabaseError as e:
            raise ConfigError(f"--db {ns.db}: not a campaign database ({e})") from None
    try:
        campaign = db.start(ns.executor, shlex.join(["python", "-m", "stress", *sys.argv[1:]]), base.seed) if db else 0
        h = Hunt(targets, ns.budget, jobs, ns.runs, base.seed, ns.quiet, db, campaign)
        if not ns.quiet:
            where = f"on the Ray cluster ({ex.cpus()} CPUs)" if ex else "here"
            resumed = f", {h.resumed} runs recorded in {ns.db} counted" if h.resumed else ""
            print(
                f"hunt: {len(targets)} configuration(s), budget {ns.budget:g}s (at least {math.ceil(need)}s needed), "
                f"{jobs} at a time {where}, "
                f"{base.cpus} CPUs x {run_length(base)} runs, seeds from {base.seed}{resumed}",
                file=sys.stderr,
            )
        elapsed = h.run(ex)
        text = sys.stderr if to_stdout(ns.json) else sys.stdout
        print(render(targets, elapsed, h.interrupted, console_for(text).width), file=text)
        if ns.matrix and ns.strategy:
            print("\n" + verdict_table(targets), file=text)
        if db is not None and not h.interrupted:
            from stress.findings import shrink_new

            budget = SHRINK_BUDGET_S if ns.shrink_budget is None else ns.shrink_budget
            n, shrunk = shrink_new(db, budget, ns.quiet)
            print(
                f"findings: {n} signature(s), {shrunk} reproducer(s) shrunk now: python -m stress findings {shlex.quote(ns.db)}", file=text
            )
    finally:
        if db is not None:
            db.close()
    answer = verdict(targets, h.interrupted)
    if ns.json:
        doc = {"configs": [t.to_json() for t in targets], "all_held": answer == "yes", "held": answer, "interrupted": h.interrupted,
               "elapsed_s": round(elapsed, 2), "budget_s": ns.budget, "executor": ns.executor}  # fmt: skip
        write_json(ns.json, doc)
    if h.interrupted:
        return STATUS_INTERRUPTED
    if any(t.harness_failures for t in targets):
        return 3
    return 0 if answer == "yes" else 1
