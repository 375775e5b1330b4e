"""Running a benchmark-shaped load (``emu.workload.benchmarks``) and counting its costs per operation.

A benchmark's run is an ordinary run of the emulator with the benchmark's driver in place of the
synthetic load, under a deterministic schedule (``--sched random``: one CPU at a time, each
scheduling point handed to a CPU drawn from the seed), so the same configuration always gives the
same counts. ``random`` rather than ``pct``: pct lets one CPU run alone until it blocks, so almost
every pipe reader is woken between setting TASK_INTERRUPTIBLE and switching out, a race a real
machine, whose wake-ups take microseconds, loses far less often; the structure of the benchmark
(a switch to idle per read when every task has its own CPU) shows under ``random``.

The counts are per benchmark operation (an iteration of will-it-scale, a hackbench message) in the
steady state: two runs of ``steps`` and ``2 * steps`` scheduling points from the same seed share
their start and their drain, so the difference of their counts is what ``steps`` more points of
the load cost. The emulated machine keeps the benchmark's tasks per CPU: ``tasks_for`` maps a task
count on the real machine to the emulated one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from emu.harness.config import ConfigError, RunConfig, Workload
from emu.workload.benchmarks import DRIVERS, Benchmark

MEASURE_CPUS = 4  # emulated CPUs: enough for two pairs on CPUs of their own, small enough for a 2-core host
# x86-invlpgb gives an mm a global ASID (its flushes then broadcasts, no IPIs) only once it runs on more than 3
# CPUs (mm_active_cpus_exceeds(mm, 3), 4afeb0ed1753): 8 emulated CPUs let a load of one task per two CPUs (-t 36 on
# milan-36's 72) run on 4, as the real one runs on 36
GLOBAL_ASID_CPUS = 8
GLOBAL_ASID_ARCHES = frozenset({"x86-invlpgb"})  # its flushes of a global-ASID mm are INVLPGB broadcasts


def measure_cpus(arch: str) -> int:
    """The emulated CPUs a benchmark is counted on under ``arch``."""
    return GLOBAL_ASID_CPUS if arch in GLOBAL_ASID_ARCHES else MEASURE_CPUS


MEASURE_STEPS = 20_000
MEASURE_SEED = 1
MEASURE_SCHED = "random"


@dataclass(frozen=True)
class KernelLine:
    """A line of the kernel's own that an operation writes and that every busy CPU writes in turn: a
    lock or a counter on the benchmark's path outside the lazy-TLB code the emulator runs. Its cost is
    COUNTED from the kernel source (``source``), not measured: ``transfers`` line transfers an
    operation (``per``: an operation, or each of a counted event, e.g. ``tlb_flushes``), and
    ``without_drain`` in place of it on a kernel without ``zap_page_range_single``'s
    ``lru_add_drain()`` (the machine's ``zap_lru_add_drain`` = 0: van Riel's removal)."""

    name: str
    transfers: float
    source: str
    per_mm: bool = True  # a line of the mm: shared only by threads of one process
    per: str = ""  # "" (an operation) or a PER_OP counter the transfers are paid on
    without_drain: float | None = None
    arch_family: str = ""  # "": every arch; else only the arch models whose name starts with it

    def transfers_per_op(self, per_op: dict[str, float], arch: str, drain: bool) -> float:
        if self.arch_family and not arch.startswith(self.arch_family):
            return 0.0
        t = self.transfers if drain or self.without_drain is None else self.without_drain
        return t * (per_op[self.per] if self.per else 1.0)


# folio_batch_move_lru() and folios_put_refs() take the lruvec's lru_lock once a batch; a batch holds
# PAGEVEC_SIZE folios (include/linux/pagevec.h: 31 since v6.8)
PAGEVEC_SIZE = 31
# a section on the lru_lock: the lock's line, then the lines it writes that another CPU wrote last (list_add:
# the lruvec's list head and the old first folio's lru; list_del: the two neighbours' lru; update_lru_size: the
# memcg's lru_zone_size); the vmstat counters (__mod_lruvec_state) are per-CPU
LRU_SECTION_TRANSFERS = 4
V613 = "v6.13"
TLB_FLUSH2_KERNEL_LINES = (
    KernelLine(
        "lru_lock", 2 * LRU_SECTION_TRANSFERS,
        f"COUNTED ({V613}): the write fault's folio_add_lru_vma() puts the folio in this CPU's lru_add batch "
        "(mm/swap.c); madvise(MADV_DONTNEED)'s zap_page_range_single() calls lru_add_drain() (mm/memory.c), which "
        "moves that one folio to the LRU under the lruvec's lru_lock (folio_batch_move_lru: one section), and "
        "tlb_finish_mmu() frees it, taking it off the LRU under the same lock (folios_put_refs -> "
        "__page_cache_release: a second section). Without that lru_add_drain() the batch moves PAGEVEC_SIZE "
        "folios a section and frees them together: two sections per 31 iterations. A section is "
        f"{LRU_SECTION_TRANSFERS} transfers (the lock's line; list_add's head and old first folio, or list_del's two "
        "neighbours; the memcg's lru_zone_size). ASSUMED: one lruvec (one NUMA node, one memory cgroup), shared by "
        "every busy CPU",
        per_mm=False, without_drain=2 * LRU_SECTION_TRANSFERS / PAGEVEC_SIZE,
    ),
    KernelLine(
        "mmap_lock", 2,
        f"COUNTED ({V613}): madvise() takes mmap_read_lock for MADV_DONTNEED (mm/madvise.c, "
        "madvise_need_mmap_write() returns 0 for it): down_read() and up_read() are one atomic each on "
        "mm->mmap_lock's count (kernel/locking/rwsem.c). The faults take the VMA's own lock "
        "(lock_vma_under_rcu), not priced: each thread's mapping is ASSUMED a VMA of its own",
    ),
    KernelLine(
        "tlb_flush_pending", 2,
        f"COUNTED ({V613}): tlb_gather_mmu() -> inc_tlb_flush_pending(), tlb_finish_mmu() -> "
        "dec_tlb_flush_pending() (mm/mmu_gather.c, include/linux/mm_types.h): an atomic each on the mm's "
        "tlb_flush_pending",
    ),
    KernelLine(
        "tlb_gen", 1,
        f"COUNTED ({V613}): flush_tlb_mm_range() -> inc_mm_tlb_gen(): atomic64_inc_return on "
        "mm->context.tlb_gen (arch/x86/mm/tlb.c, arch/x86/include/asm/mmu_context.h), once a flush; the "
        "emulator runs it on a line of its own and does not count it among the mm's atomics",
        per="tlb_flushes", arch_family="x86",
    ),
)  # fmt: skip


@dataclass(frozen=True)
class BenchSpec:
    name: str
    what: str  # what one operation is
    param: str  # what --tasks counts, in the benchmark's words
    source: str
    # the kernel's own shared lines on the operation's path (beyond the mm's, which the emulator counts)
    kernel_lines: tuple[KernelLine, ...] = ()

    @property
    def driver(self) -> type[Benchmark]:
        return DRIVERS[self.name]

    @property
    def tasks_per_unit(self) -> int:
        return self.driver.tasks_per_unit

    def chains(self, units: int) -> int:
        """Operations that can be in flight at once: a ping-pong pair has one, a tlb_flush2 thread
        one, a hackbench group one per sender."""
        if self.name.startswith("context_switch1"):
            return units
        if self.name.startswith("hackbench"):
            return units * self.tasks_per_unit // 2
        return units


WIS = "antonblanchard/will-it-scale"
BENCHMARKS: dict[str, BenchSpec] = {
    "context_switch1_threads": BenchSpec(
        "context_switch1_threads", "one byte through a pipe (an iteration)", "-t: ping-pong pairs, threads of one process",
        f"{WIS} tests/context_switch1.c, main.c (THREADS)",
    ),
    "context_switch1_processes": BenchSpec(
        "context_switch1_processes", "one byte through a pipe (an iteration)", "-t: ping-pong pairs, each task a process",
        f"{WIS} tests/context_switch1.c, main.c",
    ),
    "tlb_flush2_threads": BenchSpec(
        "tlb_flush2_threads", "one madvise(MADV_DONTNEED) of a touched page (an iteration)", "-t: threads of one process",
        f"{WIS} tests/tlb_flush2.c, main.c (THREADS)", TLB_FLUSH2_KERNEL_LINES,
    ),
    "hackbench": BenchSpec(
        "hackbench", "one message", "groups of 20 senders and 20 receivers, processes", "perf bench sched messaging (hackbench.c)"
    ),
    "hackbench_threads": BenchSpec(
        "hackbench_threads", "one message", "groups of 20 senders and 20 receivers, threads (-t)",
        "perf bench sched messaging -t (hackbench.c)",
    ),
}  # fmt: skip


def spec_of(name: str) -> BenchSpec:
    from emu.harness.config import suggest

    if name not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark '{name}' {suggest(name, sorted(BENCHMARKS))}")
    return BENCHMARKS[name]


def tasks_for(spec: BenchSpec, units: int, machine_cpus: int, emu_cpus: int = MEASURE_CPUS) -> int:
    """The emulated benchmark's parameter for ``units`` on a machine of ``machine_cpus``: the same
    tasks per CPU, rounded; at least one unit (with fewer tasks than CPUs every task has a CPU of
    its own either way, which is what the counts depend on)."""
    per_cpu = units * spec.tasks_per_unit / machine_cpus
    return max(1, round(per_cpu * emu_cpus / spec.tasks_per_unit))


def bench_workload(name: str, units: int, cpus: int, base: Workload) -> Workload:
    """``base`` with pools that hold every task of benchmark ``name`` (``units``; 0: its default) and
    its main task on cpu0, where the main task creates them, and no kernel threads (a quiet machine)."""
    driver = DRIVERS[name]
    total = driver.tasks_of(units or driver.default_units(cpus)) + 1
    procs = math.ceil(cpus * total / 3) + 1  # Layout: 3 * procs * threads / cpus + 8 user tasks per CPU
    return replace(base, procs=procs, threads=1, kthreads=0)


def bench_config(
    name: str, strategy: str, arch: str, units: int, cpus: int = MEASURE_CPUS, steps: int = MEASURE_STEPS,
    seed: int = MEASURE_SEED, fix: str = "",
) -> RunConfig:  # fmt: skip
    """A run of benchmark ``name`` with ``units`` (-t, groups) on ``cpus`` emulated CPUs. Its pools
    hold every task and mm on cpu0, where the main task creates them (``Layout.for_run``)."""
    spec_of(name)
    wl = bench_workload(name, units, cpus, Workload())
    shoot_all = strategy == "shoot-lazies" and arch == "arm64"  # the matrix's correct configuration there
    return RunConfig(
        cpus=cpus, strategy=strategy, arch=arch, duration=1.0, seed=seed, workload=wl, sched=MEASURE_SCHED, steps=steps,
        benchmark=name, bench_tasks=units, shoot_all=shoot_all, fix=fix,
    )  # fmt: skip


# what is counted per operation, from a run's counters
PER_OP = (
    "context_switches",
    "lazy_switches",
    "lazy_refcount_atomics",
    "mm_atomics",
    "mask_atomics",
    "ipis_sent",
    "ipis_flush",
    "ipis_shootdown",
    "ipis_check",
    "ipis_exit",
    "remote_wakeups",
    "tlb_flushes",
    "cpus_scanned",
    "remote_slot_reads",
    "mm_line_atomics",
    "tlb_broadcasts",
)


@dataclass
class OpCounts:
    """Per benchmark operation, in the steady state: what the projection prices."""

    benchmark: str
    strategy: str
    arch: str
    cpus: int
    units: int
    per_op: dict[str, float]
    ops: int  # operations in the difference of the two runs
    verdicts: list[str] = field(default_factory=list)

    @property
    def count_line_atomics(self) -> float:
        """Atomics on the mm record's line (mm_count, mm_users): the mm-line atomics not on the mask."""
        return max(0.0, self.per_op["mm_atomics"] - self.per_op["mask_atomics"])

    @property
    def user_switches(self) -> float:
        """Switches to a user task: every switch but those to the idle task (a lazy transition is
        one switch to idle; the benchmark loads run no kernel threads)."""
        return max(0.0, self.per_op["context_switches"] - self.per_op["lazy_switches"])

    @property
    def mask_line_atomics(self) -> float:
        return self.per_op["mask_atomics"]

    @property
    def broadcasts(self) -> float:
        """Flushes by hardware broadcast (INVLPGB for a global-ASID mm, tlbie, TLBI): no IPI."""
        return self.per_op["tlb_broadcasts"]

    @property
    def ipis(self) -> float:
        """IPIs of the running load (those of the final teardown are per exit, not per operation)."""
        return max(0.0, self.per_op["ipis_sent"] - self.per_op["ipis_exit"])

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark, "strategy": self.strategy, "arch": self.arch, "emulated_cpus": self.cpus,
            "emulated_tasks": self.units, "ops": self.ops, "per_op": {k: round(v, 4) for k, v in self.per_op.items()},
            "count_line_atomics": round(self.count_line_atomics, 4), "mask_line_atomics": round(self.mask_line_atomics, 4),
            "ipis": round(self.ipis, 4), "broadcasts": round(self.broadcasts, 4), "verdicts": self.verdicts,
        }  # fmt: skip


