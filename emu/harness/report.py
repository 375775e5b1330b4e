"""Turning the quiet machine's shared state into a report: metrics, violations, timelines."""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from emu.arch.base import EV_SWITCH_MM
from emu.checks.oracle import EV_VIOLATION, KINDS, LEAK, site_name
from emu.harness.config import RunConfig, Workload
from emu.harness.events import Event
from emu.harness.events import from_json as events_from_json
from emu.harness.events import to_json as events_to_json
from emu.harness.replay import setup_digest
from emu.kernel.mm import EV_MMDROP
from emu.machine.detsched import STEP_NS
from emu.machine.irq import ipi_name
from emu.machine.layout import (
    C_ACTIVE_MM,
    C_DRAIN_MM,
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
from emu.machine.trace import STEP_SHIFT, decode_rings, format_of, kind_of, render, values

if TYPE_CHECKING:
    from emu.harness.runner import RunState
    from emu.machine.shm import Segment

STATUS_CLEAN, STATUS_VIOLATION, STATUS_USAGE, STATUS_HARNESS = 0, 1, 2, 3
TIMELINE_LINES = 300


@dataclass
class Report:
    config: dict[str, Any]
    metrics: dict[str, Any]  # numbers, None where a measure has no sample (a record read back from JSON too)
    violations: list[dict[str, Any]]
    violation_counts: dict[str, int]
    verdict: str
    status: int
    harness: dict[str, Any]
    command: str
    timelines: list[list[str]] = field(default_factory=list)
    # the same events as data (emu.harness.events, its JSON): a schema version, the kinds' formats,
    # per timeline each event's kind, CPU, step or time, mms and values; {} in a report read back
    # from JSON written before them (schema 1: "timeline_events", text alone)
    events: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, Any] | None = None  # a deterministic run's: its policy and hand-overs (emu.machine.detsched)

    @classmethod
    def from_json(cls, doc: dict[str, Any], where: str = "report") -> Report:
        """A report read back from its JSON. One written before the events' schema 2 reads too,
        without them (its timelines as lines); one of another schema is refused (ConfigError)."""
        known = {f.name for f in dataclasses.fields(cls)}
        r = cls(**{k: v for k, v in doc.items() if k in known})
        event_timelines(r, where)  # refuses another schema now, not when the timeline is shown
        return r

    def to_json(self) -> dict[str, Any]:
        # a deterministic run's setup and schedule repeat it: the digest tells a replay if the setup was edited
        extra = {"schedule": self.schedule, "setup_digest": setup_digest(self.config)} if self.schedule is not None else {}
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
            "events": self.events,
            **extra,
        }


def sum_counters(layout: Layout, arr: np.ndarray) -> dict[str, int]:
    block = arr[layout.counters_base : layout.counters_base + layout.ncpus * layout.counter_words]
    totals = block.reshape(layout.ncpus, layout.counter_words).sum(axis=0)
    out = {name: int(totals[i]) for i, name in enumerate(layout.counters)}
    if "mask_atomics" in out:  # the machine counts the mask's atomics apart (Atomics.count_mask_atomics): mm_atomics is both
        out["mm_atomics"] += out["mask_atomics"]
    return out


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


def metrics_from(counters: dict[str, int], run_s: float) -> dict[str, float | None]:
    hist = [counters[name] for name in E2F_COUNTERS]
    m: dict[str, float | None] = {k: v for k, v in counters.items() if k not in E2F_COUNTERS and k != "exit_to_free_ns_sum"}
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
    for name in per_exit_counters():
        if name in counters:  # the costs a part declares per exit (Strategy.per_exit: the scanning schemes')
            m[f"{name}_per_exit"] = round(counters[name] / exits, 3) if exits else 0.0
    m["mm_atomics_per_switch"] = round(counters["mm_atomics"] / switches, 4) if switches else 0.0
    if "mask_atomics" in counters:  # of those, the atomics on mm_cpumask lines (every run through the runner)
        m["mask_atomics_per_switch"] = round(counters["mask_atomics"] / switches, 4) if switches else 0.0
    m["lock_wait_ns_per_switch"] = round(counters["lock_wait_ns"] / switches, 1) if switches else 0.0
    m["run_seconds"] = round(run_s, 3)
    return m


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def _first(clock_ns: int, t_run_ns: int) -> float | None:
    if t_run_ns < 0:  # a deterministic run: the machine's clock counts steps, a microsecond each
        return round(clock_ns / 1e9, 6) if clock_ns else None
    return round(max(0, clock_ns - t_run_ns) / 1e9, 4) if clock_ns and t_run_ns else None


