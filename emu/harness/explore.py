"""Systematic exploration: every schedule of a small scenario with at most K preemptions.

A scenario is a small scripted machine, as data (``Scenario``: CPUs, kernel threads, a script of
``emu.workload.scripted``, the run phase's steps); ``SCENARIOS`` holds the shipped ones, and a
user's is a JSON file with the same fields (``load_scenario``).

The exploration is stateless model checking as CHESS does it (Musuvathi et al., OSDI 2008): each
schedule is a whole run of the scenario under ``--sched explore``
(``emu.machine.policies.explore``), steered through the hand-over by a prefix of answers at its
branching decisions; the run records every branching decision (who could run, who held the turn),
and each alternative answer at a decision past the prefix is a new prefix to run. Iterative context
bounding: the schedules are run in order of their preemptions, 0 first, so the first violation
found has the fewest preemptions any violating schedule has, and a bound K stops the schedules
with more than K.

Under ``--memory-model tso`` a store buffer's commit is a decision too (``tso_commits``, the CLI's
``--tso-commits K``): at a decision where CPU k's buffer holds a store, the answer ``COMMIT | k``
commits its oldest store there (a step, no preemption), at most K times a schedule. The schedules run
fewest commits first, then fewest preemptions (so the exploration with K first runs the one without
commits, schedule for schedule, and the first violation found has the fewest commits); with K = 0 a
buffered store reaches memory only where TSO forces it (``TsoAtomics.commit_only_when_forced``).

Reduction (under ``--memory-model sc`` only, and never with early commits), over the accesses the atomics API sees. A step is
what a CPU runs from one scheduling point to the next; its access is the word its point declares
(``emu.machine.points``: ``P_ACCESS``), and two steps conflict when they touch the same word and
one writes; a step that is not one word's access (a wait, a lock, a page walk, a barrier, an
interrupt to take: an IPI delivery lands in whatever the target runs) conflicts with every step.

- ``sleep`` (the default): sleep sets (Godefroid 1996). Once the subtree where CPU c ran at a
  decision has been explored, c sleeps in its sibling subtrees and is not chosen there until a step
  that conflicts with c's pending one ran; a run whose default path chooses a sleeping CPU branches
  no further.
- ``dpor``: dynamic partial-order reduction (``_dpor``): after each run, every race of its steps
  (two CPUs' conflicting steps that nothing else orders) is reversed at the decision before the
  first one, by trying there a CPU that can start the reversed order, unless one that can was tried.
  Under a preemption bound this is not complete for the bound (a reversal beyond the bound may be
  the only way to a schedule within it): the reversals the bound drops are counted, and only an
  exploration that dropped none claims anything (every schedule, any number of preemptions).
- ``none``: every schedule within the bound.

Two approximations, said in ``docs/deterministic-mode.md``: a step's plain (non-API) reads and
writes of the segment are not seen, and sleep sets with a preemption bound may miss a schedule whose
equivalent one lies beyond the bound; the tests against the unreduced exploration check both
reductions on small scenarios.

The schedules run on CPU processes kept alive between them (``emu.harness.session.Session``: the
segment is reset, the machine rebuilt in each process, nothing forked), or each on a new machine
(``run_one``, as ``run`` does it: the same schedules, at a slower rate).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from emu.harness.config import ConfigError, RunConfig, Workload, read_json
from emu.harness.report import Report
from emu.harness.runner import Runner
from emu.harness.session import Session
from emu.machine.atomics import LINE_SHIFT
from emu.machine.policies.explore import MASK_BITS, is_commit, is_preemption, unpack
from emu.machine.policy import ACCESS_READ_ALL, ACCESS_UNKNOWN, COMMIT
from emu.workload.scripted import parse_script

EXPLORE_SCHED = "explore"


class ScenarioCell(NamedTuple):
    """A matrix cell a scenario is meant for, and what its exploration must show there."""

    strategy: str  # a scheme or a scheme's mutant
    arch: str  # an architecture or an arch mutant (emu.arch.ARCH_MUTANTS)
    fix: str = ""
    expect: str = "clean"  # clean, or the violation kind that catches it
    memory_model: str = "sc"


@dataclass(frozen=True)
class Scenario:
    """A small scripted machine: nothing in it is drawn at random."""

    name: str
    summary: str
    cpus: int
    script: str  # emu.workload.scripted's text
    kthreads: int = 1
    steps: int = 400  # the run phase, in scheduling points (idle CPUs sleep through the rest)
    covers: tuple[str, ...] = ()  # the matrix's defects that live in this situation
    # the cells it is meant for: (strategy or mutant, arch or arch mutant, fix, expected verdict or kind[, memory model])
    cells: tuple[ScenarioCell, ...] = ()

    def config(self, strategy: str, arch: str, fix: str = "", memory_model: str = "sc", mutant: str | None = None) -> RunConfig:
        wl = Workload(procs=self.cpus, threads=1, kthreads=self.kthreads)
        return RunConfig(
            cpus=self.cpus, strategy=strategy, mutant=mutant, arch=arch, fix=fix, memory_model=memory_model, seed=0,
            workload=wl, sched=EXPLORE_SCHED, steps=self.steps, script=self.script, fail_fast=True,
        )  # fmt: skip

    def cell_config(self, strategy: str, arch: str, fix: str = "", memory_model: str = "sc", mutant: str | None = None) -> RunConfig:
        """``config`` for a cell named as the matrix names it: ``strategy`` may be a scheme's mutant,
        ``arch`` an arch mutant (``mutant`` either, as ``run --mutant`` takes it), each run under its base."""
        from emu.arch import ARCH_MUTANTS
        from emu.strategies import MUTANTS

        for name in (strategy, arch, mutant):
            if name in MUTANTS:
                strategy, mutant = MUTANTS[name].mutant_of or strategy, name
            elif name in ARCH_MUTANTS:
                arch, mutant = ARCH_MUTANTS[name].mutant_of or arch, name
        return self.config(strategy, arch, fix, memory_model, mutant)

    def check(self) -> None:
        if not 2 <= self.cpus <= 4:
            raise ConfigError(f"scenario {self.name}: 2 to 4 CPUs, not {self.cpus}")
        try:
            parse_script(self.script, self.cpus)
        except ValueError as e:
            raise ConfigError(f"scenario {self.name}: {e}") from None


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "lazy-exit",
            "cpu0 forks, starts a thread of the process on cpu1, exits and goes lazy on the mm; cpu1's thread, its last user, exits",
            cpus=2,
            script="0:fork,clone=1,run,exit;1:sleep=300",
            covers=("D1", "D2", "B1", "B9"),
            cells=(
                ScenarioCell("refcount", "x86", "", "clean"),
                ScenarioCell("luto-hazard", "arm64", "", "clean"),
                ScenarioCell("shoot-lazies", "arm64", "", "use_after_free"),
                ScenarioCell("refcount-no-grab", "x86", "", "use_after_free"),
                ScenarioCell("luto-rfc", "arm64", "integrated", "freed_while_lazy"),
                ScenarioCell("luto-rfc", "arm64", "drop-check,integrated", "freed_while_lazy"),
                ScenarioCell("luto-rfc", "x86", "drop-check,integrated", "freed_while_lazy"),
            ),
        ),
        Scenario(
            "b3-rescan",
            "cpu0 is lazy on A while A's exit on cpu2 scans it; cpu0 then runs C's thread and goes lazy on C, whose exit on cpu1 parks C",
            cpus=3,
            # cpu2's process A has a thread on cpu0, which exits first (cpu0 lazy on A); cpu1's process C starts a
            # thread on cpu0 after its sleep, exits last and forks again; A's last user exits on cpu2 and scans
            script="0:exit,exit;1:fork,sleep=120,clone=0,exit,fork;2:fork,clone=0,sleep=150,exit",
            covers=("B3",),
            cells=(
                ScenarioCell("luto-rfc", "arm64", "drop-check,scan-online,integrated", "freed_while_lazy"),
                ScenarioCell("luto-hazard", "arm64", "", "clean"),
            ),
        ),
        Scenario(
            "hazptr-retire-busy",
            "hazptr: cpu0's thread exits first, lazy on the mm (its slot names it); the last user exits on cpu1 and retires the slot",
            cpus=2,
            script="0:fork,clone=1,run,exit;1:sleep=100,run,exit",
            covers=("hazptr busy-wait",),
            cells=(ScenarioCell("hazptr", "x86", "skip-init-mm,drop-irqs-off", "clean"),),
        ),
        Scenario(
            "kthread-trim",
            "cpu1's thread of cpu0's process exits (cpu1 lazy, in the mask); cpu0's now single-threaded process unmaps "
            "and trims the mask while cpu1's kernel thread adopts the mm (kthread_use_mm)",
            cpus=2,
            script="0:fork,clone=1,run,munmap,exit;1:exit,use-mm=0",
            covers=("B8",),
            cells=(
                ScenarioCell("shoot-lazies", "powerpc-trim-vs-kthread", "", "cpumask_missing"),
                ScenarioCell("refcount", "powerpc-trim-vs-kthread", "", "cpumask_missing"),
                ScenarioCell("shoot-lazies", "powerpc", "", "clean"),
                ScenarioCell("refcount", "powerpc", "", "clean"),
            ),
        ),
        Scenario(
            "offline-lazy",
            "cpu1's thread of cpu0's process exits (cpu1 lazy on the mm); cpu0 takes cpu1 down, sleeps, and its thread, "
            "the last user, exits; then brings cpu1 back",
            cpus=2,
            script="0:fork,clone=1,offline=1,sleep=3000,exit,online=1;1:exit",
            covers=("B2", "H4", "H3"),
            cells=(
                ScenarioCell("shoot-hotplug-race", "powerpc", "", "cpumask_missing"),
                ScenarioCell("shoot-lazies", "powerpc", "", "clean"),
                ScenarioCell("hazptr", "x86", "skip-init-mm,drop-irqs-off", "liveness"),
                ScenarioCell("hazptr", "x86", "drop-irqs-off,sched-force-init-mm", "scheme_warning"),
                ScenarioCell("hazptr", "x86", "skip-init-mm,drop-irqs-off,sched-force-init-mm", "clean"),
            ),
        ),
        Scenario(
            "preempted-drop",
            "cpu0's thread exits (cpu0 lazy on the mm, which cpu1's thread keeps); cpu0 forks a process that starts in "
            "kernel_execve, whose exec_mmap is preempted before its lazy drop and moves to cpu1",
            cpus=2,
            steps=120,
            script="0:fork,clone=1,exit,fork-exec,preempt-migrate;1:run,exit",
            covers=("H1",),
            cells=(
                ScenarioCell("hazptr", "x86", "", "scheme_warning"),
                ScenarioCell("hazptr", "x86", "skip-init-mm", "scheme_warning"),
                ScenarioCell("hazptr", "x86", "skip-init-mm,this-cpu-write", "scheme_warning"),
                ScenarioCell("hazptr", "x86", "skip-init-mm,drop-irqs-off", "clean"),
            ),
        ),
        Scenario(
            "rfc-reread",
            "B3 on two CPUs: cpu1's process A has a thread on cpu0, which exits (cpu0 lazy on A); A's last user exits on "
            "cpu1 and scans while cpu0 forks C, which exits there (C parked in cpu0's mm_to_mmdrop, cpu0 lazy on C)",
            cpus=2,
            steps=200,
            script="0:exit,fork,exit;1:fork,clone=0,sleep=20,exit",
            covers=("B3",),
            cells=(
                ScenarioCell("luto-rfc", "arm64", "drop-check,scan-online,integrated", "freed_while_lazy"),
                ScenarioCell("luto-hazard", "arm64", "", "clean"),
            ),
        ),
        Scenario(
            "switch-flush",
            "cpu1 runs a thread of cpu0's process, sleeps, runs a process of its own and switches back (its bit "
            "still set in the lazy mask) while cpu0 unmaps, sleeping between its unmaps: the x86 switch against a "
            "concurrent flush, the first switch in and the switch back",
            cpus=2,
            steps=200,
            # cpu0's sleeps spread its unmaps past cpu1's sleep: without them all three are done before cpu1's
            # switch back, while cpu1 sleeps and nothing can preempt cpu0 (X1's window is in the switch back)
            script="0:fork,clone=1,run,munmap,sleep=40,munmap,sleep=40,munmap,exit;1:sleep=50,fork,exit",
            covers=("X1", "X2", "X3"),
            cells=(
                ScenarioCell("refcount", "x86-v6.14", "", "missed_flush"),
                ScenarioCell("refcount", "x86-stable-6.12.29", "", "missed_flush"),
                ScenarioCell("refcount", "x86-v6.14.7", "", "missed_flush", "tso"),
                ScenarioCell("refcount", "x86-lazy-mask", "", "clean", "tso"),
                ScenarioCell("refcount", "x86-lazy-mask", "", "clean"),
                ScenarioCell("refcount", "x86-v6.14.7", "", "clean"),
                ScenarioCell("refcount", "x86-stable-dolan-fix", "", "clean"),
            ),
        ),
    )
}


def load_scenario(name: str) -> Scenario:
    """A shipped scenario by name, or a user's from a JSON file with ``Scenario``'s fields."""
    if name in SCENARIOS:
        return SCENARIOS[name]
    if not name.endswith(".json"):
        raise ConfigError(f"unknown scenario '{name}' (choose from {', '.join(sorted(SCENARIOS))}, or give a .json file)")
    data = read_json(name, "--scenario", "not JSON")
    names = {f.name for f in dataclasses.fields(Scenario)}
    if not isinstance(data, dict) or set(data) - names or not {"name", "cpus", "script"} <= set(data):
        raise ConfigError(f"--scenario {name}: expected an object with name, cpus, script (and summary, kthreads, steps)")
    try:
        cells = tuple(ScenarioCell(*c) for c in data.get("cells", ()))
        scenario = Scenario(**{"summary": "", **data, "covers": tuple(data.get("covers", ())), "cells": cells})
    except TypeError as e:
        raise ConfigError(f"--scenario {name}: {e}") from None
    if not isinstance(scenario.cpus, int) or not isinstance(scenario.script, str) or not isinstance(scenario.steps, int):
        raise ConfigError(f"--scenario {name}: cpus and steps are numbers, script is text")
    scenario.check()
    return scenario


@dataclass
class Decision:
    runnable: tuple[int, ...]
    current: int
    chosen: int
    yielding: bool
    step: int
    access: tuple[int, ...] = ()  # each CPU's pending access (emu.machine.policy.P_ACCESS)
    buffered: int = 0  # the CPUs whose TSO store buffer holds a store, a bit each (early commits may be chosen)

    @property
    def branches(self) -> bool:
        """The policy answers it from the prefix: more than one CPU could run, or a store buffer could commit."""
        return len(self.runnable) > 1 or bool(self.buffered)


def independent(a: int, b: int) -> bool:
    """Two pending accesses commute: neither unknown, and different cache lines (a lock, a record's
    plain writes after its API access: a line is the grain) or both reads; a page walk reads every word."""
    if a == ACCESS_UNKNOWN or b == ACCESS_UNKNOWN:
        return False
    if a == ACCESS_READ_ALL or b == ACCESS_READ_ALL:
        return not ((a if b == ACCESS_READ_ALL else b) & 1) or a == b
    return ((a >> 1) - 1) >> LINE_SHIFT != ((b >> 1) - 1) >> LINE_SHIFT or not (a | b) & 1


@dataclass
class Exploration:
    """What an exploration did: ``complete`` only if every schedule within the bound ran, or one
    equivalent to it (``dpor``: only if no reversal was dropped: then every schedule, whatever its preemptions)."""

    scenario: str
    bound: int
    complete: bool = False
    schedules: int = 0
    verdict: str = "clean"
    kind: str = ""
    found_at: int = -1  # the preemptions of the violating schedule
    prefix: tuple[int, ...] = ()  # its answers at the branching decisions
    report: Report | None = None  # the violating run's report (its schedule replays with run --replay)
    by_bound: dict[int, int] = field(default_factory=dict)  # schedules run, by their preemptions
    outcomes: set[tuple[str, ...]] = field(default_factory=set)  # the distinct outcomes seen (violation kinds; () clean)
    runs: dict[tuple[int, ...], tuple[str, ...]] = field(default_factory=dict)  # each schedule run (its answers) -> its outcome
    pruned: int = 0  # alternatives the sleep sets skipped
    reduction: str = "sleep"  # sleep, dpor or none
    dropped: int = 0  # dpor: reversals of a race that the bound dropped (then not every schedule was covered)
    diverged: int = 0  # prefixes the run did not follow (nondeterminism: never expected)
    elapsed_s: float = 0.0
    cpu_s: float = 0.0  # the CPU time of the lead and the CPU processes (0: not measured, a caller's ``run``)
    stopped: str = ""  # why it ended early: the budget, an interruption
    tso_commits: int = 0  # the bound on a schedule's early commits of TSO store buffers (explore --tso-commits)
    found_commits: int = -1  # the early commits of the violating schedule

    @property
    def rate(self) -> float:
        return self.schedules / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def cpu_rate(self) -> float:
        """Schedules per CPU second: the rate where nothing else runs on the host (a loaded host's wall rate is lower)."""
        return self.schedules / self.cpu_s if self.cpu_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "complete": self.complete,
            "schedules": self.schedules,
            "verdict": self.verdict,
            "kind": self.kind or None,
            "preemptions": self.bound,
            "found_at_preemptions": self.found_at if self.found_at >= 0 else None,
            "tso_commits": self.tso_commits,
            "found_at_tso_commits": self.found_commits if self.found_commits >= 0 else None,
            "schedules_by_preemptions": {str(k): v for k, v in sorted(self.by_bound.items())},
            "pruned": self.pruned,
            "reduction": self.reduction,
            "dpor_dropped": self.dropped if self.reduction == "dpor" else None,
            "elapsed_s": round(self.elapsed_s, 3),
            "schedules_per_s": round(self.rate, 2),
            "cpu_s": round(self.cpu_s, 3),
            "schedules_per_cpu_s": round(self.cpu_rate, 2),
            "stopped": self.stopped or None,
            "prefix": list(self.prefix),
        }


