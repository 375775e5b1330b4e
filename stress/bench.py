"""``python -m stress bench``: how fast is the emulator itself, against what its primitives allow.

The load is saturating by default (``--procs-per-cpu 8``: every emulated CPU nearly always has
a task to run), because the bench measures the machinery, not how often a light workload leaves
CPUs idle; ``--procs-per-cpu 0`` measures the default workload of ``stress run`` instead.

For each ``--cpus``:

1. Calibration: the same machine and load, each CPU over a counting view of the segment, gives
   the locked atomics and plain shared accesses one emulated context switch costs at that size
   (migrations and IPIs included).
2. The emulator's context switches per second (aggregate and per CPU), and, in the same session,
   the ceiling: as many bare processes doing, per iteration, exactly that many locked
   read-modify-writes (half on one shared, contended line) and plain accesses, with the same
   striped locks and memoryview. The ratio emulator / ceiling says how much of the primitives'
   speed the scheduler, the scheme and the oracle leave. With ``--repeat N`` the pair is measured
   N times, back to back, and the medians are reported (a shared machine's noise hits a single
   run by tens of percent).

With ``--profile PATH``, each measurement is followed by one more run of the same machine with
every CPU process under cProfile (the measured rate comes from the unprofiled run); the
statistics land in ``PATH/cpus<N>/cpu<i>.prof`` and the functions with the most own time, summed
over the CPUs, are printed.

Then the IPI round trip (send, handler, acknowledgement, sender sees it): to an idle target
waiting on its doorbell, and to a busy one running Python code.

Last, the deterministic mode (``--sched pct``) on the same machine and load, at each
``--det-cpus``: scheduling points and context switches per second of wall time (the whole run,
start-up and drain included; ``--duration`` x 100,000 steps), next to a free-mode run of the same
machine in the same session.
"""

from __future__ import annotations

import argparse
import glob
import multiprocessing
import os
import pstats
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from emu.harness.config import RunConfig, Workload
from emu.harness.runner import run
from emu.harness.testbed import Testbed
from emu.kernel.cpu import Cpu
from emu.machine.atomics import LINE_SHIFT, make_locks
from emu.machine.irq import ipi_function
from emu.machine.layout import H_PHASE, PHASE_EXIT
from emu.machine.shm import Segment
from stress.output import write_json
from stress.progress import plain_table, table_text

BENCH_NOOP = ipi_function("bench_noop")
CALIBRATE_S = 1.0
SATURATING_PROCS_PER_CPU = 8
PROFILE_TOP = 15
CEILING_BATCH = 100  # emulated switches' worth of primitives per pass of the ceiling loop
IPI_ROUND_TRIPS = 2000


def add_parser(sub: Any) -> None:
    from stress.options import FLOAT, INT, IntList, NameList

    b = sub.add_parser("bench", help="the emulator's own speed against the ceiling of its primitives")
    b.add_argument("--cpus", type=IntList(), default=[2, 8, 32], help="CPU counts (default: 2,8,32)")
    b.add_argument("--duration", type=FLOAT, default=3.0, help="seconds per measurement (default: 3)")
    b.add_argument("--seed", type=INT, default=1, help="workload seed (default: 1)")
    b.add_argument(
        "--procs-per-cpu", type=INT, default=SATURATING_PROCS_PER_CPU,
        help=f"live processes per CPU (default: {SATURATING_PROCS_PER_CPU}, a saturating load; 0: the default workload of 'run')",
    )  # fmt: skip
    b.add_argument(
        "--memory-models", type=NameList("memory model", lambda: ["sc", "tso", "weak"]), default="sc",
        help="memory models to measure, each at every --cpus, in one run (default: sc; e.g. sc,tso,weak)",
    )  # fmt: skip
    b.add_argument("--repeat", type=INT, default=1, help="emulator and ceiling runs per --cpus; medians are reported (default: 1)")
    b.add_argument("--det-cpus", type=IntList(), default=[3, 8], help="CPU counts of the deterministic mode's rows (default: 3,8)")
    b.add_argument("--json", metavar="PATH", default=None, help="write the results as JSON")
    b.add_argument("--quiet", action="store_true", help="no header line and no progress lines on stderr")
    b.add_argument(
        "--profile", metavar="PATH", default=None,
        help="after each measurement, one more run with every CPU under cProfile: PATH/cpus<N>/cpu<i>.prof, and the top functions",
    )  # fmt: skip