# written apart (the command's head and the workload's own flags)
NOT_RUN_FLAGS = ("cpus", "strategy", "mutant", "arch", "duration", "seed", "workload")


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
        if f.name in NOT_RUN_FLAGS or value == getattr(default, f.name):
            continue
        if f.name == "perturb":  # perturbations without a field of their own: each its flag
            args += [f"--{name}" for name in value]
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
    "cpumask_missing": "{runner} runs {mm} but is not in its mm_cpumask (seen by cpu{cpu} at {at}): flushes sent by the mask miss it",
    "inconsistent_mm": "an interrupt on cpu{cpu} found active_mm {mm} but another mm loaded",
    "lockdep": "cpu{cpu} called switch_mm_irqs_off to {mm} with interrupts enabled (lockdep_assert_irqs_disabled)",
    "scheme_warning": "cpu{cpu}: the scheme's own check fired on {mm} in {at}",
    "dangling_reference": "cpu{cpu} freed {mm} in {at} while cpu{other}'s scheme field still named it (hazard slot or parked reference)",
    "soft_lockup": "cpu{cpu} spun on {mm} in {at} without progress (soft lockup)",
    "missed_flush": "cpu{cpu} ran {mm} with TLB entries older than a flush of it that had completed (in {at})",
    "liveness": "cpu{cpu} waits in {at} for cpu{other}, which cannot end the wait, on {mm} (liveness)",
}


def _violation(arr: np.ndarray, layout: Layout, n: int, t_run_ns: int) -> dict[str, Any]:
    v = arr[layout.viol_base + n * VIOL_WORDS : layout.viol_base + (n + 1) * VIOL_WORDS].tolist()
    kind, cpu, mm, where, other, snap = v[V_KIND], v[V_CPU], v[V_MM], v[V_SITE], v[V_OTHER], v[V_SNAP]
    rec = arr[layout.mm(mm) : layout.mm(mm) + MM_WORDS].tolist()
    freed_by = rec[M_FREED_BY] if rec[M_GEN] == mm >> MM_SLOT_BITS else -1
    name = mm_name(mm)
    by = f" (freed by cpu{freed_by})" if freed_by >= 0 else ""
    kname = KINDS[kind]
    runner = f"cpu{other if other >= 0 else cpu}"  # cpumask_missing: the CPU outside the mask, when another CPU saw it
    detail = DETAILS.get(kname, DETAILS["use_after_free"]).format(cpu=cpu, mm=name, at=site_name(where), other=other, by=by, runner=runner)
    return {
        "kind": kname, "cpu": cpu, "mm": name, "detail": detail, "other_cpu": other, "freed_by": freed_by, "snapshot": snap,
        "site": site_name(where), "t_s": _first(v[V_CLOCK], t_run_ns),
    }  # fmt: skip


_NAMES = {"ipi": ipi_name, "site": site_name, "kind": lambda k: KINDS[k] if 0 <= k < len(KINDS) else str(k)}

Row = tuple[int, int, int, int, int]  # an event as decode_rings gives it: (clock, cpu, code, a, b)