def decisions_of(record: tuple[int, ...], ncpus: int, every_step: bool = False) -> tuple[bool, list[Decision]]:
    """A run's ``Policy.record``: whether its prefix diverged, and its branching decisions (with
    ``every_step``, every step of its run phase, the ones only one CPU could take too)."""
    if not record:
        return False, []
    k = 2 + ncpus
    body = record[1:]
    return bool(record[0]), [
        Decision(*unpack(body[i]), access=tuple(body[i + 2 : i + k]), buffered=body[i + 1])
        for i in range(0, len(body) - k + 1, k)
        if every_step or _branches(body[i], body[i + 1])
    ]


def _branches(word: int, buffered: int) -> bool:
    mask = word & ((1 << MASK_BITS) - 1)
    return bool(mask & (mask - 1) or buffered)  # more than one CPU could run, or a store buffer may commit


def preemptions(ds: list[Decision], upto: int) -> int:
    return sum(is_preemption(d.runnable, d.current, d.chosen, d.yielding) for d in ds[:upto])


def commits(prefix: tuple[int, ...]) -> int:
    """The early commits a schedule's answers take (the default never takes one)."""
    return sum(is_commit(c) for c in prefix)


# one schedule: (its violation kinds, sorted, () none; its policy's record; its report, None for a clean run)
RunOne = Callable[[RunConfig, tuple[int, ...]], tuple[tuple[str, ...], tuple[int, ...], Report | None]]


