"""``python -m stress compare``: every scheme side by side, on chosen architectures and CPU counts.

Each combination is one in-process run (``emu.harness.runner.run``), one after the other: a run already
uses every core, so running two at once would only measure the box. Every run gets the same
workload and the same seed. The table separates what the emulator MEASURED (counts per context
switch and per mm exit, which do not depend on the emulator's speed; lock wait and throughput,
which do) from what ``--project`` MODELS (``emu.harness.projection``: the counts priced on a real machine).

Exit status: 0 every run finished (a violation is a verdict in the table, not a failure of the
comparison), 3 a run's harness failed, 130 interrupted (the rows done so far are still printed).
"""

from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import replace
from typing import Any

from rich import box

from emu.harness import perturbations
from emu.harness.config import ConfigError, RunConfig
from emu.harness.matrix import find
from emu.harness.projection import DEFAULT_COSTS, Costs, costs_with, project, slope_of
from stress.options import IntList, Names
from stress.output import check_output_paths, to_stdout, write_json

DEFAULT_ARCHES = "x86,powerpc,arm64"
DEFAULT_CPUS = "2,8,32"
MAX_RUNS = 500
MAX_PROJECT_CPUS = 100_000


class NameList(Names):
    """``refcount,hazptr`` -> a list of known names, each checked (a typo gets the closest). A scheme or
    an arch may be a spec (FILE.py:Class, module:Class), as in ``run``: ``stress.cli.preload`` has loaded
    it, and the list holds it under its name in the tables (a file's path made absolute)."""

    def __call__(self, text: str) -> list[str]:  # type: ignore[override]
        from emu.harness.plugins import normalized

        def one(part: str) -> str:
            if ":" in part and self.what in ("strategy", "architecture") and normalized(part) in self.valid():
                return normalized(part)
            return super(NameList, self).__call__(part)

        return list(dict.fromkeys(one(p.strip()) for p in text.split(",")))


class CostOverride(Names):
    """``ipi_rtt_ns=3000`` -> (name, ns): one of ``emu.harness.projection.Costs``, a finite number >= 0."""

    def __init__(self) -> None:
        super().__init__("cost", lambda: [f"{n}={getattr(DEFAULT_COSTS, n):g}" for n in sorted(Costs.names())])

    def __call__(self, text: str) -> tuple[str, float]:  # type: ignore[override]
        from emu.harness.projection import CostError, parse_cost

        name = text.partition("=")[0].strip()
        if name not in Costs.names():
            raise argparse.ArgumentTypeError(f"unknown cost '{text}' {_suggest_cost(text)}")
        try:
            return parse_cost(text)
        except CostError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix("--cost").lstrip(" :")) from None


def _suggest_cost(text: str) -> str:
    import difflib

    name, _, value = text.partition("=")
    close = difflib.get_close_matches(name.strip(), Costs.names(), n=1)
    hint = f"; did you mean '{close[0]}={value or f'{getattr(DEFAULT_COSTS, close[0]):g}'}'?" if close else ""
    return f"(valid: {', '.join(Costs.names())}, each NAME=NANOSECONDS){hint}"