def involved(arr: np.ndarray, layout: Layout, viol: dict[str, Any], mm: int) -> list[Row]:
    """The merged recent events, from the violation's snapshot, of the CPUs and the mm involved in
    it: the last ``TIMELINE_LINES`` of them."""
    snap = viol["snapshot"]
    ew = layout.events_words
    rings = arr[layout.snap_base + snap * ew : layout.snap_base + (snap + 1) * ew]
    cpus = {viol["cpu"], viol["other_cpu"], viol["freed_by"]} - {-1}
    decoded = decode_rings(rings, layout)
    cpus |= remote_droppers(decoded, mm)
    rows = [r for r in decoded if r[1] in cpus or r[3] == mm or r[4] == mm]
    return rows[-TIMELINE_LINES:]


def remote_droppers(rows: list[Row], mm: int) -> set[int]:
    """The CPUs that dropped a count of ``mm`` without ever switching to or from it: a scan's
    drop (a displaced reference) is made by a CPU that is busy with another mm, whose events
    explain it."""
    droppers = {c for _, c, code, a, _ in rows if code == EV_MMDROP and a == mm}
    users = {c for _, c, code, a, b in rows if code == EV_SWITCH_MM and mm in (a, b)}
    return droppers - users


def timeline(arr: np.ndarray, layout: Layout, viol: dict[str, Any], mm: int, t0_ns: int) -> list[str]:
    """The merged recent events of the CPUs and the mm involved in one violation, one line each."""
    return timeline_lines(involved(arr, layout, viol, mm), layout, t0_ns)


def timeline_lines(rows: list[Row], layout: Layout, t0_ns: int) -> list[str]:
    """``rows`` as the flat timeline's lines (the JSON's ``timelines``): time, CPU, what happened."""
    return [f"{_stamp(clock, t0_ns)}  cpu{cpu:<3d} {render(code, a, b, layout, _NAMES)}" for clock, cpu, code, a, b in rows]


def marked(rows: list[Row], cpu: int, kind: int, mm: int) -> int | None:
    """The index in ``rows`` of the oracle's ``VIOLATION`` event for a violation of ``kind`` on
    ``mm`` reported by ``cpu``, or None when the ring no longer holds it.

    The last match, not the first: a CPU that reports the same kind on the same mm at another
    place (a use-after-free in the page walk, then in mmgrab) traced an earlier match for its
    earlier violation, and the reporting CPU takes the snapshot right after tracing the event."""
    hits = [i for i, (_, c, code, a, b) in enumerate(rows) if code == EV_VIOLATION and c == cpu and a == kind and b == mm]
    return hits[-1] if hits else None


def timeline_events(rows: list[Row], layout: Layout, viol: dict[str, Any], mm: int, t0_ns: int) -> list[Event]:
    """The timeline's events as data: each its kind, CPU, time (``_t``), format and values (the
    flat timeline's text is the format filled with them), and ``mark`` on the violation's own event."""
    mark = marked(rows, viol["cpu"], KINDS.index(viol["kind"]), mm)
    unit = "step" if t0_ns < 0 else "ns"
    return [
        Event(kind_of(code), cpu, _t(clock, t0_ns), unit, format_of(code), tuple(values(code, a, b, layout, _NAMES)), i == mark)
        for i, (clock, cpu, code, a, b) in enumerate(rows)
    ]


def event_timelines(report: Report, where: str = "report") -> list[list[Event]]:
    """The report's timelines as events: none for a report without them (read from JSON written
    before them); ConfigError for events of a schema this version does not read."""
    return events_from_json(report.events, where)


def _t(clock: int, t0_ns: int) -> int:
    """An event's time: ns since the load began, or in a deterministic run (``t0_ns`` < 0) its step."""
    return clock >> STEP_SHIFT if t0_ns < 0 else clock - t0_ns


def _stamp(clock: int, t0_ns: int) -> str:
    return f"step {clock >> STEP_SHIFT:>9,}" if t0_ns < 0 else f"{(clock - t0_ns) / 1e6:+12.3f}ms"