def run_one(cfg: RunConfig, prefix: tuple[int, ...]) -> tuple[tuple[str, ...], tuple[int, ...], Report | None]:
    """One schedule on a new machine (as ``run`` does it): a run of the scenario steered by ``prefix``."""
    runner = Runner(cfg, prefix=prefix)
    report = runner.run()
    return tuple(sorted(report.violation_counts)), runner.state.policy_record, report


def outcome(kinds: tuple[str, ...], report: Report | None) -> tuple[str, ...]:
    """A schedule's outcome: its violation kinds, or its harness failure (a deadlock is a finding)."""
    if report is not None and report.verdict == "harness_failure":
        error = str(report.harness.get("error", ""))
        return ("deadlock",) if error.startswith("deadlock") else ("harness_failure",)
    return kinds


REDUCTIONS = ("sleep", "dpor", "none")


def explore(
    cfg: RunConfig,
    scenario: str,
    bound: int,
    *,
    reduce: bool | str = True,
    budget: int = 0,
    stop_at_violation: bool = True,
    run: RunOne | None = None,
    progress: Callable[[Exploration], None] | None = None,
    tso_commits: int = 0,
) -> Exploration:
    """Every schedule of ``cfg``'s scenario with at most ``bound`` preemptions, fewest first
    (``budget``: at most that many schedules, 0 none). Stops at the first violation unless told not to.
    ``reduce``: "sleep" (or True) sleep sets, "dpor" dynamic partial-order reduction, "none" (or False)
    every schedule; the reductions apply under ``--memory-model sc`` only (else "none").
    ``tso_commits``: under tso, a schedule may also take up to that many early commits of a store
    buffer's oldest store, each at any decision where some CPU's buffer holds one (0: none, a
    buffered store reaches memory where TSO forces it alone); fewest commits first, then fewest preemptions."""
    mode = "sleep" if reduce is True else "none" if reduce is False else reduce
    if mode not in REDUCTIONS:
        raise ValueError(f"reduce: one of {', '.join(REDUCTIONS)}, not {mode!r}")
    if cfg.memory_model != "sc" or tso_commits:
        mode = "none"  # the reduction's conflicts know no store buffer (nor an early commit's write)
    if run is None:
        lead0 = time.process_time()
        with Session(cfg) as session:
            ex = explore(
                cfg, scenario, bound, reduce=mode, budget=budget, stop_at_violation=stop_at_violation,
                run=lambda _cfg, prefix: session.outcome(prefix), progress=progress, tso_commits=tso_commits,
            )  # fmt: skip
            ex.cpu_s = session.cpu_seconds() + time.process_time() - lead0
        return ex
    t0 = time.monotonic()
    ex = Exploration(scenario=scenario, bound=bound, reduction=mode, tso_commits=tso_commits)
    # work by preemptions: (prefix, sleep set at the prefix's last decision)
    # (work by early commits, then preemptions: queue c * (bound + 1) + p; without commits, by preemptions alone: a
    # --tso-commits exploration first runs the schedules of the one without, in the same order, then those with one...)
    queues: list[list[tuple[tuple[int, ...], frozenset[int]]]] = [[] for _ in range((tso_commits + 1) * (bound + 1))]
    queues[0].append(((), frozenset()))
    tree: dict[tuple[int, ...], set[int]] = {}  # dpor: each node's CPUs run or queued there (its prefix: the answers to it)
    try:
        while True:
            # the lowest bound with work first (dpor may add work below the one at hand: a race found late)
            q = next((k for k in range(len(queues)) if queues[k]), -1)
            if q < 0:
                break
            queue, p = queues[q], q % (bound + 1)
            if budget and ex.schedules >= budget:
                ex.stopped = f"the budget of {budget:,} schedules ran out"
                return ex
            prefix, asleep = queue.pop()
            kinds, record, report = run(cfg, prefix)
            ex.schedules += 1
            ex.by_bound[p] = ex.by_bound.get(p, 0) + 1
            diverged, steps = decisions_of(record, cfg.cpus, every_step=mode == "dpor")
            ds = [d for d in steps if d.branches]
            ex.diverged += diverged
            seen = outcome(kinds, report)
            ex.outcomes.add(seen)
            ex.runs[tuple(d.chosen for d in ds)] = seen
            ex.elapsed_s = time.monotonic() - t0
            if progress:
                progress(ex)
            if seen and seen != ("harness_failure",):
                assert report is not None
                if ex.report is None:
                    first = report.violations[0]["kind"] if report.violations else seen[0]
                    ex.verdict, ex.kind, ex.found_at, ex.prefix, ex.report = "violation", first, p, prefix, report
                    ex.found_commits = commits(prefix)
                if stop_at_violation:
                    return ex
            elif seen == ("harness_failure",):
                raise HarnessFailed(str(report.harness.get("error")) if report is not None else "")
            if mode == "dpor":
                _dpor(steps, prefix, bound, queues, tree, ex)
            else:
                _branch(ds, prefix, asleep, bound, queues, ex, mode == "sleep", tso_commits)
        # dpor under a bound: complete only if it dropped no reversal (then for every schedule, any preemptions)
        ex.complete = not (mode == "dpor" and ex.dropped)
        if not ex.complete:
            ex.stopped = f"dpor dropped {ex.dropped:,} race reversals beyond the bound"
        return ex
    finally:
        ex.elapsed_s = time.monotonic() - t0


