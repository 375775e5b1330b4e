"""A benchmark's throughput on a real machine, predicted from the emulator's per-operation counts:
a MODEL, not a measurement.

The machine is data (``emu/harness/machines/NAME.json``): sockets, cores, SMT threads and the
costs of the events the emulator counts, each with its source (a vendor document, a published
measurement, a microbenchmark anyone can rerun). A constant measured on another chip is marked
PROXY in its source, one that is assumed ASSUMED; none is fitted to a figure it is compared with
(``fitted`` lists any that would be, and that figure would then stop counting as a check). A
variant of a machine (another kernel configuration, say) names the machine whose published figures
it is priced against in ``published_as``.

The model, for ``units`` of the benchmark's parameter (will-it-scale's ``-t``, hackbench's groups):

* Placement. will-it-scale binds testcase ``i`` (and its child) to core ``i % cores``, so a pair's
  two tasks run on two threads of one core while the core has two idle per pair, and on one CPU
  once it has not (the counts carry that: no wake-up crosses CPUs then, no CPU idles;
  ``emu.workload.benchmarks.ContextSwitch1.cpu_of``); hackbench's tasks spread over cores. The busy cores
  fill CCX after CCX (``ccx_cores`` share a last-level cache) and socket after socket. A line that
  every busy CPU updates goes next to any other busy CPU alike: a thread of the same core, a core
  of the same CCX, another CCX of the socket or another socket, at ``line_smt_ns``,
  ``line_ccx_ns``, ``line_local_ns``, ``line_remote_ns``; a line only one CPU uses costs nothing,
  and so do the mm's lines when every task has an mm of its own (processes).
  A wake-up moves a line between the waker's and the wakee's CPUs: two threads of one core for a
  will-it-scale pair on an SMT machine.
* Counts. The emulator runs the benchmark with the same tasks per CPU on a few CPUs
  (``emu.harness.benchmark.tasks_for``) and counts per operation: context switches, lazy
  transitions, atomics on the mm's record line (mm_count) and on its ``mm_cpumask`` line, IPIs,
  wake-ups of a task on another CPU, remote reads, CPUs scanned and flushes by hardware broadcast
  (x86-invlpgb's INVLPGB for a global-ASID mm: no IPI). Counts that reach every other
  CPU running the mm (IPIs, remote reads, scans) grow with the busy CPUs: ``(B - 1) / (b - 1)``
  from ``b`` emulated busy CPUs to ``B`` real ones. The others, a broadcast flush too (one
  instruction reaches every CPU), are per operation whatever the size.
* Time. One operation costs its CPU time ``op_ns + ipis * ipi_rtt_ns + broadcasts *
  broadcast_flush_ns + remote_reads * remote_read_ns`` (``op_ns``, or the machine's own figure
  for that benchmark, ``benchmark_op_ns``); a chain of operations (a ping-pong pair, a tlb_flush2 thread, a hackbench
  sender) also waits for each wake-up of another CPU (a line transfer) and for an idle CPU to
  leave its idle state (``idle_exit_ns`` per lazy transition: a lazy transition here is a switch
  to the idle task and back). The mm's lines are single servers held for one transfer per
  atomic: mm_count, mm_cpumask, and, where the kernel has CONFIG_LRU_GEN_WALKS_MMU
  (``lru_gen_store``), the line of ``mm->lru_gen.bitmap``, which ``lru_gen_use_mm`` writes on every
  switch to a user task (``OpCounts.user_switches``) under every scheme; the chains form a closed
  network with them, solved exactly by mean value analysis
  (``emu.harness.projection.line_throughput``). A benchmark also declares the kernel's own lines its
  path writes outside the lazy-TLB code (``BenchSpec.kernel_lines``: tlb_flush2's lruvec ``lru_lock``,
  ``mmap_lock``, ``tlb_flush_pending``, x86's ``tlb_gen``), each with the line transfers an operation
  makes there COUNTED from the kernel source; they join the network as servers like the mm's lines
  (a lock every busy CPU takes whatever the mm). The CPUs cap the rate: the busy cores deliver at
  most ``smt_core_throughput`` threads' worth each. ``Prediction.flush_share`` is the IPIs' and
  broadcasts' share of a task's whole time per operation, its waits at the lines included (a CPU
  spinning on a lock is busy, and the series' profile is of CPU time). When the tasks outnumber the CPUs every CPU has a
  runnable task, so the lazy transitions (and their atomics) fall away in the counts themselves.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from emu.harness.benchmark import BENCHMARKS, GLOBAL_ASID_ARCHES, BenchSpec, OpCounts
from emu.harness.config import ConfigError, suggest
from emu.harness.projection import line_throughput

CONSTANTS = (
    "sockets",
    "cores",
    "smt",
    "ccx_cores",
    "op_ns",
    "idle_exit_ns",
    "line_smt_ns",
    "line_ccx_ns",
    "line_local_ns",
    "line_remote_ns",
    "ipi_rtt_ns",
    "remote_read_ns",
    "smt_core_throughput",
    "lru_gen_store",
    "broadcast_flush_ns",
    "zap_lru_add_drain",
)
MEANINGS = {
    "sockets": "sockets",
    "cores": "cores in all",
    "smt": "hardware threads per core (CPUs = cores x smt)",
    "ccx_cores": "cores that share a last-level cache (AMD's core complex, CCX); cores per socket where there is no such level",
    "op_ns": "an uncontended operation's CPU time: a pipe write that wakes a task, and the switch",
    "idle_exit_ns": "an idle CPU's wake-up latency (its idle state's exit)",
    "line_smt_ns": "a cache line moving between two threads of one core",
    "line_ccx_ns": "a cache line moving between cores of one CCX (they share its L3)",
    "line_local_ns": "a cache line moving between cores of one socket in different CCXs (a contended atomic)",
    "line_remote_ns": "a cache line moving between sockets",
    "ipi_rtt_ns": "an IPI sent, handled and acknowledged",
    "remote_read_ns": "a read of a line another CPU wrote",
    "smt_core_throughput": "threads' worth of work a core delivers with every SMT thread busy",
    "lru_gen_store": "1 if context_switch's lru_gen_use_mm() writes the mm on every switch to a user task (CONFIG_LRU_GEN_WALKS_MMU)",
    "broadcast_flush_ns": "a flush by hardware broadcast, paid by the flushing CPU (x86 INVLPGB + TLBSYNC, powerpc tlbie + tlbsync)",
    "zap_lru_add_drain": "1 if zap_page_range_single() calls lru_add_drain() (mainline before van Riel's removal; 0: with it)",
}


@dataclass(frozen=True)
class Machine:
    name: str
    description: str
    arch: str
    published_tasks: int
    published_tasks_source: str
    values: dict[str, float]
    sources: dict[str, str]
    fitted: tuple[str, ...]
    published_as: str = ""  # the machine whose published figures these are (a variant of it names it)
    # an operation's CPU time measured for one benchmark on this machine's core, in place of op_ns (with its source)
    bench_op_ns: dict[str, float] = field(default_factory=dict)
    bench_op_sources: dict[str, str] = field(default_factory=dict)

    def op_ns(self, benchmark: str) -> float:
        return self.bench_op_ns.get(benchmark, self.values["op_ns"])

    @property
    def cpus(self) -> int:
        return int(self.values["cores"] * self.values["smt"])


def machine_names() -> list[str]:
    files = resources.files("emu.harness").joinpath("machines")
    return sorted(p.name.removesuffix(".json") for p in files.iterdir() if p.name.endswith(".json"))


def load_machine(name: str) -> Machine:
    """``emu/harness/machines/NAME.json``; ConfigError (one line) for an unknown name or a file
    with a constant missing, without a source, or out of range."""
    names = machine_names()
    if name not in names:
        raise ConfigError(f"unknown machine '{name}' {suggest(name, names)}")
    return parse_machine(name, resources.files("emu.harness").joinpath("machines").joinpath(f"{name}.json").read_text())


def parse_machine(name: str, text: str) -> Machine:
    """A machine file's text, checked: every constant present, with a value >= 0 and a source."""
    try:
        d = json.loads(text)
        consts = d["constants"]
        values, sources = {}, {}
        for key in CONSTANTS:
            c = consts[key]
            v, src = float(c["value"]), str(c["source"]).strip()
            if not src or not math.isfinite(v) or v < 0:
                raise ValueError(f"constant '{key}' needs a value >= 0 and a source")
            values[key], sources[key] = v, src
        unknown = set(consts) - set(CONSTANTS)
        if unknown:
            raise ValueError(f"unknown constants {sorted(unknown)}")
        for key in ("sockets", "cores", "smt"):
            if values[key] < 1 or values[key] != int(values[key]):
                raise ValueError(f"'{key}' must be a whole number >= 1")
        if values["cores"] % values["sockets"]:
            raise ValueError("cores must divide evenly among the sockets")
        if values["ccx_cores"] < 1 or (values["cores"] // values["sockets"]) % values["ccx_cores"]:
            raise ValueError("'ccx_cores' must divide the cores of a socket evenly")
        for key in ("lru_gen_store", "zap_lru_add_drain"):
            if values[key] not in (0, 1):
                raise ValueError(f"'{key}' is 0 or 1 (a kernel configuration, not a cost)")
        fitted = tuple(str(f) for f in d.get("fitted", []))
        if set(fitted) - set(CONSTANTS):
            raise ValueError(f"'fitted' names unknown constants {sorted(set(fitted) - set(CONSTANTS))}")
        bench_op, bench_src = {}, {}
        for bench, c in d.get("benchmark_op_ns", {}).items():
            v, src = float(c["value"]), str(c["source"]).strip()
            if bench not in BENCHMARKS or not src or not math.isfinite(v) or v <= 0:
                raise ValueError(f"benchmark_op_ns '{bench}' needs a known benchmark, a value > 0 and a source")
            bench_op[bench], bench_src[bench] = v, src
        pub = d["published_tasks"]
        return Machine(
            name=d["name"], description=d["description"], arch=d["arch"], published_tasks=int(pub["value"]),
            published_tasks_source=str(pub["source"]), values=values, sources=sources, fitted=fitted,
            published_as=str(d.get("published_as", d["name"])), bench_op_ns=bench_op, bench_op_sources=bench_src,
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        raise ConfigError(f"machine '{name}': bad file ({e})") from None


@dataclass(frozen=True)
class Prediction:
    strategy: str
    units: int
    ops_per_s: float
    bound: str  # "line" (a shared line's queue), "cpu" (the busy cores), "latency" (the chains' own time)
    transfer_ns: float  # a line transfer, the socket mix priced in
    latency_ns: float  # one operation of a chain, uncontended
    cpu_ns: float  # one operation's CPU time
    sockets_used: int
    busy_cpus: int
    flush_ns: float = 0.0  # of cpu_ns, the TLB invalidation: flush IPIs' round trips and broadcast flushes
    chains: int = 1  # operations in flight at once
    busiest: str = ""  # the shared line with the most demand an operation ("" if none)
    line_ns: dict[str, float] = field(default_factory=dict)  # each shared line's demand an operation (transfers x their cost)

    @property
    def cycle_ns(self) -> float:
        """A chain's time per operation at the predicted rate: its latency plus its waits at the shared lines."""
        return self.chains / self.ops_per_s * 1e9 if self.ops_per_s else math.inf

    @property
    def flush_share(self) -> float:
        """TLB invalidation's share of a chain's time (the series' profile gives it as a share of CPU time: a CPU
        spinning on a lock or stalled on a contended atomic is busy, so the waits at the lines count; a
        will-it-scale thread of tlb_flush2 never sleeps). Without a queue it is the share of the CPU time."""
        return self.flush_ns / max(self.cpu_ns, self.cycle_ns) if self.cpu_ns else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy, "tasks": self.units, "ops_per_s": round(self.ops_per_s), "bound": self.bound,
            "transfer_ns": round(self.transfer_ns, 1), "latency_ns": round(self.latency_ns, 1), "cpu_ns": round(self.cpu_ns, 1),
            "sockets_used": self.sockets_used, "busy_cpus": self.busy_cpus, "flush_ns": round(self.flush_ns, 1),
            "flush_share": round(self.flush_share, 4), "busiest_line": self.busiest,
            "line_ns": {k: round(v, 1) for k, v in self.line_ns.items()},
        }  # fmt: skip


def placement(spec: BenchSpec, m: Machine, units: int) -> tuple[int, int, int, float]:
    """(busy CPUs, busy cores, sockets spanned, threads per busy core) for ``units`` on ``m``."""
    tasks = units * spec.tasks_per_unit
    cores, smt, sockets = int(m.values["cores"]), int(m.values["smt"]), int(m.values["sockets"])
    busy_cpus = min(tasks, cores * smt)
    # main.c pins testcase i (and the child it creates) on core i % cores; hackbench's tasks spread
    busy_cores = min(cores, math.ceil(busy_cpus / smt)) if spec.name.startswith("hackbench") else min(cores, units)
    per_socket = cores // sockets
    used = min(sockets, math.ceil(busy_cores / per_socket))
    return busy_cpus, busy_cores, used, min(float(smt), tasks / busy_cores)


def transfer_ns(m: Machine, busy_cores: int, per_core: float) -> float:
    """A line updated by every busy CPU in turn: its next owner is any other busy CPU alike. The
    busy cores fill CCX after CCX and socket after socket (will-it-scale's core order), so a CPU's
    others are its core's siblings, its CCX's, its socket's and the other sockets' busy CPUs."""
    busy = busy_cores * per_core
    if busy <= 1:
        return 0.0
    v = m.values
    per_socket, ccx = int(v["cores"] // v["sockets"]), int(v["ccx_cores"])
    total = 0.0
    for core in range(busy_cores):
        in_ccx = min(busy_cores, (core // ccx + 1) * ccx) - core // ccx * ccx
        in_socket = min(busy_cores, (core // per_socket + 1) * per_socket) - core // per_socket * per_socket
        total += per_core * (
            (per_core - 1) * v["line_smt_ns"]
            + (in_ccx - 1) * per_core * v["line_ccx_ns"]
            + (in_socket - in_ccx) * per_core * v["line_local_ns"]
            + (busy_cores - in_socket) * per_core * v["line_remote_ns"]
        )
    return total / busy / (busy - 1)


def wakeup_ns(spec: BenchSpec, m: Machine, xfer: float) -> float:
    """The line a wake-up moves between waker and wakee: a will-it-scale pair's tasks share a core."""
    if not spec.name.startswith("hackbench") and m.values["smt"] >= 2:
        return m.values["line_smt_ns"]
    return xfer


def predict(spec: BenchSpec, m: Machine, units: int, counts: OpCounts) -> Prediction:
    """The model's operations per second for ``units`` of ``spec`` on ``m`` from ``counts``
    (measured with the same tasks per CPU)."""
    v = m.values
    busy_cpus, busy_cores, used, per_core = placement(spec, m, units)
    xfer = transfer_ns(m, busy_cores, busy_cpus / busy_cores)
    emu_busy = min(counts.units * spec.tasks_per_unit, counts.cpus)
    grow = (busy_cpus - 1) / (emu_busy - 1) if emu_busy > 1 else 1.0
    per = counts.per_op
    ipis = counts.ipis * grow
    reads = per["remote_slot_reads"] * grow
    # a broadcast flush (INVLPGB + TLBSYNC) reaches every CPU in one instruction: its count does not grow
    flush_ns = ipis * v["ipi_rtt_ns"] + counts.broadcasts * v["broadcast_flush_ns"]
    cpu_ns = m.op_ns(spec.name) + flush_ns + reads * v["remote_read_ns"]
    latency = cpu_ns + per["remote_wakeups"] * wakeup_ns(spec, m, xfer) + per["lazy_switches"] * v["idle_exit_ns"]
    # the mm's lines: mm_count, mm_cpumask and (CONFIG_LRU_GEN_WALKS_MMU) lru_gen.bitmap, written by
    # every switch to a user task; shared by the busy CPUs only when the tasks share one mm (threads)
    mm_xfer = xfer if spec.driver.clone_vm else 0.0
    named = {
        "mm_count": counts.count_line_atomics * mm_xfer,
        "mm_cpumask": counts.mask_line_atomics * mm_xfer,
        "lru_gen": v["lru_gen_store"] * counts.user_switches * mm_xfer,
    }
    # the kernel's own lines on the benchmark's path (a lock, the mm's flush counters), counted from the source
    drain = bool(v["zap_lru_add_drain"])
    for kl in spec.kernel_lines:
        named[kl.name] = kl.transfers_per_op(per, counts.arch, drain) * (mm_xfer if kl.per_mm else xfer)
    lines = tuple(named.values())
    busiest = max(named, key=lambda k: named[k]) if any(d > 0 for d in lines) else ""
    chains = spec.chains(units)
    x_net = line_throughput(chains, latency, lines)
    cores_worth = busy_cores * min(per_core, v["smt_core_throughput"])
    x_cpu = cores_worth / cpu_ns * 1e9
    if x_cpu < x_net:
        bound, x = "cpu", x_cpu
    else:
        free = chains / (latency + sum(lines)) * 1e9  # the chains with the lines never queued
        bound, x = ("line" if x_net < 0.9 * free else "latency"), x_net
    return Prediction(counts.strategy, units, x, bound, xfer, latency, cpu_ns, used, busy_cpus, flush_ns, chains, busiest, named)


# -- the published figures of the reference's section 9 ---------------------------------------------


@dataclass(frozen=True)
class Published:
    """One published figure: an absolute rate of one scheme, or a ratio of two at a task count."""

    machine: str
    benchmark: str
    tasks: int
    strategy: str
    ops_per_s: float | None  # an absolute figure
    ratio_to: str | None  # or the ratio strategy / ratio_to
    ratio: float | None
    source: str
    # the kernel it was measured on: with INVLPGB's broadcasts (True: priced with --arch x86-invlpgb only), without
    # (False: with any other arch), or either (None)
    invlpgb: bool | None = None
    flush_share: float | None = None  # or TLB invalidation's share of the CPU time (a profile)
    # with zap_page_range_single's lru_add_drain() (True: mainline), without it (False: van Riel's removal), or either
    drain: bool | None = None

    def applies_to(self, arch: str, drain: bool | None = None) -> bool:
        return (self.invlpgb is None or self.invlpgb == (arch in GLOBAL_ASID_ARCHES)) and (
            drain is None or self.drain is None or self.drain == drain
        )

    def text(self) -> str:
        if self.flush_share is not None:
            return f"{self.strategy} at -t {self.tasks}: TLB invalidation {self.flush_share:.0%} of CPU time"
        if self.ops_per_s is not None:
            return f"{self.strategy} at -t {self.tasks}: {self.ops_per_s:,.0f} ops/s"
        return f"{self.strategy} / {self.ratio_to} at -t {self.tasks}: {self.ratio or 0:.3f}"


PIGGIN = "Piggin, '[PATCH v7 5/5] powerpc/64s: enable MMU_LAZY_TLB_SHOOTDOWN', 20230203071837.1136453-6-npiggin@gmail.com"
PIGGIN_RAW = "Piggin, 'Re: [PATCH v6 4/5] powerpc/64s: enable MMU_LAZY_TLB_SHOOTDOWN' (19 Jan 2023), CPVU13AC1206.2SHGMTJDZK6H8@bobo"
DESNOYERS = "Desnoyers, hazptr RFC v2/v3 cover (20241004182734.1761555-1-mathieu.desnoyers@efficios.com), will-it-scale speedup table"
RIEL = "van Riel, INVLPGB v14 10/13, 20250226030129.530345-11-riel@surriel.com"
RIEL_COVER = "van Riel, INVLPGB v5 and v7 covers (http://mail.spinics.net/lists/linux-mm/msg420067.html, msg420808.html)"
_CURVE = ((1, -0.2), (2, 0.4), (3, 0.2), (6, 0.6), (12, 0.8), (24, 3), (48, 12), (96, 21), (192, 28), (384, 4), (768, -0.6))
PUBLISHED: tuple[Published, ...] = (
    Published("power8-192", "context_switch1_threads", 768, "refcount", 1.0e6, None, None, PIGGIN + ": 'about 1 million'"),
    Published("power8-192", "context_switch1_threads", 768, "shoot-lazies", 118e6, None, None, PIGGIN + ": '118 million'"),
    # the same run's will-it-scale output, and the run with two tasks a CPU (user -> user: no lazy transition)
    Published("power8-192", "context_switch1_threads", 768, "refcount", 1_827_952, None, None, PIGGIN_RAW + ": '-t 768 ... total:1827952'"),
    Published(
        "power8-192", "context_switch1_threads", 1536, "refcount", 177_201_906, None, None, PIGGIN_RAW + ": '-t 1536 ... total:177201906'"
    ),
    *(
        Published("epyc-9654-2s", "context_switch1_threads", t, "hazptr", None, "refcount", 1 + p / 100, f"{DESNOYERS}: -t {t}: {p:+g}%")
        for t, p in _CURVE
    ),
    Published(
        "milan-36", "tlb_flush2_threads", 36, "refcount", 527e3, None, None, f"{RIEL}: 'vanilla kernel: 527k loops/second'", False,
        drain=True,
    ),
    Published("milan-36", "tlb_flush2_threads", 36, "refcount", None, None, None, f"{RIEL}: 'went down from 40%'", False, 0.40, True),
    Published(
        "milan-36", "tlb_flush2_threads", 36, "refcount", 731e3, None, None, f"{RIEL_COVER}: 'lru_add_drain removal: 731k loops/second'",
        False, drain=False,
    ),
    Published(
        "milan-36", "tlb_flush2_threads", 36, "refcount", 527e3, None, None, f"{RIEL}: 'only INVLPGB: 527k loops/second'", True, drain=True
    ),
    Published("milan-36", "tlb_flush2_threads", 36, "refcount", None, None, None, f"{RIEL}: 'to only around 4%'", True, 0.04, True),
    Published(
        "milan-36", "tlb_flush2_threads", 36, "refcount", 1157e3, None, None, f"{RIEL}: 'lru_add_drain + INVLPGB: 1157k loops/second'",
        True, drain=False,
    ),
)  # fmt: skip
NOT_MODELLED = (
    ("314 additional IPIs over a kernel compile with shoot-lazies, 144-CPU system", "a kernel build is not one of the benchmark loads"),
)


def published_for(machine: str, benchmark: str, arch: str | None = None, drain: bool | None = None) -> list[Published]:
    """The published figures of ``benchmark`` on ``machine``, those measured on a kernel like ``arch``'s (all if
    None) and with (``drain``: True) or without (False) zap_page_range_single's lru_add_drain() (either if None)."""
    return [
        p for p in PUBLISHED
        if p.machine == machine and p.benchmark == benchmark and (arch is None or p.applies_to(arch, drain))
    ]  # fmt: skip


# -- the whole comparison: measure, then price -------------------------------------------------------

DEFAULT_STRATEGIES = ("refcount", "shoot-lazies", "hazptr", "luto-hazard")
MAX_TASKS = 1_000_000


@dataclass
class BenchComparison:
    benchmark: str
    machine: Machine
    arch: str
    rows: list[Prediction]
    counts: dict[tuple[str, int], OpCounts]  # (strategy, emulated units) -> counts
    emulated: dict[int, int]  # units -> emulated units

    def find(self, strategy: str | None, units: int) -> Prediction | None:
        return next((p for p in self.rows if p.strategy == strategy and p.units == units), None)

    def published_points(self) -> list[Published]:
        return published_for(self.machine.published_as, self.benchmark, self.arch, bool(self.machine.values["zap_lru_add_drain"]))

    def published(self) -> list[tuple[Published, str]]:
        """Each published figure of this machine and benchmark with the prediction beside it."""
        out = []
        for q in self.published_points():
            row, base = self.find(q.strategy, q.tasks), self.find(q.ratio_to, q.tasks)
            if row is None or (q.ratio_to and base is None):
                out.append((q, "- (that scheme or task count is not in this comparison)"))
            elif q.flush_share is not None:
                out.append((q, f"{row.flush_share:.1%} ({row.flush_share / q.flush_share:.2f} x the figure)"))
            elif q.ops_per_s is not None:
                out.append((q, f"{row.ops_per_s:,.0f} ops/s ({row.ops_per_s / q.ops_per_s:.2f} x the figure)"))
            elif base is not None and q.ratio:
                r = row.ops_per_s / base.ops_per_s
                out.append((q, f"{r:.3f} ({r / q.ratio:.2f} x the figure)"))
        return out

    def ratio(self, p: Prediction) -> float:
        first = next(r for r in self.rows if r.units == p.units)
        return p.ops_per_s / first.ops_per_s if first.ops_per_s else math.nan

    def to_json(self) -> dict[str, Any]:
        rows = []
        for p in self.rows:
            c = self.counts[(p.strategy, self.emulated[p.units])]
            rows.append({**p.to_json(), "ratio_to_first": round(self.ratio(p), 4), "emulated_tasks": c.units, "counts": c.to_json()})
        m = self.machine
        return {
            "benchmark": self.benchmark,
            "machine": m.name,
            "arch": self.arch,
            "rows": rows,
            "model": "emu.harness.bench_projection",
            "machine_constants": {k: {"value": m.values[k], "source": m.sources[k]} for k in CONSTANTS},
            "benchmark_op_ns": {b: {"value": v, "source": m.bench_op_sources[b]} for b, v in m.bench_op_ns.items()},
            "fitted": list(m.fitted),
            "published_as": m.published_as,
            "published": [
                {
                    "tasks": q.tasks,
                    "strategy": q.strategy,
                    "ops_per_s": q.ops_per_s,
                    "ratio_to": q.ratio_to,
                    "ratio": q.ratio,
                    "flush_share": q.flush_share,
                    "invlpgb": q.invlpgb,
                    "drain": q.drain,
                    "source": q.source,
                }
                for q in self.published_points()
            ],
        }


def compare_benchmark(
    benchmark: str, machine: str, tasks: list[int] | None = None, strategies: list[str] | None = None, arch: str | None = None,
    progress: Any = None, seed: int | None = None,
) -> BenchComparison:  # fmt: skip
    """Measure each scheme on the benchmark with the tasks per CPU of each task count, and price
    the counts on the machine. ``tasks`` defaults to the published run's; ``arch`` to the machine's;
    ``seed`` (the emulated runs' schedule) to ``MEASURE_SEED``."""
    from emu.arch import ARCHES
    from emu.harness.benchmark import MEASURE_SEED, measure, measure_cpus, spec_of, tasks_for
    from emu.strategies import STRATEGIES

    spec = spec_of(benchmark)
    m = load_machine(machine)
    arch = arch or m.arch
    if arch not in ARCHES:
        raise ConfigError(f"unknown architecture '{arch}' {suggest(arch, sorted(ARCHES))}")
    strategies = strategies or list(DEFAULT_STRATEGIES)
    for s in strategies:
        if s not in STRATEGIES:
            raise ConfigError(f"unknown strategy '{s}' {suggest(s, sorted(STRATEGIES))}")
    tasks = tasks or [m.published_tasks]
    for t in tasks:
        if not 1 <= t <= MAX_TASKS:
            raise ConfigError(f"--tasks must be between 1 and {MAX_TASKS:,}, got {t}")
    cpus = measure_cpus(arch)
    emulated = {t: tasks_for(spec, t, m.cpus, cpus) for t in tasks}
    counts: dict[tuple[str, int], OpCounts] = {}
    rows = []
    for t in tasks:
        for s in strategies:
            key = (s, emulated[t])
            if key not in counts:
                if progress:
                    progress(f"measuring {benchmark} under {s} on {arch}: {emulated[t]} on {cpus} emulated CPUs")
                counts[key] = measure(benchmark, s, arch, emulated[t], cpus=cpus, seed=MEASURE_SEED if seed is None else seed)
            rows.append(predict(spec, m, t, counts[key]))
    return BenchComparison(benchmark, m, arch, rows, counts, emulated)