class MeasureError(RuntimeError):
    """A benchmark's run failed (its harness), so there are no counts to price."""


def measure(
    name: str, strategy: str, arch: str, units: int, cpus: int = MEASURE_CPUS, steps: int = MEASURE_STEPS,
    seed: int = MEASURE_SEED, fix: str = "",
) -> OpCounts:  # fmt: skip
    """Per-operation counts of ``strategy`` on ``arch`` running benchmark ``name`` with ``units``."""
    from emu.harness.runner import run

    reports = []
    for n in (steps, 2 * steps):
        r = run(bench_config(name, strategy, arch, units, cpus, n, seed, fix))
        if r.status == 3:
            raise MeasureError(f"{name} under {strategy} on {arch}: {r.harness.get('error')}")
        reports.append(r)
    a, b = (r.metrics for r in reports)
    ops = int((b.get("bench_ops") or 0) - (a.get("bench_ops") or 0))
    if ops <= 0:
        raise MeasureError(f"{name} under {strategy} on {arch}: no operations in {steps} more steps")
    per_op = {k: max(0.0, (float(b.get(k) or 0) - float(a.get(k) or 0)) / ops) for k in PER_OP}
    return OpCounts(name, strategy, arch, cpus, units, per_op, ops, [r.verdict for r in reports])