class HarnessFailed(RuntimeError):
    """A schedule's run failed in the harness itself (not a finding about the scheme)."""


def _branch(
    ds: list[Decision], prefix: tuple[int, ...], asleep: frozenset[int], bound: int,
    queues: list[list[tuple[tuple[int, ...], frozenset[int]]]], ex: Exploration, reduce: bool, tso_commits: int = 0,
) -> None:  # fmt: skip
    """The alternatives at each decision past the prefix, each a new prefix in the queue of its
    preemptions, with the CPUs that sleep there (explored already at that decision, or before it);
    while the prefix took fewer than ``tso_commits`` early commits, the commit of each buffer that
    holds a store there too (no preemption: the turn stays where it is)."""
    chosen = tuple(d.chosen for d in ds)
    n = len(prefix)
    pre = preemptions(ds, n)
    more = commits(prefix) < tso_commits
    base = commits(prefix) * (bound + 1)  # the queue of this many commits and no preemption
    sleep: set[int] = set()
    if n and reduce and n <= len(ds):
        sleep = _wake(asleep, ds, n - 1)
    for i in range(n, len(ds)):
        d = ds[i]
        done = {d.chosen} | sleep
        for c in d.runnable:
            if c == d.chosen:
                continue
            cost = pre + is_preemption(d.runnable, d.current, c, d.yielding)
            if cost > bound:
                continue
            if reduce and c in sleep:
                ex.pruned += 1
                continue
            queues[base + cost].append(((*chosen[:i], c), frozenset(done) if reduce else frozenset()))
            if reduce:
                done.add(c)
        if more:  # never with a reduction: an early commit's independence is not worked out (explore() turns it off)
            for k in range(MASK_BITS):
                if d.buffered >> k & 1:
                    queues[base + bound + 1 + pre].append(((*chosen[:i], COMMIT | k), frozenset()))
        if reduce and d.chosen in sleep:
            ex.pruned += 1
            return  # the default path runs a sleeping CPU: what lies below was explored in a sibling subtree
        pre += is_preemption(d.runnable, d.current, d.chosen, d.yielding)
        if reduce:
            sleep = _wake(frozenset(sleep), ds, i)


