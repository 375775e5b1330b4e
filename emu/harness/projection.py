"""A cost projection for a real machine: a MODEL, not a measurement.

The emulator counts events per context switch and per mm exit (atomics on shared mm lines, IPIs,
CPUs scanned, remote slot reads); those counts do not depend on how fast the emulator is. This
module turns them into an estimated cost on a real machine of N CPUs with a handful of per-event
costs, all stated here in ``Costs`` and overridable in one place (``--cost NAME=NS``).

The model, and what it assumes:

* Every CPU runs the same loop: a context switch (``switch_ns`` of private work) plus its share
  of mm exits (``exits_per_switch`` times the exit cost below), plus ``a`` atomics on the mm's
  cache lines per switch (``mm_atomics_per_switch``).
* Those atomics land on the lines of ONE mm: the worst case, which is the published benchmarks'
  case (all threads of one process switching to idle and back). Two lines: ``mm_count`` (the lazy
  refcount atomics) and the rest of the mm's shared lines (``mm_cpumask`` updates and the like).
  Each line is a single server: an atomic holds it for one contended transfer
  (``line_transfer_ns``). N CPUs competing for them form a closed queueing network, solved
  exactly by mean value analysis: the throughput goes from N / (switch + a*transfer) with few
  CPUs to the busiest line's ceiling 1 / (a_line*transfer) with many.
* An mm exit costs its IPIs (``ipi_rtt_ns`` each, sent and waited for), its scan (``scan_ns`` per
  CPU whose slot is looked at) and its remote reads (``remote_read_ns`` each). The per-exit counts
  are taken at the measured CPU count and grown to N along the slope measured between the two
  largest CPU counts (``grow``): a scan of every CPU grows linearly, a mask-bounded shootdown less.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class CostError(ValueError):
    """A bad ``--cost`` override: reported as one line."""


@dataclass(frozen=True)
class Costs:
    """Per-event costs in nanoseconds on the projected machine (defaults: a large multi-socket
    server, round figures). ``switch_ns`` is FITTED to a published result: the POWER8's 118M
    switches/s over 192 CPUs is 1.6 us per switch, so that figure is no check of this model; the
    others are not fitted. The benchmark projection (``emu.harness.bench_projection``) uses none of
    these: its machines' constants are sourced, none fitted."""

    switch_ns: float = 1600.0  # uncontended context switch, user -> idle -> user, one CPU's work
    line_transfer_ns: float = 400.0  # a contended cache line moving between sockets (an atomic on a hot line)
    ipi_rtt_ns: float = 2000.0  # an IPI sent, handled and acknowledged (on_each_cpu_mask with wait)
    remote_read_ns: float = 150.0  # a read of another CPU's cache line that is not being written
    scan_ns: float = 5.0  # per CPU visited in a scan loop, beyond its remote read (cpumask iteration)

    @staticmethod
    def names() -> list[str]:
        return [f.name for f in dataclasses.fields(Costs)]


DEFAULT_COSTS = Costs()
MAX_COST_NS = 1e7  # 10 ms: far beyond any single event; a larger figure is a typo