def leaked_mms(arr: np.ndarray, layout: Layout) -> tuple[list[dict[str, Any]], int]:
    """On a drained machine: an mm still alive is a leak (its violation record), unless only idle
    CPUs still lazy on it hold it (counted apart: a quiet kernel's idle task keeps its last mm)."""
    leaks: list[dict[str, Any]] = []
    held_lazily = 0
    lazy_on_drain_mm: dict[int, int] = {}  # a quiet kernel's idle task stays lazy on the last mm it ran (emu.kernel.drain)
    for c in range(layout.ncpus):
        rec_c = layout.cpu(c)
        if arr[rec_c + C_DRAIN_MM] and arr[rec_c + C_ACTIVE_MM] == arr[rec_c + C_DRAIN_MM]:
            h = int(arr[rec_c + C_DRAIN_MM])
            lazy_on_drain_mm[h] = lazy_on_drain_mm.get(h, 0) + 1
    for slot in range(1, layout.nmm):
        rec = arr[layout.mm_base + slot * MM_WORDS : layout.mm_base + (slot + 1) * MM_WORDS].tolist()
        handle = (rec[M_GEN] << MM_SLOT_BITS) | slot
        if rec[M_STATE] not in (MM_LIVE, MM_EXITED):
            continue
        # a lazy user holds at most one count (its lazy reference, or one parked for it): any more is a leak
        if rec[M_USERS] == 0 and 0 < rec[M_COUNT] <= lazy_on_drain_mm.get(handle, 0):
            held_lazily += 1
        else:
            name = mm_name(handle)
            leaks.append({
                "kind": KINDS[LEAK], "cpu": -1, "mm": name,
                "detail": f"{name} never freed on the quiet machine (mm_users {rec[M_USERS]}, mm_count {rec[M_COUNT]})",
                "other_cpu": -1, "freed_by": -1, "snapshot": -1, "site": "", "t_s": None,
            })  # fmt: skip
    return leaks, held_lazily


def collect(cfg: RunConfig, layout: Layout, seg: Segment, state: RunState) -> Report:
    arr = np.frombuffer(seg.buf, dtype=np.int64)
    try:
        counters = sum_counters(layout, arr)
        nviol = int(arr[H_NVIOL])
        violations = [_violation(arr, layout, n, state.t_run_ns) for n in range(min(nviol, VIOL_CAP))]
        counts = {k: int(arr[H_VIOL_KINDS + i]) for i, k in enumerate(KINDS) if arr[H_VIOL_KINDS + i]}
        timelines: list[list[str]] = []
        events: list[list[Event]] = []
        for n, v in enumerate(violations):
            if v["snapshot"] >= 0:
                mm = int(arr[layout.viol_base + n * VIOL_WORDS + V_MM])
                rows = involved(arr, layout, v, mm)  # one decoding for both forms: the same events
                timelines.append(timeline_lines(rows, layout, state.t_run_ns))
                events.append(timeline_events(rows, layout, v, mm, state.t_run_ns))
        first = min((int(arr[layout.viol_base + n * VIOL_WORDS + V_CLOCK]) for n in range(len(violations))), default=0)
        drained = state.drained and int(arr[H_PHASE]) == PHASE_EXIT and not state.harness_error
        held_lazily = 0  # mms alive at the end only because an idle CPU is still lazy on them: not leaks
        if drained:
            leaks, held_lazily = leaked_mms(arr, layout)
            violations.extend(leaks)
            if leaks:
                counts["leak"] = counts.get("leak", 0) + len(leaks)
    finally:
        del arr
    if state.harness_error and not counts:
        status, verdict = STATUS_HARNESS, "harness_failure"
    elif counts:  # a violation the oracle recorded stays the verdict when the machine then failed (a CPU stuck by the bug)
        status, verdict = STATUS_VIOLATION, "violation"
    else:
        status, verdict = STATUS_CLEAN, "clean"
    metrics = {**metrics_from(counters, state.run_s), "first_violation_s": _first(first, state.t_run_ns), "mm_held_lazily": held_lazily}
    if cfg.deterministic:  # nothing of the host's: the same configuration and seed give the same report
        sched = state.schedule
        harness = {
            "sched": cfg.sched,
            "steps": state.steps,
            "run_steps": state.run_steps,
            "drained": drained,
            "interrupted": state.interrupted or None,
            "stopped_early": state.stopped_early or None,
            "error": state.harness_error or None,
        }
        metrics["first_violation_step"] = first // STEP_NS if first else None
        for v in violations:
            if v["t_s"] is not None:
                v["step"] = round(v["t_s"] * 1e9) // STEP_NS
        schedule = {
            "sched": cfg.sched,
            "handovers": sched.encode() if sched else "",
            "count": len(sched.handovers) if sched else 0,
            "truncated": bool(state.schedule_truncated),
        }
        return Report(
            config=cfg.to_dict(), metrics=metrics, violations=violations, violation_counts=counts, verdict=verdict,
            status=status, harness=harness, command=command_for(cfg), timelines=timelines, events=events_to_json(events),
            schedule=schedule,
        )  # fmt: skip
    harness = {
        "boot_seconds": round(state.boot_s, 3),
        "run_seconds": round(state.run_s, 3),
        "drain_seconds": round(state.drain_s, 3),
        "total_seconds": round(state.total_s, 3),
        "drained": drained,
        "interrupted": state.interrupted or None,
        "stopped_early": state.stopped_early or None,
        "error": state.harness_error or None,
        "rss": state.rss or None,
        "keep_up": state.keep_up or None,  # what the host could not do within the run's duration
    }
    return Report(
        config=cfg.to_dict(),
        metrics=metrics,
        violations=violations,
        violation_counts=counts,
        verdict=verdict,
        status=status,
        harness=harness,
        command=command_for(cfg),
        timelines=timelines,
        events=events_to_json(events),
    )