def _wake(asleep: frozenset[int], ds: list[Decision], i: int) -> set[int]:
    """The sleepers that still sleep after decision ``i``'s step: those whose pending access commutes
    with the step, and did not change under it (an IPI raised at them, a wake-up)."""
    d = ds[i]
    ran = d.access[d.chosen] if d.access else ACCESS_UNKNOWN
    after = ds[i + 1].access if i + 1 < len(ds) else None
    return {
        t for t in asleep
        if t != d.chosen and d.access and independent(d.access[t], ran) and (after is None or after[t] == d.access[t])
    }  # fmt: skip


def _dpor(
    steps: list[Decision], prefix: tuple[int, ...], bound: int,
    queues: list[list[tuple[tuple[int, ...], frozenset[int]]]], tree: dict[tuple[int, ...], set[int]], ex: Exploration,
) -> None:  # fmt: skip
    """Dynamic partial-order reduction (source-DPOR's race reversal, Abdulla et al., POPL 2014, with
    Flanagan and Godefroid's fallback to every CPU that may run): over every step of the run, two
    steps race when they are of two CPUs, conflict (``independent`` says not) and no third step
    orders them (happens-before: each CPU's program order and the conflicts, by vector clocks). For
    each race, the branching decision before the first step must also try a CPU that starts the
    reversed order (an initial of the steps after it that do not depend on it, then the second
    step); one already tried there is enough. A try that would exceed ``bound`` preemptions is
    dropped and counted (``Exploration.dropped``): then the exploration covers less than every
    schedule, and says so."""
    n = max((len(d.access) for d in steps), default=0)
    if n == 0:
        return
    procs = [d.chosen for d in steps]
    acc = [d.access[d.chosen] for d in steps]
    # the branching decisions: each one's place among them, and its node (the answers before it)
    bpos: list[int] = []
    key: list[tuple[int, ...]] = []
    pre: list[int] = []  # preemptions before each step
    answers: list[int] = []
    pcount = 0
    for d in steps:
        bpos.append(len(answers) if d.branches else -1)
        key.append(tuple(answers))
        pre.append(pcount)
        if d.branches:
            answers.append(d.chosen)
        pcount += is_preemption(d.runnable, d.current, d.chosen, d.yielding)
    for i, d in enumerate(steps):  # this run's own path: its answer at each node past the prefix is tried
        if bpos[i] >= len(prefix):
            tree.setdefault(key[i], set()).add(d.chosen)
    # vector clocks: vc[k][c] = how many of CPU c's steps happen before step k (itself included)
    vc: list[list[int]] = []
    last = [-1] * n
    count = [0] * n
    for j in range(len(steps)):
        pj, aj = procs[j], acc[j]
        c = list(vc[last[pj]]) if last[pj] >= 0 else [0] * n
        races: list[int] = []
        for i in range(j - 1, -1, -1):  # latest first: a race is a conflicting step not yet ordered before j
            pi = procs[i]
            if pi == pj or vc[i][pi] <= c[pi] or independent(acc[i], aj):
                continue
            races.append(i)
            vi = vc[i]
            for q in range(n):
                if vi[q] > c[q]:
                    c[q] = vi[q]
        count[pj] += 1
        c[pj] = count[pj]
        vc.append(c)
        last[pj] = j
        for i in races:
            if bpos[i] < 0:
                continue  # one CPU could run there: nothing to reverse at that point (an earlier race reverses it)
            _reverse(steps, procs, vc, i, j, key[i], pre[i], bound, queues, tree, ex)