class CountingWords:
    """A memoryview stand-in that counts every word read and written."""

    def __init__(self, words: memoryview) -> None:
        self.words = words
        self.reads = self.writes = 0

    def __getitem__(self, i: int) -> int:
        self.reads += 1
        return self.words[i]

    def __setitem__(self, i: int, v: int) -> None:
        self.writes += 1
        self.words[i] = v

    def __len__(self) -> int:
        return len(self.words)


def bench_config(cpus: int, seed: int, procs_per_cpu: int, duration: float = 3.0, memory_model: str = "sc") -> RunConfig:
    return RunConfig(cpus=cpus, duration=duration, seed=seed, workload=Workload(procs=procs_per_cpu * cpus), memory_model=memory_model)


def _count_primitives(cpu: Cpu, seconds: float) -> tuple[int, int, int]:
    """Run the scheduler loop for ``seconds`` on a counting view; (switches, locks, accesses)."""
    view = cpu.w
    assert isinstance(view, CountingWords)
    locks = [0]
    inner = cpu.atomics.lock

    def counted_lock(i: int) -> int:
        locks[0] += 1
        return inner(i)

    cpu.atomics.lock = counted_lock  # type: ignore[method-assign]
    # the first CPU whose timer fires ends the run phase for all (the shared word, not the view)
    signal.signal(signal.SIGALRM, lambda *a: view.words.__setitem__(H_PHASE, PHASE_EXIT))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        cpu.run()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return view.words[cpu.c_switches], locks[0], view.reads + view.writes


def calibrate(cfg: RunConfig, seconds: float = CALIBRATE_S) -> dict[str, float]:
    """Locked atomics and plain shared accesses per emulated context switch, on ``cfg``'s machine."""
    with Testbed(cfg) as tb:
        real = tb.seg.words
        tb.seg.words = CountingWords(real)  # type: ignore[assignment]  # each CPU is built over it
        try:
            counts = tb.run([lambda cpu: _count_primitives(cpu, seconds)] * cfg.cpus, timeout=60 + 4 * seconds)
        finally:
            tb.seg.words = real
    switches = max(1, sum(c[0] for c in counts))
    return {
        "switches": switches,
        "locked_atomics_per_switch": round(sum(c[1] for c in counts) / switches, 2),
        "shared_accesses_per_switch": round(sum(c[2] for c in counts) / switches, 2),
    }