def add_parser(sub: Any) -> None:
    from emu.arch import ARCHES
    from emu.strategies import STRATEGIES
    from stress.options import FIX, FLOAT, INT, MEMORY_MODEL, MUTANT, _add_workload

    c = sub.add_parser("compare", help="every scheme side by side: costs per switch and per exit, across arches and CPU counts")
    c.add_argument(
        "--strategies", type=NameList("strategy", lambda: sorted(STRATEGIES)), default=None, help="comma list (default: every scheme)"
    )
    c.add_argument(
        "--arches", type=NameList("architecture", lambda: sorted(ARCHES)), default=None, help=f"comma list (default: {DEFAULT_ARCHES})"
    )
    c.add_argument("--cpus", type=IntList(), default=None, help=f"comma list of emulated CPU counts (default: {DEFAULT_CPUS})")
    c.add_argument("--duration", type=FLOAT, default=2.0, help="seconds of load per run (default: 2)")
    c.add_argument("--seed", type=INT, default=None, help="one seed for every run (default: random, printed)")
    c.add_argument(
        "--shoot-all",
        action="store_true",
        help="shoot-lazies IPIs every CPU on every arch (default: only where the arch keeps no mm_cpumask, as emu.harness.matrix)",
    )
    c.add_argument("--project", type=INT, default=None, metavar="CPUS", help="add the MODEL's projected cost on a real machine of CPUS")
    c.add_argument(
        "--cost",
        type=CostOverride(),
        action="append",
        default=None,
        metavar="NAME=NS",
        help=f"override a projection cost, e.g. ipi_rtt_ns=3000 (names: {', '.join(Costs.names())})",
    )
    c.add_argument(
        "--json", metavar="PATH", default=None, help="write {\"rows\": [...]}, one per scheme x arch x CPU count ('-': standard output)"
    )
    c.add_argument("--quiet", action="store_true", help="no header line and no line per run on stderr")
    c.add_argument("--plot", metavar="PATH", default=None, help="draw the scaling curves to PATH.png (needs matplotlib: the 'plot' extra)")
    c.add_argument("--verbose", action="store_true", help="every measured column (default: the main ones, to fit 80 columns)")
    c.add_argument(
        "--fix", type=FIX, metavar="NAME[,NAME...]", default="",
        help="later patches' fixes, each applied to the schemes that offer it (see 'list'): hazptr and luto-rfc as fixed, not as posted",
    )  # fmt: skip
    c.add_argument("--memory-model", type=MEMORY_MODEL, default="sc", help="sc (default), tso, weak or arch, every run")
    c.add_argument("--mutant", type=MUTANT, default=None, help="a broken scheme (its scheme in --strategies) or arch model")
    _add_workload(c)
    from stress.compare_benchmark import add_arguments  # --benchmark: a published benchmark on a real machine

    add_arguments(c)


# -- what runs --------------------------------------------------------------------------------


def needs_shoot_all(arch: str) -> bool:
    """shoot-lazies is correct on this arch only if it IPIs every CPU (no mask is kept)."""
    plain = find("shoot-lazies", arch, {})
    everyone = find("shoot-lazies", arch, {"shoot_all": True})
    return (plain is None or plain.expect_verdict != "clean") and everyone is not None and everyone.expect_verdict == "clean"


def plan(ns: argparse.Namespace) -> list[RunConfig]:
    from emu.arch import ARCHES
    from emu.harness.config import validate
    from emu.strategies import MUTANTS, STRATEGIES
    from stress.options import check_shm_room, config_from

    # a scheme's mutant runs on its scheme alone unless --strategies says otherwise (then each must be its scheme)
    strategies = ns.strategies or ([MUTANTS[ns.mutant].mutant_of or ""] if ns.mutant in MUTANTS else sorted(STRATEGIES))
    arches = ns.arches or DEFAULT_ARCHES.split(",")
    cpus = ns.cpus or [int(c) for c in DEFAULT_CPUS.split(",")]
    # the machine options compare does not offer keep run's defaults; config_from checks the rest
    mine = {k: v for k, v in vars(ns).items() if k not in ("mutant", "fix", "given")}
    base_ns = argparse.Namespace(
        **mine, strategy=strategies[0], mutant=None, arch=arches[0], noise=0.0,
        **{k.name.replace("-", "_"): False for k in perturbations.kinds()}, fail_fast=False, race_delay=0.0, debug_check=False,
        fix="", watchdog=RunConfig().watchdog, ipi_timeout=RunConfig().ipi_timeout,
    )  # fmt: skip
    base_ns.cpus, base_ns.shoot_all, base_ns.json = cpus[0], False, None
    base = config_from(base_ns)
    fixes = [f for f in ns.fix.split(",") if f]
    for f in fixes:  # a fix applies to the schemes that offer it: one that none of them offers is a typo
        if not any(f in STRATEGIES[s].FIXES for s in strategies):
            raise ConfigError(f"--fix {f}: none of {', '.join(strategies)} offers it (see 'list')")
    out = []
    for s in strategies:
        for a in arches:
            for n in cpus:
                shoot_all = s == "shoot-lazies" and (ns.shoot_all or needs_shoot_all(a))
                fix = ",".join(f for f in fixes if f in STRATEGIES[s].FIXES)
                cfg = replace(base, strategy=s, arch=a, cpus=n, shoot_all=shoot_all, fix=fix, mutant=ns.mutant)
                validate(cfg, sorted(STRATEGIES), {m: c.mutant_of or "" for m, c in MUTANTS.items()}, sorted(ARCHES))
                out.append(cfg)
    for n in sorted(set(cpus))[-1:]:
        check_shm_room(replace(base, cpus=n))
    if len(out) > MAX_RUNS:
        raise ConfigError(f"compare: {len(out)} runs is more than {MAX_RUNS}; choose fewer --strategies, --arches or --cpus")
    return out