# -- reading the report ------------------------------------------------------------------------

# The groups a kernel developer reads a run in, in order; a counter no group names goes to "other".
WORKLOAD, PER_SWITCH, PER_EXIT, IPIS, HARNESS, OTHER = (
    "the workload",
    "lazy-mm cost per context switch",
    "per mm exit",
    "IPIs",
    "harness and perturbation",
    "other",
)
GROUPS = (WORKLOAD, PER_SWITCH, PER_EXIT, IPIS, HARNESS, OTHER)

# When a counter is shown without --verbose: always; when nonzero; only with --verbose; or when
# nonzero or the run's configuration makes it apply (a zero that answers a question of this run).
ALWAYS, NONZERO, VERBOSE = "always", "nonzero", "verbose"


@dataclass(frozen=True)
class Metric:
    group: str
    show: str | tuple[str, Any]  # ALWAYS, NONZERO, VERBOSE, or (config key, value that makes it apply)
    meaning: str


METRICS: dict[str, Metric] = {
    "context_switches": Metric(WORKLOAD, ALWAYS, "schedule() switches, all kinds"),
    "switches_per_second": Metric(WORKLOAD, ALWAYS, "over the load"),
    "lazy_switches": Metric(WORKLOAD, ALWAYS, "user -> kernel: a lazy use begins"),
    "forks": Metric(WORKLOAD, NONZERO, "processes forked, each a new mm"),
    "forks_no_mm": Metric(WORKLOAD, NONZERO, "forks refused: every mm slot taken (the machine starves)"),
    "exits": Metric(WORKLOAD, NONZERO, "user threads exited"),
    "mm_created": Metric(WORKLOAD, ALWAYS, "mms allocated"),
    "mm_freed": Metric(WORKLOAD, ALWAYS, "mms freed (__mmdrop)"),
    "mm_held_lazily": Metric(WORKLOAD, NONZERO, "alive at the end as an idle CPU's lazy mm: not leaks"),
    "migrations": Metric(WORKLOAD, NONZERO, "tasks moved to another CPU"),
    "kthread_use_mm": Metric(WORKLOAD, NONZERO, "kernel threads adopting an mm"),
    "execs": Metric(WORKLOAD, NONZERO, "exec_mmap: a task's mm replaced"),
    "preemptions": Metric(WORKLOAD, NONZERO, "kernel paths preempted at a preemption point"),
    "tlb_flushes": Metric(WORKLOAD, NONZERO, "flushes of a live mm (munmap)"),
    "lazy_refcount_atomics_per_switch": Metric(PER_SWITCH, ALWAYS, "mm_count atomics for lazy use"),
    "mm_atomics_per_switch": Metric(PER_SWITCH, ALWAYS, "atomics on mm lines (count, mask)"),
    "mask_atomics_per_switch": Metric(PER_SWITCH, ALWAYS, "of those, atomics on mm_cpumask lines"),
    "lock_wait_ns_per_switch": Metric(HARNESS, ALWAYS, "emulator lock wait per switch (the emulator's, not the scheme's)"),
    "lazy_refcount_atomics": Metric(PER_SWITCH, VERBOSE, "total, all switches"),
    "mm_atomics": Metric(PER_SWITCH, VERBOSE, "total, all switches"),
    "mask_atomics": Metric(PER_SWITCH, VERBOSE, "total, all switches"),
    "mm_exits": Metric(PER_EXIT, ALWAYS, "mms torn down (last mmput)"),
    "ipis_per_exit": Metric(PER_EXIT, ALWAYS, "IPIs sent to tear an mm down"),
    "footprint_per_exit": Metric(PER_EXIT, ALWAYS, "CPUs that ever ran the mm"),
    "tlb_broadcasts": Metric(PER_EXIT, NONZERO, "flushes by hardware broadcast (exit, munmap), no IPI"),
    "exit_to_free_us_p50": Metric(PER_EXIT, ALWAYS, "last mmput to free, median (us)"),
    "exit_to_free_us_p99": Metric(PER_EXIT, ALWAYS, "last mmput to free, p99 (us)"),
    "exit_to_free_us_mean": Metric(PER_EXIT, VERBOSE, "last mmput to free, mean (us)"),
    "footprint_cpus": Metric(PER_EXIT, VERBOSE, "total, all exits"),
    "ipis_sent": Metric(IPIS, ALWAYS, "IPIs sent, every purpose"),
    "ipis_flush": Metric(IPIS, NONZERO, "TLB flush IPIs (exit, munmap)"),
    "ipis_shootdown": Metric(IPIS, ("scheme", "MMU_LAZY_TLB_SHOOTDOWN"), "shootdowns of lazy CPUs"),
    "ipis_check": Metric(IPIS, ("debug_check", True), "do_check_lazy_tlb (--debug-check)"),
    "ipis_exit": Metric(IPIS, NONZERO, "sent while an mm was torn down"),
    "ipis_useful": Metric(IPIS, NONZERO, "lazy-off IPIs: target was lazy"),
    "ipis_wasted": Metric(IPIS, NONZERO, "lazy-off IPIs: target was not"),
    "ipis_received": Metric(IPIS, VERBOSE, "IPIs handled"),
    "noise_delays": Metric(HARNESS, ("noise", "nonzero"), "--noise delays taken"),
    "race_delays": Metric(HARNESS, ("race_delay", "nonzero"), "--race-delay stalls taken"),
    "hotplug_offline": Metric(HARNESS, ("hotplug", True), "CPUs taken offline"),
    "hotplug_online": Metric(HARNESS, ("hotplug", True), "CPUs brought back online"),
    "first_violation_s": Metric(HARNESS, VERBOSE, "seconds in, first violation"),
    "first_violation_step": Metric(HARNESS, NONZERO, "deterministic mode: the scheduling step of the first violation"),
    "page_walks": Metric(HARNESS, VERBOSE, "oracle checks: the heartbeat"),
    "idle_waits": Metric(HARNESS, VERBOSE, "idle sleeps on the doorbell"),
    "lock_contended": Metric(HARNESS, VERBOSE, "atomics finding their lock taken"),
    "lock_wait_ns": Metric(HARNESS, VERBOSE, "total, all switches"),
    "run_seconds": Metric(HARNESS, VERBOSE, "seconds of load"),
    # a benchmark's run only (compare --benchmark): its iterations, and what they cost
    "bench_ops": Metric(WORKLOAD, NONZERO, "the benchmark's iterations (messages for hackbench)"),
    "remote_wakeups": Metric(WORKLOAD, NONZERO, "try_to_wake_up of a task on another CPU"),
}


