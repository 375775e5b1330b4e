"""``python -m stress explore --scenario NAME --strategy S --arch A --preemptions K``: every schedule
of a small scripted scenario with at most K preemptions (``emu.harness.explore``).

Exit status: 0 no violation (complete, or the budget ran out: said), 1 a violation (its schedule
replays with ``run --replay`` on the JSON, and shrinks with ``shrink``), 2 usage, 3 the harness failed.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from emu.harness.config import ConfigError
from stress.output import write_json

MAX_PREEMPTIONS = 20  # far beyond what a small scenario can run through: each bound multiplies the schedules
MAX_BUDGET = 100_000_000
PLAIN_EVERY_S = 2.0  # progress lines in a pipe: at most one this often
MAX_TSO_COMMITS = 8  # each one multiplies the schedules by the decisions where a buffer holds a store


def add_parser(sub: Any) -> None:
    from emu.harness.explore import SCENARIOS
    from stress.options import ARCH, FIX, INT, MEMORY_MODEL, MUTANT, Names

    class ScenarioName(Names):
        """A shipped scenario's name, or a JSON file of one (read, and checked, by ``load_scenario``)."""

        def __call__(self, text: str) -> str:
            return text if text.endswith(".json") else super().__call__(text)

    e = sub.add_parser("explore", help="run a small scenario under every schedule with at most K preemptions")
    e.add_argument(
        "--scenario",
        type=ScenarioName("scenario", lambda: list(SCENARIOS)),
        default=None,
        help="a scenario's name (see 'list') or a JSON file of one (docs/deterministic-mode.md)",
    )
    e.add_argument(
        "--strategy",
        type=Names("strategy or mutant", _schemes),
        default="refcount",
        help="lazy-TLB scheme, or a scheme's mutant (default: refcount; see 'list')",
    )
    e.add_argument("--arch", type=ARCH, default=None, help="architecture model (default: x86, or the one an arch mutant patches)")
    e.add_argument("--mutant", type=MUTANT, default=None, help="a deliberately broken scheme or architecture, as run takes it (see 'list')")
    e.add_argument("--fix", type=FIX, default="", metavar="NAME[,NAME...]", help="apply later patches' fixes to the scheme (see 'list')")
    e.add_argument(
        "--memory-model", type=MEMORY_MODEL, default="sc", help="sc (default), tso, weak, arch (the reduction applies under sc only)"
    )
    e.add_argument("--preemptions", type=INT, default=None, help="the bound: schedules with at most this many preemptions")
    e.add_argument(
        "--tso-commits",
        type=INT,
        default=0,
        metavar="K",
        help="under tso: a schedule may also commit a buffer's oldest store early, at most K times (default: 0, only where TSO forces it)",
    )
    e.add_argument("--budget", type=INT, default=0, help="at most this many schedules (default: 0, no limit)")
    e.add_argument(
        "--reduce",
        choices=("sleep", "dpor", "none"),
        default="sleep",
        help="skip equivalent schedules: sleep sets (default), dynamic partial-order reduction, or none (docs/deterministic-mode.md)",
    )
    e.add_argument("--no-reduce", action="store_true", help="the same as --reduce none: run every schedule, equivalent ones too")
    e.add_argument(
        "--json", metavar="PATH", default=None, help="write the result as JSON; with a violation, its run's report too (replayable)"
    )
    e.add_argument("--quiet", action="store_true", help="no header line and no progress line")


def interrupted(ex: Any) -> str:
    """What a Ctrl-C leaves known: the schedules run so far, and whether any of them violated."""
    if ex is None:
        return "NOT COMPLETE: interrupted before the first schedule finished"
    done = f"{ex.schedules:,} schedules in {ex.elapsed_s:.1f}s"
    if any(o and o != ("harness_failure",) for o in ex.outcomes):
        return f"NOT COMPLETE: interrupted after {done}, as one of them violated (rerun to see it)"
    got = ", ".join(f"{v:,} with {k}" for k, v in sorted(ex.by_bound.items()))
    return f"NOT COMPLETE: interrupted after {done} ({got} preemptions); no violation in those"