def check_options(ns: argparse.Namespace) -> Costs:
    if ns.project is not None and not 1 <= ns.project <= MAX_PROJECT_CPUS:
        raise ConfigError(f"--project must be between 1 and {MAX_PROJECT_CPUS} CPUs, got {ns.project}")
    if ns.cost and ns.project is None:
        raise ConfigError("--cost prices the projection: add --project CPUS")
    check_output_paths(ns.json, ns.plot)
    return costs_with(dict(ns.cost or []))


# -- a row ------------------------------------------------------------------------------------


def label(cfg: RunConfig) -> str:
    return cfg.strategy + ("+shoot-all" if cfg.shoot_all else "")


def row_from(cfg: RunConfig, report: Any) -> dict[str, Any]:
    m = dict(report.metrics)
    exits = m.get("mm_exits") or 0
    for k in ("ipis_useful", "ipis_wasted"):
        m[f"{k}_per_exit"] = round(m.get(k, 0) / exits, 3) if exits else 0.0
    return {
        "strategy": cfg.strategy,
        "arch": cfg.arch,
        "cpus": cfg.cpus,
        "shoot_all": cfg.shoot_all,
        "fix": cfg.fix,
        "mutant": cfg.mutant,
        "memory_model": cfg.memory_model,
        "verdict": report.verdict,
        "starved": starved(m),
        "reason": report.harness.get("error"),  # a harness failure's, in words
        "seed": cfg.seed,
        "command": report.command,
        **m,
    }


def starved(m: dict[str, Any]) -> bool:
    """The machine starved: more of its forks were refused for want of a free mm slot (leaked mms
    hold them) than were made, so the load ran far below its process count and its costs are not
    those of the load asked for. From the run's own counters: ``forks_no_mm`` against ``forks``."""
    return bool(m.get("forks_no_mm", 0) > m.get("forks", 0))


def clean(r: dict[str, Any]) -> bool:
    """A row whose run was clean and kept its load: the only kind the projection prices or the plot draws as a cost."""
    return r["verdict"] == "clean" and not r.get("starved")


def state(r: dict[str, Any]) -> str:
    """The table's word for the run: clean, violation, starved (or both), or harness failure."""
    if r["verdict"] == "harness_failure":
        return "harness failure"
    words = ([] if r["verdict"] == "clean" else [r["verdict"]]) + (["starved"] if r.get("starved") else [])
    return "+".join(words) or "clean"


def add_projection(rows: list[dict[str, Any]], cpus: int, costs: Costs) -> None:
    """The model's columns, in place: per-exit counts grow to ``cpus`` along each scheme x arch's
    measured slope."""
    groups: dict[tuple[str, str, bool], list[dict[str, Any]]] = {}
    for r in filter(clean, rows):  # a broken, starved or failed run's counts are no scheme's costs
        groups.setdefault((r["strategy"], r["arch"], r["shoot_all"]), []).append(r)
    for group in groups.values():
        slopes = {k: slope_of([(r["cpus"], float(r.get(k) or 0.0)) for r in group]) for k in ("ipis_per_exit", "cpus_scanned_per_exit")}
        slopes["remote_slot_reads_per_exit"] = slope_of([(r["cpus"], float(r.get("remote_slot_reads_per_exit") or 0.0)) for r in group])
        for r in group:
            r.update(project(r, r["cpus"], cpus, costs, slopes).to_json())


# -- the table --------------------------------------------------------------------------------