def part_counters() -> list[tuple[str, str, bool]]:
    """(counter, label, per exit) for every counter a known part declares a label for, in name order."""
    from emu.arch import ARCH_MUTANTS, ARCHES
    from emu.strategies import MUTANTS, STRATEGIES

    out: dict[str, tuple[str, str, bool]] = {}
    parts: list[tuple[dict[str, str], tuple[str, ...]]] = [
        (s.labels, s.per_exit) for t in (STRATEGIES, MUTANTS) for _, s in sorted(t.items())
    ]
    parts += [(a.labels, ()) for t in (ARCHES, ARCH_MUTANTS) for _, a in sorted(t.items())]
    for labels, per_exit in parts:
        for c, label in labels.items():
            out.setdefault(c, (c, label, c in per_exit))
    return list(out.values())


def per_exit_counters() -> tuple[str, ...]:
    return tuple(c for c, _, per in part_counters() if per)


def metrics() -> dict[str, Metric]:
    """The report's labels: the harness's own (``METRICS``) and those the known parts declare, a
    per-exit counter beside the other per-exit costs, its total beside the other totals."""
    per_exit = {f"{c}_per_exit": Metric(PER_EXIT, ALWAYS, label) for c, label, per in part_counters() if per}
    totals = {c: Metric(PER_EXIT, VERBOSE, "total, all exits") for c, _, per in part_counters() if per}
    other = {c: Metric(OTHER, NONZERO, label) for c, label, per in part_counters() if not per}
    out: dict[str, Metric] = {}
    for k, m in METRICS.items():
        out[k] = m
        out.update(per_exit if k == "footprint_per_exit" else totals if k == "footprint_cpus" else {})
    return {**out, **other}


