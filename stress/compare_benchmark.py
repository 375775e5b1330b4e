"""``python -m stress compare --benchmark NAME --machine NAME``: a benchmark's throughput per scheme,
predicted for a real machine (``emu.harness.bench_projection``) from the emulator's counts.

Each scheme runs the benchmark-shaped load (``emu.workload.benchmarks``) in the emulator with the
tasks per CPU of each ``--tasks`` (deterministic runs: ``--seed`` picks their schedule, 1 by
default); the counts per operation are priced with the machine's
constants (``emu/harness/machines/NAME.json``, each with its source). The table gives, per scheme
and task count, the predicted operations per second, the ratio to the first scheme, what bounds
it, and the counts behind it; the published figures of the machine are printed beside.

Exit status: 0 done (a scheme the oracle caught in its run is still priced, and said), 2 bad input,
3 a run's harness failed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from emu.harness.config import ConfigError
from stress.output import check_output_paths, to_stdout, write_json

BENCH_ONLY = {"machine": "--machine", "tasks": "--tasks", "bench_arch": "--arch"}  # compare's options that only --benchmark takes
SYNTHETIC_ONLY = ("arches", "cpus", "project", "cost")  # and those it does not


def add_arguments(c: argparse.ArgumentParser) -> None:
    from emu.harness.bench_projection import machine_names
    from emu.harness.benchmark import BENCHMARKS
    from stress.options import ARCH, IntList, Names

    c.add_argument(
        "--benchmark", type=Names("benchmark", lambda: sorted(BENCHMARKS)), default=None,
        help="predict a published benchmark's throughput per scheme on --machine (instead of the synthetic load's table)",
    )  # fmt: skip
    c.add_argument("--machine", type=Names("machine", machine_names), default=None, help="the machine (emu/harness/machines/NAME.json)")
    c.add_argument(
        "--tasks", type=IntList(), default=None,
        help="comma list of the benchmark's task counts (will-it-scale -t, hackbench groups; default: the published run's)",
    )  # fmt: skip
    c.add_argument(
        "--arch", dest="bench_arch", type=ARCH, default=None, help="the arch model whose costs are counted (default: the machine's)"
    )


def check(ns: argparse.Namespace) -> None:
    """One line for a mix of the two modes' options or a missing --machine."""
    if not ns.benchmark:
        given = [flag for dest, flag in BENCH_ONLY.items() if getattr(ns, dest, None) is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} needs --benchmark NAME")
        return
    if ns.machine is None:
        raise ConfigError("--benchmark needs --machine NAME")
    given = [f"--{o}" for o in SYNTHETIC_ONLY if getattr(ns, o, None)]
    if given:
        raise ConfigError(f"{', '.join(given)} belongs to the synthetic load's comparison, not to --benchmark")
    check_output_paths(ns.json, ns.plot)


def render(cmp: Any) -> str:
    m = cmp.machine
    lines = [
        f"{cmp.benchmark} on {m.name} ({m.description}; {m.cpus} CPUs), {cmp.arch} model: MODEL, not a measurement",
        "",
        f"{'scheme':<14} {'tasks':>6} {'pred ops/s':>12} {'ratio':>7} {'bound by':>10} {'inval':>6}   per op, emulated: "
        f"{'lazy':>5} {'mm_count':>8} {'mask':>6} {'IPIs':>6} {'bcast':>6} {'wakeups':>7}  emulated run",
    ]
    for p in cmp.rows:
        c = cmp.counts[(p.strategy, cmp.emulated[p.units])]
        verdict = "clean" if all(v == "clean" for v in c.verdicts) else "/".join(sorted(set(c.verdicts)))
        lines.append(
            f"{p.strategy:<14} {p.units:>6} {p.ops_per_s:>12,.0f} {cmp.ratio(p):>7.3f} {bound_by(p):>10} {p.flush_share:>6.1%}   {'':>18}"
            f"{c.per_op['lazy_switches']:>5.2f} {c.count_line_atomics:>8.3f} {c.mask_line_atomics:>6.3f} {c.ipis:>6.2f} "
            f"{c.broadcasts:>6.2f} "
            f"{c.per_op['remote_wakeups']:>7.2f}  {c.units} on {c.cpus} CPUs, {verdict}"
        )
    pub = cmp.published()
    if pub:
        lines += ["", f"published ({m.published_as}) beside the prediction:"]
        if m.fitted:
            lines.append(f"  FITTED here: {', '.join(m.fitted)} (see the machine file), so these figures are not checks of this model")
        for q, pred in pub:
            lines.append(f"  {q.text()}: predicted {pred}")
    lines.append("")
    lines.append(
        "counts: per benchmark operation in the emulator's steady state (--sched random); 'mm_count' are atomics on the mm's record "
        "line, 'mask' on its mm_cpumask line, 'bcast' flushes by hardware broadcast (no IPI); 'bound by': the busiest shared line "
        "where a line's queue bounds the rate (the mm's, or a kernel line the benchmark's path writes: lru_lock, mmap_lock, ...), "
        "else 'cpu' or 'latency'; 'inval': the IPIs' and broadcasts' share of a task's time per operation in the model, its waits "
        "at the lines included; a violation in the emulated run is the scheme as posted (see docs/comparison.md)."
    )
    return "\n".join(lines)