# (key, header, group): group names the unit each count is divided by
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("mm_atomics_per_switch", "mm atom", "per context switch"),
    ("mask_atomics_per_switch", "mask", "per context switch"),
    ("lazy_refcount_atomics_per_switch", "lazy rc", "per context switch"),
    ("ipis_per_exit", "IPIs", "per mm exit"),
    ("ipis_useful_per_exit", "useful", "per mm exit"),
    ("ipis_wasted_per_exit", "wasted", "per mm exit"),
    ("cpus_scanned_per_exit", "scanned", "per mm exit"),
    ("remote_slot_reads_per_exit", "rem rd", "per mm exit"),
    ("exit_to_free_us_p50", "e2f p50us", "per mm exit"),
    ("exit_to_free_us_p99", "e2f p99us", "per mm exit"),
    ("switches_per_second", "sw/s", "emulator"),
    ("lock_wait_ns_per_switch", "wait ns", "emulator"),
)
# the columns shown without --verbose: with a block per scheme they fit 80 columns
MAIN_COLUMNS = frozenset({"mm_atomics_per_switch", "mask_atomics_per_switch", "lazy_refcount_atomics_per_switch", "ipis_per_exit",
                          "cpus_scanned_per_exit", "switches_per_second"})  # fmt: skip
PROJ_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("proj_switches_per_second", "Mswitch/s", "MODEL"),
    ("proj_exit_us", "exit us", "MODEL"),
    ("proj_line_bound", "bound", "MODEL"),
)


def _cell(key: str, v: Any) -> str:
    if v is None:
        return "-"
    if key == "proj_line_bound":
        return "line" if v else "cpu"
    if key == "proj_switches_per_second":
        return f"{v / 1e6:.1f}"
    if isinstance(v, bool):
        return str(v)
    if key == "switches_per_second" or key == "lock_wait_ns_per_switch":
        return f"{v:,.0f}"
    return f"{v:.3f}" if abs(v) < 100 else f"{v:,.0f}"


GROUP_LABELS = {"per context switch": "/switch", "per mm exit": "/mm exit", "emulator": "emu", "MODEL": "MODEL"}


def _table(rows: list[dict[str, Any]], cols: tuple[tuple[str, str, str], ...], project_cpus: int | None, last: str) -> Any:
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True, header_style="bold")
    table.add_column("\narch", no_wrap=True)
    table.add_column("\ncpus", justify="right", no_wrap=True)
    group = ""
    for _, header, g in cols:
        # a two-line header: the group (what the count is divided by) over the first column of each
        label = "" if g == group else (f"MODEL@{project_cpus}" if g == "MODEL" else GROUP_LABELS[g])
        group = g
        table.add_column(f"{label}\n{header}", justify="right", min_width=len(label), no_wrap=True)
    table.add_column(f"\n{last}", no_wrap=True)
    return table


def render(
    rows: list[dict[str, Any]], project_cpus: int | None, costs: Costs, interrupted: bool, planned: int, verbose: bool = False
) -> str:
    """A block per scheme (its name over its rows), so that nothing is cut at 80 columns; the
    MODEL's projection is a table of its own, of the clean rows only."""
    from stress.progress import table_text

    cols = tuple(c for c in COLUMNS if verbose or c[0] in MAIN_COLUMNS)
    lines: list[str] = []
    for scheme in dict.fromkeys(map(label_of, rows)):
        table = _table(rows, cols, None, "run")
        for r in rows:
            if label_of(r) == scheme:
                table.add_row(r["arch"], str(r["cpus"]), *(_cell(k, r.get(k)) for k, _, _ in cols), state(r))
        lines += [scheme + setting_of(rows, scheme), table_text(table), ""]
    lines.append(
        "measured by the emulator: counts per switch and per exit (architecture-neutral); "
        "'sw/s' (emulated switches per second) and 'wait ns' are the emulator's own speed and lock contention, not a real machine's."
    )
    if not verbose:
        lines.append("--verbose adds: " + ", ".join(h for k, h, _ in COLUMNS if k not in MAIN_COLUMNS))
    if any(r.get("starved") for r in rows):
        lines.append(
            "starved: more forks were refused for want of a free mm slot than were made (forks_no_mm > forks): not the load asked for"
        )
    for r in rows:
        if r["verdict"] == "harness_failure":
            lines.append(f"harness failure: {label_of(r)} on {r['arch']}, {r['cpus']} CPUs: {r.get('reason') or 'no reason given'}")
    if project_cpus:
        priced = [r for r in rows if clean(r)]
        if priced:
            table = _table(priced, PROJ_COLUMNS, project_cpus, "scheme")
            for r in priced:
                table.add_row(r["arch"], str(r["cpus"]), *(_cell(k, r.get(k)) for k, _, _ in PROJ_COLUMNS), label_of(r))
            lines += ["", table_text(table)]
        left = [r for r in rows if not clean(r)]
        if left:
            lines.append(
                f"not priced ({len(left)} rows: a violating, starved or failed run's counts are no scheme's costs): "
                + "; ".join(f"{label_of(r)} on {r['arch']} at {r['cpus']} ({state(r)})" for r in left)
            )
        priced_at = ", ".join(f"{n}={getattr(costs, n):g}" for n in Costs.names())
        lines.append(
            f"MODEL (emu.harness.projection, not measured): the counts priced on {project_cpus} real CPUs, all switching on one mm; "
            f"costs in ns: {priced_at}"
        )
    if interrupted:
        lines.append(f"compare: interrupted after {len(rows)} of {planned} runs")
    return "\n".join(lines)