def applies(key: str, value: Any, config: dict[str, Any]) -> bool:
    """Whether a counter belongs in the short report of this run (``--verbose`` shows every one)."""
    m = metrics().get(key)
    if m is None or m.show == NONZERO:
        return bool(value)
    if isinstance(m.show, str):  # ALWAYS or VERBOSE
        return m.show == ALWAYS
    name, when = m.show
    if name == "scheme":  # a property the run's scheme declares (Strategy.MMU_LAZY_TLB_SHOOTDOWN)
        from emu.strategies import STRATEGIES

        return bool(value) or bool(getattr(STRATEGIES.get(config.get("strategy", "")), when, False))
    return bool(value) or (bool(config.get(name)) if when == "nonzero" else config.get(name) == when)


def grouped(report: Report, verbose: bool = False) -> list[tuple[str, list[tuple[str, Any, str]]]]:
    """(group, [(counter, value, meaning)]) in reading order: the counters that apply, or all."""
    rows: dict[str, list[tuple[str, Any, str]]] = {g: [] for g in GROUPS}
    labels = metrics()
    order = {k: i for i, k in enumerate(labels)}
    for key in sorted(report.metrics, key=lambda k: (order.get(k, len(order)), k)):
        value = report.metrics[key]
        if verbose or applies(key, value, report.config):
            m = labels.get(key)
            rows[m.group if m else OTHER].append((key, value, m.meaning if m else ""))
    return [(g, r) for g, r in rows.items() if r]