def _schemes() -> list[str]:
    from emu.strategies import MUTANTS, STRATEGIES

    return sorted({*STRATEGIES, *MUTANTS})


def cmd_explore(ns: argparse.Namespace) -> int:
    from emu.arch import ARCH_MUTANTS, ARCHES
    from emu.harness.config import validate, validate_fix
    from emu.harness.explore import HarnessFailed, explore, load_scenario
    from emu.harness.parts import memory_model_for
    from emu.harness.report import headline
    from emu.strategies import MUTANTS, STRATEGIES, resolve
    from stress.options import check_writable

    check_writable(ns.json)
    if ns.preemptions is not None and not 0 <= ns.preemptions <= MAX_PREEMPTIONS:
        raise ConfigError(f"--preemptions must be between 0 and {MAX_PREEMPTIONS}, got {ns.preemptions}")
    if not 0 <= ns.budget <= MAX_BUDGET:
        raise ConfigError(f"--budget must be between 0 (no limit) and {MAX_BUDGET:,}, got {ns.budget}")
    if not 0 <= ns.tso_commits <= MAX_TSO_COMMITS:
        raise ConfigError(f"--tso-commits must be between 0 and {MAX_TSO_COMMITS}, got {ns.tso_commits}")
    missing = [m for m, v in (("--scenario NAME (see 'list')", ns.scenario), ("--preemptions K (e.g. 2)", ns.preemptions)) if v is None]
    if missing:
        raise ConfigError(f"explore: give {' and '.join(missing)}")
    scenario = load_scenario(ns.scenario)
    if ns.mutant is not None and ns.strategy in MUTANTS:
        raise ConfigError(f"explore: --strategy {ns.strategy} is a mutant already; give --mutant or a mutant --strategy, not both")
    arch = ns.arch or ((ARCH_MUTANTS[ns.mutant].mutant_of if ns.mutant in ARCH_MUTANTS else None) or "x86")
    strategy = ns.strategy
    if ns.mutant in MUTANTS:  # --mutant M is --strategy M: the base scheme is the mutant's
        base = MUTANTS[ns.mutant].mutant_of
        if ns.strategy not in ("refcount", base):  # (refcount: the default, or given)
            raise ConfigError(f"mutant '{ns.mutant}' belongs to strategy '{base}', not '{ns.strategy}'")
        strategy = ns.mutant
    cfg = scenario.cell_config(strategy, arch, ns.fix, ns.memory_model, ns.mutant if ns.mutant in ARCH_MUTANTS else None)
    validate(cfg, sorted(STRATEGIES), {m: c.mutant_of or "" for m, c in MUTANTS.items()}, sorted(ARCHES))
    validate_fix(cfg, resolve(cfg.scheme).FIXES)
    if ns.tso_commits and memory_model_for(cfg) != "tso":
        model = memory_model_for(cfg)
        raise ConfigError(f"--tso-commits: early commits are TSO's; the memory model here is {model}, give --memory-model tso")
    on = f"{cfg.arch_mutant} ({cfg.arch})" if cfg.arch_mutant else cfg.arch
    who = f"{strategy}{' --fix ' + ns.fix if ns.fix else ''} on {on} ({ns.memory_model})"
    bound = f"at most {ns.preemptions} preemption{'s' if ns.preemptions != 1 else ''}"
    if ns.tso_commits:
        bound += f" and {ns.tso_commits} early TSO commit{'s' if ns.tso_commits != 1 else ''}"
    if not ns.quiet:
        print(f"explore: {scenario.name} ({scenario.cpus} CPUs), {who}, {bound}", file=sys.stderr)

    tty = sys.stderr.isatty()
    last: list[Any] = []  # the exploration as the progress last saw it: what a Ctrl-C reports
    next_line = [0.0]

    def progress(ex: Any) -> None:
        last[:] = [ex]
        if ns.quiet:
            return
        if tty:  # one live line
            if ex.schedules % 25 == 0:
                print(f"\rexplore: {ex.schedules:,} schedules, {ex.rate:.1f}/s", end="", file=sys.stderr, flush=True)
        elif ex.elapsed_s >= next_line[0]:  # a pipe or a CI log: a plain line now and then, no carriage returns
            next_line[0] = ex.elapsed_s + PLAIN_EVERY_S
            print(f"  {ex.elapsed_s:.1f}s elapsed: {ex.schedules:,} schedules, {ex.rate:.1f}/s", file=sys.stderr, flush=True)

    def terminated(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM as Ctrl-C: the session's CPUs and segment are cleaned up, what ran is said

    old_term = signal.signal(signal.SIGTERM, terminated)
    try:
        reduce = "none" if ns.no_reduce else ns.reduce
        ex = explore(cfg, scenario.name, ns.preemptions, reduce=reduce, budget=ns.budget, progress=progress, tso_commits=ns.tso_commits)
    except HarnessFailed as e:
        print(f"\nexplore: a schedule's run failed in the harness: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        if tty and not ns.quiet:
            print("", file=sys.stderr)
        print(interrupted(last[0] if last else None))
        raise  # stress: interrupted, status 130
    finally:
        signal.signal(signal.SIGTERM, old_term)
    if tty and not ns.quiet:
        print("", file=sys.stderr)
    skipped = f"{ex.pruned:,} equivalent skipped" if ex.reduction == "sleep" else f"dpor, {ex.dropped:,} reversals dropped by the bound"
    if ex.reduction == "none":
        skipped = "no reduction"
        if ex.tso_commits:
            skipped = "no reduction: an early commit's independence from other steps is not worked out"
    rate = f"{ex.schedules:,} schedules in {ex.elapsed_s:.1f}s ({ex.rate:.1f}/s, {ex.cpu_rate:.0f} per CPU second; {skipped})"
    doc: dict[str, Any] = {"config": cfg.to_dict(), **ex.to_json()}
    if ex.report is not None:
        from emu.harness.columns import columns_text
        from emu.harness.events import from_json as events_from_json
        from stress.shrink import story

        run = ex.report.to_json()
        doc = {**run, **ex.to_json()}  # the violating run's report, with the exploration's result: replayable, shrinkable
        print(headline(ex.report))
        commits = f" and {ex.found_commits} early TSO commit{'s' if ex.found_commits != 1 else ''}" if ex.tso_commits else ""
        print(f"found after {rate}, in a schedule with {ex.found_at} preemption{'s' if ex.found_at != 1 else ''}{commits}")
        events = story(run) if ex.report.violations else []
        if not events and events_from_json(run.get("events"), "explore"):
            events = events_from_json(run.get("events"), "explore")[0][-40:]
        if events:
            print()
            print("\n".join(columns_text(events, "step")))
            print()
        if ns.json:
            print(f"replay: python -m stress run --replay {ns.json}")
            print(f"shrink: python -m stress shrink {ns.json}")
    elif ex.complete and ex.reduction == "dpor":
        # nothing dropped: every schedule of the run phase is equivalent to one run, whatever its preemptions
        print(f"no violation in any schedule, with any number of preemptions: {rate}")
    elif ex.reduction == "dpor" and ex.dropped and not ex.stopped.startswith("the budget"):
        # DPOR under a bound is not complete for that bound: a race reversal beyond it may have been the only
        # way to a schedule within it (docs/deterministic-mode.md); the claim stays with the other modes
        print(f"NOT A PROOF: dpor with the bound dropped {ex.dropped:,} race reversals; {rate}; no violation in those")
    elif ex.complete:
        print(f"no violation in any schedule with {bound}: {rate}")
    else:
        got = ", ".join(f"{v:,} with {k}" for k, v in sorted(ex.by_bound.items()))
        print(f"NOT COMPLETE: {ex.stopped}; {rate} ({got} preemptions); no violation in those")
    if ns.json:
        write_json(ns.json, doc)
    return 1 if ex.report is not None else 0