def wrapped(text: str, width: int) -> str:
    """The notes under the tables, wrapped at words to ``width`` (a table's line is never wrapped)."""
    import textwrap

    return "\n".join(line if line.startswith((" ", "─")) or "  " in line else textwrap.fill(line, width, break_on_hyphens=False,
                     break_long_words=False) for line in text.splitlines())  # fmt: skip


def setting_of(rows: list[dict[str, Any]], scheme: str) -> str:
    """What the scheme ran with, where it is not as posted: its fixes, a mutant, the memory model."""
    r = next(r for r in rows if label_of(r) == scheme)
    parts = [f"--fix {r['fix']}" if r.get("fix") else "", f"--mutant {r['mutant']}" if r.get("mutant") else ""]
    parts.append(f"--memory-model {r['memory_model']}" if r.get("memory_model", "sc") != "sc" else "")
    shown = " ".join(p for p in parts if p)
    return f" ({shown})" if shown else ""


def label_of(r: dict[str, Any]) -> str:
    return r["strategy"] + ("+shoot-all" if r.get("shoot_all") else "")


# -- the plot ---------------------------------------------------------------------------------

PANELS: tuple[tuple[str, str], ...] = (
    ("mm_atomics_per_switch", "mm-line atomics / switch"),
    ("lazy_refcount_atomics_per_switch", "lazy refcount atomics / switch"),
    ("ipis_per_exit", "IPIs / mm exit"),
    ("cpus_scanned_per_exit", "CPUs scanned / mm exit"),
    ("exit_to_free_us_p99", "exit-to-free p99 (us)"),
    ("switches_per_second", "emulated switches / s"),
)


VIOLATION_MARKER = "X"  # a run the oracle caught, over its line's own marker


