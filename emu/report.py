"""Turning the quiet machine's shared state into a report: metrics, violations, timelines."""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from emu.config import RunConfig, Workload
from emu.irq import ipi_name
from emu.layout import (
    E2F_BUCKETS,
    E2F_COUNTERS,
    H_NVIOL,
    H_PHASE,
    H_VIOL_KINDS,
    M_COUNT,
    M_FREED_BY,
    M_GEN,
    M_STATE,
    M_USERS,
    MM_EXITED,
    MM_LIVE,
    MM_SLOT_BITS,
    MM_WORDS,
    PHASE_EXIT,
    V_CLOCK,
    V_CPU,
    V_KIND,
    V_MM,
    V_OTHER,
    V_SITE,
    V_SNAP,
    VIOL_CAP,
    VIOL_WORDS,
    Layout,
    e2f_value_ns,
    mm_name,
)
from emu.oracle import KINDS, LEAK, site_name
from emu.trace import decode_rings, render

if TYPE_CHECKING:
    from emu.runner import RunState
    from emu.shm import Segment

STATUS_CLEAN, STATUS_VIOLATION, STATUS_USAGE, STATUS_HARNESS = 0, 1, 2, 3
TIMELINE_LINES = 300


@dataclass
class Report:
    config: dict[str, Any]
    metrics: dict[str, float]
    violations: list[dict[str, Any]]
    violation_counts: dict[str, int]
    verdict: str
    status: int
    harness: dict[str, Any]
    command: str
    timelines: list[list[str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "metrics": self.metrics,
            "violations": self.violations,
            "violation_counts": self.violation_counts,
            "verdict": self.verdict,
            "status": self.status,
            "harness": self.harness,
            "command": self.command,
            "timelines": self.timelines,
        }


def sum_counters(layout: Layout, arr: np.ndarray) -> dict[str, int]:
    block = arr[layout.counters_base : layout.counters_base + layout.ncpus * layout.counter_words]
    totals = block.reshape(layout.ncpus, layout.counter_words).sum(axis=0)
    return {name: int(totals[i]) for i, name in enumerate(layout.counters)}


def percentile_from_hist(hist: list[int], q: float) -> float | None:
    total = sum(hist)
    if not total:
        return None
    rank = q * total
    seen = 0
    for b, n in enumerate(hist):
        seen += n
        if seen >= rank:
            return e2f_value_ns(b) / 1000.0
    return e2f_value_ns(E2F_BUCKETS - 1) / 1000.0


def metrics_from(counters: dict[str, int], run_s: float) -> dict[str, float]:
    hist = [counters[name] for name in E2F_COUNTERS]
    m: dict[str, float] = {k: v for k, v in counters.items() if k not in E2F_COUNTERS and k != "exit_to_free_ns_sum"}
    switches = counters["context_switches"]
    freed = counters["mm_freed"]
    m["switches_per_second"] = round(switches / run_s, 1) if run_s > 0 else 0.0
    exits = counters["mm_exits"]
    m["ipis_per_exit"] = round(counters["ipis_exit"] / exits, 3) if exits else 0.0
    m["footprint_per_exit"] = round(counters["footprint_cpus"] / exits, 3) if exits else 0.0
    m["lazy_refcount_atomics_per_switch"] = round(counters["lazy_refcount_atomics"] / switches, 4) if switches else 0.0
    m["exit_to_free_us_p50"] = _round(percentile_from_hist(hist, 0.50))
    m["exit_to_free_us_p99"] = _round(percentile_from_hist(hist, 0.99))
    m["exit_to_free_us_mean"] = round(counters["exit_to_free_ns_sum"] / freed / 1000, 1) if freed else 0.0
    exits = counters["mm_exits"]
    for name in ("cpus_scanned", "remote_slot_reads", "mm_line_atomics"):
        if name in counters:  # the scanning schemes' costs, per exit
            m[f"{name}_per_exit"] = round(counters[name] / exits, 3) if exits else 0.0
    m["mm_atomics_per_switch"] = round(counters["mm_atomics"] / switches, 4) if switches else 0.0
    m["lock_wait_ns_per_switch"] = round(counters["lock_wait_ns"] / switches, 1) if switches else 0.0
    m["run_seconds"] = round(run_s, 3)
    return m


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def _first(clock_ns: int, t_run_ns: int) -> float | None:
    return round(max(0, clock_ns - t_run_ns) / 1e9, 4) if clock_ns and t_run_ns else None


def command_for(cfg: RunConfig) -> str:
    """The exact command that reruns this configuration and seed: every setting that differs
    from its default, as the flag of the same name (``--no-NAME`` for a default-on switch)."""
    args = ["python", "-m", "stress", "run", "--cpus", str(cfg.cpus), "--strategy", cfg.strategy]
    if cfg.mutant:
        args += ["--mutant", cfg.mutant]
    args += ["--arch", cfg.arch, "--duration", f"{cfg.duration:g}", "--seed", str(cfg.seed)]
    default = RunConfig()
    for f in dataclasses.fields(RunConfig):
        value = getattr(cfg, f.name)
        if f.name in ("cpus", "strategy", "mutant", "arch", "duration", "seed", "workload") or value == getattr(default, f.name):
            continue
        flag = f.name.replace("_", "-")
        if isinstance(value, bool):
            args.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            args += [f"--{flag}", f"{value:g}" if isinstance(value, float) else str(value)]
    wl_default = Workload()
    for name, value in vars(cfg.workload).items():
        if value != getattr(wl_default, name):
            args += [f"--{name.replace('_', '-')}", f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(args)


DETAILS = {
    "use_after_free": "cpu{cpu} touched freed {mm} in {at}{by}",
    "freed_while_lazy": "cpu{cpu} freed {mm} in {at} while cpu{other} still had it as active/loaded mm",
    "double_free": "cpu{cpu} freed {mm} again in {at}{by}",
    "count_underflow": "cpu{cpu} took a count of {mm} below zero in {at}",
    "cpumask_missing": "cpu{cpu} runs {mm} but is not in its mm_cpumask: flushes sent to the mask miss it",
    "inconsistent_mm": "an interrupt on cpu{cpu} found active_mm {mm} but another mm loaded",
    "lockdep": "cpu{cpu} called switch_mm_irqs_off to {mm} with interrupts enabled (lockdep_assert_irqs_disabled)",
    "scheme_warning": "cpu{cpu}: the scheme's own check fired on {mm} in {at}",
}


def _violation(arr: np.ndarray, layout: Layout, n: int) -> dict[str, Any]:
    v = arr[layout.viol_base + n * VIOL_WORDS : layout.viol_base + (n + 1) * VIOL_WORDS].tolist()
    kind, cpu, mm, where, other, snap = v[V_KIND], v[V_CPU], v[V_MM], v[V_SITE], v[V_OTHER], v[V_SNAP]
    rec = arr[layout.mm(mm) : layout.mm(mm) + MM_WORDS].tolist()
    freed_by = rec[M_FREED_BY] if rec[M_GEN] == mm >> MM_SLOT_BITS else -1
    name = mm_name(mm)
    by = f" (freed by cpu{freed_by})" if freed_by >= 0 else ""
    kname = KINDS[kind]
    detail = DETAILS.get(kname, DETAILS["use_after_free"]).format(cpu=cpu, mm=name, at=site_name(where), other=other, by=by)
    return {"kind": kname, "cpu": cpu, "mm": name, "detail": detail, "other_cpu": other, "freed_by": freed_by, "snapshot": snap}


def timeline(arr: np.ndarray, layout: Layout, viol: dict[str, Any], mm: int, t0_ns: int) -> list[str]:
    """The merged recent events of the CPUs and the mm involved in one violation."""
    snap = viol["snapshot"]
    ew = layout.events_words
    rings = arr[layout.snap_base + snap * ew : layout.snap_base + (snap + 1) * ew]
    cpus = {viol["cpu"], viol["other_cpu"], viol["freed_by"]} - {-1}
    names = {"ipi": ipi_name, "site": site_name, "kind": lambda k: KINDS[k] if 0 <= k < len(KINDS) else str(k)}
    lines = []
    for clock, cpu, code, a, b in decode_rings(rings, layout):
        if cpu in cpus or a == mm or b == mm:
            t = (clock - t0_ns) / 1e6
            lines.append(f"{t:+12.3f}ms  cpu{cpu:<3d} {render(code, a, b, layout, names)}")
    return lines[-TIMELINE_LINES:]


def collect(cfg: RunConfig, layout: Layout, seg: Segment, state: RunState) -> Report:
    arr = np.frombuffer(seg.buf, dtype=np.int64)
    try:
        counters = sum_counters(layout, arr)
        nviol = int(arr[H_NVIOL])
        violations = [_violation(arr, layout, n) for n in range(min(nviol, VIOL_CAP))]
        counts = {k: int(arr[H_VIOL_KINDS + i]) for i, k in enumerate(KINDS) if arr[H_VIOL_KINDS + i]}
        timelines = []
        for n, v in enumerate(violations):
            if v["snapshot"] >= 0:
                mm = int(arr[layout.viol_base + n * VIOL_WORDS + V_MM])
                timelines.append(timeline(arr, layout, v, mm, state.t_run_ns))
        first = min((int(arr[layout.viol_base + n * VIOL_WORDS + V_CLOCK]) for n in range(len(violations))), default=0)
        drained = state.drained and int(arr[H_PHASE]) == PHASE_EXIT and not state.harness_error
        if drained:
            for slot in range(1, layout.nmm):
                rec = arr[layout.mm_base + slot * MM_WORDS : layout.mm_base + (slot + 1) * MM_WORDS].tolist()
                if rec[M_STATE] in (MM_LIVE, MM_EXITED):
                    name = mm_name((rec[M_GEN] << MM_SLOT_BITS) | slot)
                    violations.append({
                        "kind": KINDS[LEAK], "cpu": -1, "mm": name,
                        "detail": f"{name} never freed on the quiet machine (mm_users {rec[M_USERS]}, mm_count {rec[M_COUNT]})",
                        "other_cpu": -1, "freed_by": -1, "snapshot": -1,
                    })  # fmt: skip
                    counts["leak"] = counts.get("leak", 0) + 1
    finally:
        del arr
    if state.harness_error:
        status, verdict = STATUS_HARNESS, "harness_failure"
    elif counts:
        status, verdict = STATUS_VIOLATION, "violation"
    else:
        status, verdict = STATUS_CLEAN, "clean"
    harness = {
        "boot_seconds": round(state.boot_s, 3),
        "run_seconds": round(state.run_s, 3),
        "drain_seconds": round(state.drain_s, 3),
        "drained": drained,
        "interrupted": state.interrupted or None,
        "stopped_early": state.stopped_early or None,
        "error": state.harness_error or None,
        "rss": state.rss or None,
        "keep_up": state.keep_up or None,  # what the host could not do within the run's duration
    }
    return Report(
        config=cfg.to_dict(),
        metrics={**metrics_from(counters, state.run_s), "first_violation_s": _first(first, state.t_run_ns)},
        violations=violations,
        violation_counts=counts,
        verdict=verdict,
        status=status,
        harness=harness,
        command=command_for(cfg),
        timelines=timelines,
    )