def parse_cost(text: str) -> tuple[str, float]:
    """``ipi_rtt_ns=3000`` -> (name, value), or CostError with one line."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep:
        raise CostError(f"--cost: expected NAME=NANOSECONDS, got '{text}' (names: {', '.join(Costs.names())})")
    if name not in Costs.names():
        from emu.harness.config import suggest

        raise CostError(f"--cost: unknown cost '{name}' {suggest(name, Costs.names())}")
    try:
        v = float(value)
    except ValueError:
        raise CostError(f"--cost {name}: expected a number of nanoseconds, got '{value}'") from None
    if not (math.isfinite(v) and 0 <= v <= MAX_COST_NS):
        raise CostError(f"--cost {name}: must be between 0 and {MAX_COST_NS:g} ns, got '{value}'")
    return name, v


def costs_with(overrides: Mapping[str, float]) -> Costs:
    return dataclasses.replace(DEFAULT_COSTS, **overrides)


def line_throughput(n: int, think_ns: float, lines_ns: Sequence[float]) -> float:
    """Switches per second of n CPUs that each do ``think_ns`` of private work and hold each shared
    line for its ``lines_ns`` per switch: exact mean value analysis of the closed network."""
    if n <= 0:
        return 0.0
    lines = [d for d in lines_ns if d > 0]
    queues = [0.0] * len(lines)
    x = 0.0
    for k in range(1, n + 1):
        resp = [d * (1 + q) for d, q in zip(lines, queues, strict=True)]  # wait behind those already there, then hold it
        total = think_ns + sum(resp)
        if total <= 0:
            return math.inf
        x = k / total
        queues = [x * r for r in resp]
    return x * 1e9


def grow(count: float, at_cpus: int, to_cpus: int, slope: float) -> float:
    """A per-exit count measured at ``at_cpus`` projected to ``to_cpus`` along a power law."""
    if count <= 0 or at_cpus <= 0:
        return 0.0
    return count * (to_cpus / at_cpus) ** slope


def slope_of(points: Sequence[tuple[int, float]]) -> float:
    """The log-log slope between the two largest CPU counts (1 = linear, 0 = flat), clamped to
    [0, 1]; with a single point, 1 (the scans visit every CPU: assume the worst)."""
    pts = sorted((c, v) for c, v in points if c > 0)
    if len(pts) < 2:
        return 1.0
    (c1, v1), (c2, v2) = pts[-2], pts[-1]
    if c1 == c2 or v1 <= 0 or v2 <= 0:
        return 1.0 if v2 > 0 else 0.0
    return min(1.0, max(0.0, math.log(v2 / v1) / math.log(c2 / c1)))


@dataclass(frozen=True)
class Projection:
    cpus: int
    exit_ns: float  # the lazy-TLB work of one mm exit: IPIs, scan, remote reads
    switch_cost_ns: float  # one CPU's time per switch, the hot line's queue included
    switches_per_second: float  # the whole machine
    line_bound: bool  # the hot line, not the CPUs, limits the throughput

    def to_json(self) -> dict[str, float | int | bool]:
        return {
            "proj_cpus": self.cpus,
            "proj_exit_us": round(self.exit_ns / 1000, 3),
            "proj_switch_ns": round(self.switch_cost_ns, 1),
            "proj_switches_per_second": round(self.switches_per_second, 0),
            "proj_line_bound": self.line_bound,
        }


def project(
    metrics: Mapping[str, float | None],
    measured_cpus: int,
    cpus: int,
    costs: Costs = DEFAULT_COSTS,
    slopes: Mapping[str, float] | None = None,
) -> Projection:
    """The model's estimate for ``cpus`` real CPUs from one run's architecture-neutral counts."""
    slopes = slopes or {}

    def per_exit(key: str) -> float:
        return grow(float(metrics.get(key) or 0.0), measured_cpus, cpus, slopes.get(key, 1.0))

    exit_ns = (
        per_exit("ipis_per_exit") * costs.ipi_rtt_ns
        + per_exit("cpus_scanned_per_exit") * costs.scan_ns
        + per_exit("remote_slot_reads_per_exit") * costs.remote_read_ns
    )
    switches = float(metrics.get("context_switches") or 0.0)
    exits_per_switch = float(metrics.get("mm_exits") or 0.0) / switches if switches else 0.0
    think = costs.switch_ns + exits_per_switch * exit_ns
    # two hot lines of the one mm: mm_count (the lazy references) and the rest (mm_cpumask, ...)
    refs = float(metrics.get("lazy_refcount_atomics_per_switch") or 0.0)
    rest = max(0.0, float(metrics.get("mm_atomics_per_switch") or 0.0) - refs)
    lines = (refs * costs.line_transfer_ns, rest * costs.line_transfer_ns)
    x = line_throughput(cpus, think, lines)
    cpu_bound = cpus / (think + sum(lines)) * 1e9 if think + sum(lines) > 0 else math.inf
    return Projection(
        cpus=cpus,
        exit_ns=exit_ns,
        switch_cost_ns=cpus / x * 1e9 if x > 0 else math.inf,
        switches_per_second=x,
        line_bound=x < 0.5 * cpu_bound,  # the queue at the line at least doubles the switch
    )