def _ceiling_worker(me: int, words: memoryview, locks: list, n_locked: int, n_plain: int, seconds: float, out: int) -> None:  # type: ignore[type-arg]
    # Ctrl-C reaches the whole group: the parent decides (it kills the workers); a pending one is discarded here
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    acq = [lk._semlock.acquire for lk in locks]
    rel = [lk._semlock.release for lk in locks]
    mask = len(locks) - 1
    shared, own = 8, 64 + me * 64  # one contended line for every process; then each one's own lines
    lines = [shared if j % 2 == 0 else own + 8 * (j // 2 % 4) for j in range(n_locked)]
    ks = [(i >> LINE_SHIFT) & mask for i in lines]
    pairs = list(zip(lines, ks, strict=True))
    plain = [own + 40 + (j % 8) for j in range(n_plain)]
    w = words
    iterations = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for i, k in pairs:
            acq[k]()
            w[i] += 1  # a read and a write: the two accesses of a read-modify-write
            rel[k]()
        for i in plain:
            w[i] = w[i]
        iterations += CEILING_BATCH
    w[out + me] = iterations


def ceiling(nproc: int, locked: float, accesses: float, seconds: float) -> float:
    """Iterations per second, aggregate, of ``nproc`` bare loops of one switch's primitives. A pass
    of the loop does ``CEILING_BATCH`` switches' worth, so that fractional counts are kept."""
    n_locked = max(1, round(locked * CEILING_BATCH))
    n_plain = max(0, round((accesses - 2 * locked) * CEILING_BATCH / 2))  # the locked RMWs' accesses are counted in ``accesses``
    seg = Segment(8 * (64 + 64 * (nproc + 1) + nproc + 8))
    ctx = multiprocessing.get_context("fork")
    locks = make_locks(ctx)
    out = 64 + 64 * (nproc + 1)
    procs = [ctx.Process(target=_ceiling_worker, args=(p, seg.words, locks, n_locked, n_plain, seconds, out)) for p in range(nproc)]
    try:
        # each worker starts with SIGINT blocked until it ignores it: a Ctrl-C in its start-up is no traceback
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for p in procs:
                p.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # here, a Ctrl-C held meanwhile is delivered
        for p in procs:
            p.join()
        return sum(seg.words[out + p] for p in range(nproc)) / seconds
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
        seg.unlink()


def ipi_rtt(busy: bool, n: int = IPI_ROUND_TRIPS) -> dict[str, float]:
    """Round trips of a no-op ``smp_call_function_single`` from cpu0 to cpu1, in microseconds."""
    with Testbed(cpus=2) as tb:
        done, ready = tb.scratch(0), tb.scratch(1)

        def sender(cpu: Cpu) -> list[float]:
            while not cpu.w[ready]:  # the target's handler is in place
                pass
            rtts = []
            for _ in range(n):
                t0 = time.perf_counter_ns()
                cpu.irq.smp_call_function_single(1, BENCH_NOOP, 0, wait=True)
                rtts.append((time.perf_counter_ns() - t0) / 1000)
            cpu.w[done] = 1
            return rtts

        def target(cpu: Cpu) -> int:
            cpu.irq.handlers[BENCH_NOOP] = lambda arg: None
            cpu.w[ready] = 1
            spins = 0
            while not cpu.w[done]:
                if busy:
                    spins += 1  # Python code running: the handler runs between bytecodes
                else:
                    cpu.idle_wait(0.01)
            return spins

        def sender_ready(cpu: Cpu) -> list[float]:
            cpu.irq.handlers[BENCH_NOOP] = lambda arg: None
            return sender(cpu)

        rtts = tb.run([sender_ready, target])[0]
    q = statistics.quantiles(rtts, n=100)
    return {"p50": round(statistics.median(rtts), 1), "p99": round(q[98], 1)}


def profile(cfg: RunConfig, where: str, top: int = PROFILE_TOP) -> None:
    """One run with each CPU under cProfile; print the functions with the most own time."""
    os.makedirs(where, exist_ok=True)
    run(cfg, profile_dir=where)
    files = sorted(glob.glob(os.path.join(where, "cpu*.prof")))
    print(f"  --cpus {cfg.cpus}: profile of {len(files)} CPUs in {where} (own time, all CPUs; cProfile slows each call):", file=sys.stderr)
    if not files:
        return
    stats = pstats.Stats(*files, stream=sys.stderr)
    stats.sort_stats("tottime").print_stats(top)


def _progress(text: str) -> None:
    print(text, file=sys.stderr)


def measure(cfg: RunConfig, repeat: int, say: Callable[[str], None] = _progress) -> dict[str, Any]:
    """One calibration, then ``repeat`` pairs of (emulator run, ceiling run) back to back, so that a
    slow phase of a shared machine hits both sides of a ratio. Rates and ratio are medians."""
    c = cfg.cpus
    say(f"  --cpus {c}: calibration ...")
    cal = calibrate(cfg, min(CALIBRATE_S, cfg.duration))
    say(
        f"  --cpus {c}: {cal['locked_atomics_per_switch']} locked atomics and {cal['shared_accesses_per_switch']} "
        f"shared accesses per context switch ({cal['switches']} switches counted)"
    )
    runs, verdicts = [], []
    for i in range(repeat):
        say(f"  --cpus {c}: emulator and ceiling{f' ({i + 1}/{repeat})' if repeat > 1 else ''} ...")
        report = stopped_if_interrupted(run(cfg))
        sps = report.metrics["switches_per_second"]
        ceil = round(ceiling(c, cal["locked_atomics_per_switch"], cal["shared_accesses_per_switch"], cfg.duration), 1)
        runs.append({"switches_per_second": sps, "ceiling_per_second": ceil, "ratio": round(sps / ceil, 3) if ceil else None})
        verdicts.append(report.verdict)
    sps = round(statistics.median(r["switches_per_second"] for r in runs), 1)
    ratios = [r["ratio"] for r in runs if r["ratio"] is not None]
    return {
        "cpus": c,
        "memory_model": cfg.memory_model,
        "switches_per_second": sps,
        "switches_per_second_per_cpu": round(sps / c, 1),
        "ceiling_per_second": statistics.median(r["ceiling_per_second"] for r in runs),
        "ratio": round(statistics.median(ratios), 3) if ratios else None,
        "verdict": next((v for v in verdicts if v != "clean"), "clean"),
        "calibration": cal,
        "runs": runs,
    }


def stopped_if_interrupted(report: Any) -> Any:
    """The runner drains the machine at Ctrl-C and reports: a benchmark stops there, at the first one.
    A run that failed (the host could not keep up, say) is named on stderr, --quiet or not: its rate is no rate."""
    if report.harness.get("interrupted") == "SIGINT":
        raise KeyboardInterrupt
    if report.harness.get("error"):
        print(f"stress bench: --cpus {report.config.get('cpus')}: harness failure: {report.harness['error']}", file=sys.stderr)
    return report


DET_STEPS_PER_S = 100_000  # a deterministic row: steps per second of --duration


def measure_det(cfg: RunConfig, say: Callable[[str], None] = _progress) -> dict[str, Any]:
    """The deterministic mode against the free mode on one machine: rates over each run's wall time."""
    say(f"  --det-cpus {cfg.cpus}: free and deterministic runs ...")
    t0 = time.monotonic()
    free = stopped_if_interrupted(run(cfg))
    free_s = time.monotonic() - t0
    det_cfg = replace(cfg, sched="pct", steps=int(cfg.duration * DET_STEPS_PER_S))
    t0 = time.monotonic()
    det = stopped_if_interrupted(run(det_cfg))
    det_s = time.monotonic() - t0
    det_sw = det.metrics["context_switches"] / det_s
    free_sw = free.metrics["context_switches"] / free_s
    return {
        "cpus": cfg.cpus,
        "steps": det.harness["steps"],
        "points_per_second": round(det.harness["steps"] / det_s),
        "switches_per_second": round(det_sw, 1),
        "free_switches_per_second": round(free_sw, 1),
        "ratio": round(det_sw / free_sw, 3) if free_sw else None,
        "verdicts": [free.verdict, det.verdict],
    }


def cmd_bench(ns: argparse.Namespace) -> int:
    from emu.harness.config import ConfigError
    from stress.options import check_writable

    if not all(1 <= c <= 256 for c in ns.cpus):
        raise ConfigError("--cpus: each count must be between 1 and 256")
    if not all(1 <= c <= 64 for c in ns.det_cpus):
        raise ConfigError("--det-cpus: each count must be between 1 and 64")
    if not 0 <= ns.seed < 2**63:
        raise ConfigError(f"--seed must be between 0 and 2**63-1, got {ns.seed}")
    if not 0.2 <= ns.duration <= 600:
        raise ConfigError(f"--duration must be between 0.2 and 600 seconds, got {ns.duration}")
    check_writable(ns.json)
    if ns.profile is not None:
        parent = os.path.dirname(os.path.abspath(ns.profile))
        if not ns.profile or not os.path.isdir(parent) or not os.access(parent, os.W_OK):
            raise ConfigError(f"--profile: cannot write to '{ns.profile}' (no such writable directory)")
        if os.path.exists(ns.profile) and not os.path.isdir(ns.profile):
            raise ConfigError(f"--profile: cannot write to '{ns.profile}': it exists and is not a directory")
    if not 1 <= ns.repeat <= 100:
        raise ConfigError(f"--repeat must be between 1 and 100, got {ns.repeat}")
    if not 0 <= ns.procs_per_cpu <= 64:
        raise ConfigError(f"--procs-per-cpu must be between 0 (the default workload) and 64, got {ns.procs_per_cpu}")
    load = f"{ns.procs_per_cpu} processes per CPU" if ns.procs_per_cpu else "the default workload"
    if not ns.quiet:
        print(f"load: {load}, seed {ns.seed}", file=sys.stderr)
    rows = []
    models = ns.memory_models.split(",") if ns.memory_models else ["sc"]
    for c in ns.cpus:
        for model in models:
            cfg = bench_config(c, ns.seed, ns.procs_per_cpu, ns.duration, model)
            rows.append(measure(cfg, ns.repeat, (lambda text: None) if ns.quiet else _progress))
            if ns.profile:
                profile(cfg, os.path.join(ns.profile, f"cpus{c}" + (f"-{model}" if len(models) > 1 else "")))
    idle, busy = ipi_rtt(busy=False), ipi_rtt(busy=True)
    det_rows = [measure_det(bench_config(c, ns.seed, ns.procs_per_cpu, ns.duration), (lambda text: None) if ns.quiet else _progress)
                for c in ns.det_cpus]  # fmt: skip
    top = rows[-1]
    result = {
        "switches_per_second": top["switches_per_second"],
        "ceiling_per_second": top["ceiling_per_second"],
        "ratio": top["ratio"],
        "ipi_rtt_us_p50": idle["p50"],
        "ipi_rtt_us_p99": idle["p99"],
        "ipi_rtt_busy_us_p50": busy["p50"],
        "ipi_rtt_busy_us_p99": busy["p99"],
        "procs_per_cpu": ns.procs_per_cpu,
        "repeat": ns.repeat,
        "seed": ns.seed,
        "per_cpus": rows,
        "cores": len(os.sched_getaffinity(0)),
        "deterministic": det_rows,
    }
    if ns.repeat > 1:
        print(f"median of {ns.repeat} runs each (range in brackets)")
    several = len(models) > 1
    heads = [("cpus", "right"), *([("model", "left")] if several else []), ("switches/s", "right"), ("per cpu", "right")]
    heads += [("ceiling/s", "right"), ("ratio", "right")]
    table = plain_table(*heads, *([("range", "left")] if ns.repeat > 1 else []))
    for r in rows:
        sps, per, ceil = r["switches_per_second"], r["switches_per_second_per_cpu"], r["ceiling_per_second"]
        cells = [str(r["cpus"]), *([r["memory_model"]] if several else []), f"{sps:,.0f}", f"{per:,.0f}", f"{ceil:,.0f}"]
        cells.append("-" if r["ratio"] is None else f"{r['ratio']:.3f}")
        if ns.repeat > 1:
            rates = [x["switches_per_second"] for x in r["runs"]]
            ratios = [x["ratio"] for x in r["runs"]]
            ratios = [x for x in ratios if x is not None] or [0.0]
            cells.append(f"[{min(rates):,.0f}-{max(rates):,.0f}/s, ratio {min(ratios):.3f}-{max(ratios):.3f}]")
        table.add_row(*cells)
    print(table_text(table))
    print(f"IPI round trip: idle target p50 {idle['p50']} us, p99 {idle['p99']} us; busy target p50 {busy['p50']} us, p99 {busy['p99']} us")
    if det_rows:
        print(f"deterministic mode (--sched pct, {int(ns.duration * DET_STEPS_PER_S):,} steps), over each run's wall time:")
        det = plain_table(
            ("cpus", "right"), ("points/s", "right"), ("switches/s", "right"), ("free switches/s", "right"), ("ratio", "right")
        )
        for d in det_rows:
            ratio = "-" if d["ratio"] is None else f"{d['ratio']:.3f}"
            det.add_row(str(d["cpus"]), f"{d['points_per_second']:,}", f"{d['switches_per_second']:,.0f}",
                        f"{d['free_switches_per_second']:,.0f}", ratio)  # fmt: skip
        print(table_text(det))
    if ns.json:
        write_json(ns.json, result)
    return 0