# The first line's answer for a violation, one phrasing per kind (the oracle's KINDS)
HEADLINES = {
    "use_after_free": "cpu{cpu} touched {mm} after it was freed{by}, in {at}",
    "freed_while_lazy": "cpu{cpu} freed {mm} while {holder}",
    "double_free": "cpu{cpu} freed {mm} a second time{by}, in {at}",
    "count_underflow": "cpu{cpu} took a count of {mm} below zero, in {at}",
    "cpumask_missing": "cpu{cpu} ran {mm} outside its mm_cpumask, where flushes sent to the mask miss it",
    "inconsistent_mm": "an interrupt on cpu{cpu} found active_mm {mm} with another mm loaded",
    "lockdep": "cpu{cpu} called switch_mm_irqs_off to {mm} with interrupts enabled",
    "scheme_warning": "the scheme's own check fired on cpu{cpu} for {mm}, in {at}",
    # kinds the oracle is gaining: a scheme's own per-CPU reference, a kernel wait loop that never ends
    "dangling_reference": "cpu{cpu} freed {mm} while {other}'s scheme field (a hazard slot or parked reference) still named it",
    "soft_lockup": "cpu{cpu} spun on {mm} without progress, in {at} (soft lockup)",
    "missed_flush": "cpu{cpu} ran {mm} with TLB entries older than a completed flush of it: a missed flush",
    "liveness": "cpu{cpu} waits on offline {other} for {mm}, in {at}: a wait that cannot end (liveness)",
}


def headline(report: Report) -> str:
    """The verdict and the one-sentence answer: what happened in this run."""
    m, c = report.metrics, report.config
    stop = report.harness.get("interrupted")
    tail = f" (interrupted by {stop})" if stop else ""
    if report.verdict == "harness_failure":
        return f"HARNESS FAILURE: {report.harness.get('error')}"
    if report.verdict == "clean":
        return (
            f"CLEAN: {count(m['context_switches'], 'context switch', 'context switches')} on {count(c['cpus'], 'CPU')}, "
            f"{count(m['mm_created'], 'mm')} created and freed{_held(m)}, no violation{tail}"
        )
    error = report.harness.get("error")
    if error:  # the violation, and beside it the failure that followed (the machine did not drain)
        tail += f"; then the harness failed: {error}"
    if not report.violations:  # counted but not recorded: only the kinds are known
        return f"VIOLATION: {', '.join(f'{n:,} {k}' for k, n in report.violation_counts.items())}{tail}"
    # the first recorded: the one whose timeline the report shows
    return f"VIOLATION: {violation_sentence(report.violations[0])}{tail}"


def _held(m: dict[str, Any]) -> str:
    """The mms the idle CPUs are still lazy on at the end: alive, as on every quiet kernel."""
    held = int(m.get("mm_held_lazily") or 0)
    return f" but the {held:,} still lazily held by idle CPUs" if held else ""


def count(n: int, one: str, many: str = "") -> str:
    """``1 CPU``, ``32 CPUs``, ``628,492 context switches``."""
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def violation_sentence(v: dict[str, Any]) -> str:
    kind, detail = v["kind"], v["detail"]
    if kind == "leak":
        return detail
    if kind not in HEADLINES:  # a kind added to the oracle later: its own words
        sentence = detail
    else:
        own = v["other_cpu"] == v["cpu"]
        holder = "it was still its own active or loaded mm" if own else f"cpu{v['other_cpu']} still had it as active or loaded mm"
        by = f" (freed by cpu{v['freed_by']})" if v.get("freed_by", -1) >= 0 else ""
        other = f"cpu{v['other_cpu']}"
        sentence = HEADLINES[kind].format(cpu=v["cpu"], mm=v["mm"], holder=holder, other=other, by=by, at=v.get("site", ""))
    if v.get("step") is not None:
        return sentence + f", at step {v['step']:,}"
    return sentence + (f", {v['t_s']:.3g} s in" if v.get("t_s") is not None else "")