def _reverse(
    steps: list[Decision], procs: list[int], vc: list[list[int]], i: int, j: int, node: tuple[int, ...], pre: int, bound: int,
    queues: list[list[tuple[tuple[int, ...], frozenset[int]]]], tree: dict[tuple[int, ...], set[int]], ex: Exploration,
) -> None:  # fmt: skip
    """Race (i, j): at i's node, make sure some CPU that can start the reversed order is tried."""
    pi = procs[i]
    # v: the steps after i that do not depend on i, then j; its initials: CPUs whose first step in v nothing in v orders before
    v = [k for k in range(i + 1, j) if vc[k][pi] < vc[i][pi]] + [j]
    initials: list[int] = []
    for x, k in enumerate(v):
        pk = procs[k]
        if pk in initials or any(procs[y] == pk for y in v[:x]):
            continue
        if not any(vc[y][procs[y]] <= vc[k][procs[y]] for y in v[:x]):
            initials.append(pk)
    d = steps[i]
    tried = tree.setdefault(node, set())
    if tried & set(initials):
        return
    can = [q for q in ([procs[j]] if procs[j] in initials else []) + initials if q in d.runnable]
    # an initial that may not run at i (its enabling is not an access the API sees: a wake-up by the clock):
    # every CPU that may run there, as Flanagan and Godefroid do
    for q in can[:1] or [q for q in d.runnable if q not in tried]:
        if q in tried:
            continue
        cost = pre + is_preemption(d.runnable, d.current, q, d.yielding)
        tried.add(q)
        if cost > bound:
            ex.dropped += 1
            continue
        queues[cost].append(((*node, q), frozenset()))