def figure(rows: list[dict[str, Any]], seed: int, duration: float) -> Any:
    """The scaling curves: a column of panels per architecture, a row per measure, a line per
    scheme (one colour each, the same in every panel, so the legend stays short). A violating or
    starved run's point is drawn again in red with ``VIOLATION_MARKER``; a harness failure has no
    counts and is left out, and said so under the title."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    drawn = [r for r in rows if r["verdict"] != "harness_failure"]
    left = [r for r in rows if r["verdict"] == "harness_failure"]
    schemes = list(dict.fromkeys(map(label_of, rows)))
    arches = list(dict.fromkeys(r["arch"] for r in rows))
    colours = plt.get_cmap("tab10")
    markers = ["o", "s", "^", "D", "v", "P"]
    cpus = sorted({r["cpus"] for r in rows})
    fig, axes = plt.subplots(len(PANELS), len(arches), figsize=(4.2 * len(arches) + 2.5, 2.3 * len(PANELS)),
                             constrained_layout=True, squeeze=False, sharex=True)  # fmt: skip
    for col, arch in enumerate(arches):
        for row, (key, title) in enumerate(PANELS):
            ax = axes[row][col]
            for i, scheme in enumerate(schemes):
                pts = sorted((r for r in drawn if r["arch"] == arch and label_of(r) == scheme), key=lambda r: r["cpus"])
                if not pts:
                    continue
                ys = [float(r.get(key) or 0.0) for r in pts]
                ax.plot([r["cpus"] for r in pts], ys, color=colours(i % 10), marker=markers[i % len(markers)], label=scheme)
                bad = [(r["cpus"], y) for r, y in zip(pts, ys, strict=True) if not clean(r)]
                if bad:
                    ax.scatter(*zip(*bad, strict=True), marker=VIOLATION_MARKER, s=90, color="red", zorder=5)
            if row == 0:
                ax.set_title(arch, fontweight="bold")
            if col == 0:
                ax.set_ylabel(title, fontsize=9)
            ax.set_xscale("log", base=2)
            ax.set_xticks(cpus, [str(c) for c in cpus])
            ax.grid(True, alpha=0.3)
        axes[-1][col].set_xlabel("emulated CPUs")
    handles = [Line2D([], [], color=colours(i % 10), marker=markers[i % len(markers)], label=s) for i, s in enumerate(schemes)]
    if any(not clean(r) for r in drawn):
        handles.append(Line2D([], [], marker=VIOLATION_MARKER, color="red", linestyle="", markersize=9, label="violation or starved"))
    fig.legend(handles=handles, loc="outside right center", title="scheme")
    title = f"lazytlb compare: measured by the emulator (seed {seed}, {duration:g}s per run)"
    if left:
        title += "\nleft out, harness failure: " + "; ".join(f"{label_of(r)} on {r['arch']} at {r['cpus']} CPUs" for r in left)
    fig.suptitle(title)
    return fig


def plot(rows: list[dict[str, Any]], path: str, seed: int, duration: float) -> None:
    import matplotlib.pyplot as plt

    fig = figure(rows, seed, duration)
    fig.savefig(path, dpi=90)
    plt.close(fig)


# -- the command ------------------------------------------------------------------------------


def cmd_compare(ns: argparse.Namespace) -> int:
    from emu.harness.runner import run
    from stress.compare_benchmark import check, cmd_compare_benchmark

    if ns.benchmark:
        return cmd_compare_benchmark(ns)
    check(ns)
    costs = check_options(ns)
    configs = plan(ns)
    seed = configs[0].seed
    if not ns.quiet:
        print(f"compare: {len(configs)} runs of {configs[0].duration:g}s, seed {seed}, one at a time", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    interrupted = harness_failed = False
    stop: list[int] = []
    # between runs Ctrl-C only raises a flag: a KeyboardInterrupt while a run sets up its segment
    # would leak it. During a run the runner's own handler takes over and drains the machine.
    old = signal.signal(signal.SIGINT, lambda signum, frame: stop.append(signum))
    try:
        for i, cfg in enumerate(configs, 1):
            if stop:
                interrupted = True
                break
            if not ns.quiet:
                print(f"compare: run {i}/{len(configs)}: {label(cfg)} on {cfg.arch}, {cfg.cpus} CPUs", file=sys.stderr)
            report = run(cfg)
            if report.harness.get("interrupted"):  # Ctrl-C: the run drained early; its row is partial
                interrupted = True
                break
            harness_failed |= report.status == 3
            rows.append(row_from(cfg, report))
            if report.status == 3:  # said now, and kept in the row: the table and the JSON carry it too
                print(f"compare: run {i}/{len(configs)}: harness failure: {report.harness.get('error')}", file=sys.stderr)
    except KeyboardInterrupt:  # a second Ctrl-C inside a run
        interrupted = True
    finally:
        signal.signal(signal.SIGINT, old)
    if ns.project and rows:
        add_projection(rows, ns.project, costs)
    text = sys.stderr if to_stdout(ns.json) else sys.stdout
    if rows:
        from stress.progress import console_for

        print(wrapped(render(rows, ns.project, costs, interrupted, len(configs), ns.verbose), console_for(text).width), file=text)
    elif interrupted:
        print("compare: interrupted before the first run finished", file=sys.stderr)
    if ns.json:
        doc: dict[str, Any] = {"rows": rows, "seed": seed, "duration": configs[0].duration, "interrupted": interrupted}
        if ns.project:
            doc["projection"] = {
                "cpus": ns.project,
                "costs_ns": {n: getattr(costs, n) for n in Costs.names()},
                "model": "emu.harness.projection",
            }
        write_json(ns.json, doc)
    if ns.plot and rows:
        plot(rows, ns.plot, seed, configs[0].duration)
    if interrupted:
        return 130
    return 3 if harness_failed else 0