def bound_by(p: Any) -> str:
    """What bounds the predicted rate: the busiest line's name where a line's queue does, else 'cpu' or 'latency'."""
    return p.busiest if p.bound == "line" and p.busiest else p.bound


def figure(cmp: Any) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strategies = list(dict.fromkeys(p.strategy for p in cmp.rows))
    fig, (ax, rx) = plt.subplots(1, 2, figsize=(14, 5.5), constrained_layout=True)
    colours = plt.get_cmap("tab10")
    for i, s in enumerate(strategies):
        pts = sorted((p for p in cmp.rows if p.strategy == s), key=lambda p: p.units)
        ax.plot([p.units for p in pts], [p.ops_per_s for p in pts], marker="o", color=colours(i), label=f"{s} (model)")
        rx.plot([p.units for p in pts], [cmp.ratio(p) for p in pts], marker="o", color=colours(i), label=f"{s} / {strategies[0]} (model)")
        for q in cmp.published_points():
            if q.strategy != s:
                continue
            if q.ops_per_s is not None:
                ax.scatter([q.tasks], [q.ops_per_s], marker="*", s=220, color=colours(i), edgecolors="black", zorder=5)
            elif q.ratio is not None:
                rx.scatter([q.tasks], [q.ratio], marker="*", s=220, color=colours(i), edgecolors="black", zorder=5)
    ax.scatter([], [], marker="*", s=220, color="white", edgecolors="black", label="published")
    rx.scatter([], [], marker="*", s=220, color="white", edgecolors="black", label="published")
    for a, title in ((ax, "predicted operations per second"), (rx, f"ratio to {strategies[0]}")):
        a.set_xscale("log", base=2)
        a.set_xlabel("tasks (-t)")
        a.set_title(title)
        a.grid(True, alpha=0.3)
        a.legend()
    ax.set_yscale("log")
    rx.set_yscale("log")
    m = cmp.machine
    fig.suptitle(f"{cmp.benchmark} on {m.name} ({m.cpus} CPUs, {cmp.arch} model): emu.harness.bench_projection, a MODEL")
    return fig


def cmd_compare_benchmark(ns: argparse.Namespace) -> int:
    from emu.harness.bench_projection import compare_benchmark
    from emu.harness.benchmark import MeasureError

    check(ns)
    say = None if ns.quiet else (lambda text: print(f"compare: {text}", file=sys.stderr))
    try:
        cmp = compare_benchmark(ns.benchmark, ns.machine, ns.tasks, ns.strategies, ns.bench_arch, progress=say, seed=ns.seed)
    except MeasureError as e:
        print(f"stress: harness failed: {e}", file=sys.stderr)
        return 3
    print(render(cmp), file=sys.stderr if to_stdout(ns.json) else sys.stdout)  # --json -: the JSON alone on stdout
    if ns.json:
        write_json(ns.json, cmp.to_json())
    if ns.plot:
        import matplotlib.pyplot as plt

        fig = figure(cmp)
        fig.savefig(ns.plot, dpi=80)
        plt.close(fig)
    return 0
