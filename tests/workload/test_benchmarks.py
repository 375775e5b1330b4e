"""The benchmark-shaped loads have their benchmarks' shapes: what the emulator counts per operation
against what the benchmark's structure implies. Deterministic runs (``--sched random``), so the
counts are the same on every host; the bounds come from the structure, not from a run."""

from __future__ import annotations

import pytest

from emu.harness.benchmark import BENCHMARKS, MEASURE_CPUS, OpCounts, bench_config, measure, tasks_for
from emu.harness.runner import run
from emu.workload.benchmarks import HACKBENCH_FDS, MEMORYSIZE_PAGES, ContextSwitch1Threads, Hackbench

STEPS = 8_000  # enough for a few hundred operations a run, a second or two on the development box


def counts(name: str, strategy: str, arch: str, units: int) -> OpCounts:
    return measure(name, strategy, arch, units, cpus=MEASURE_CPUS, steps=STEPS)


def test_context_switch1_with_a_cpu_per_task_is_one_lazy_transition_per_iteration() -> None:
    """Two pairs on four CPUs: every write wakes a partner that sleeps alone on its CPU, and the
    writer then blocks on its read, its CPU going idle: one user -> idle -> user transition per
    iteration, two switches, and under refcount two mm_count atomics (mmgrab_lazy_tlb, then
    mmdrop_lazy_tlb). A read whose byte arrives before its reader switched out costs none, so a
    little less than one; never more."""
    c = counts("context_switch1_threads", "refcount", "x86", 2)
    lazy, per = c.per_op["lazy_switches"], c.per_op
    assert 0.9 <= lazy <= 1.0 + 1e-9, c.to_json()
    assert per["context_switches"] == pytest.approx(2 * lazy, abs=0.01)
    assert per["lazy_refcount_atomics"] == pytest.approx(2 * lazy, abs=0.01)
    assert per["remote_wakeups"] == pytest.approx(lazy, abs=0.01)  # each lazy cycle ends with a wake-up from the partner's CPU
    assert c.count_line_atomics == pytest.approx(per["lazy_refcount_atomics"], abs=0.01)  # they land on the mm's record line


@pytest.mark.parametrize("units", [4, 8])
def test_context_switch1_with_a_pair_a_cpu_or_more_never_goes_idle(units: int) -> None:
    """Four and eight pairs on four CPUs (two and four tasks a CPU, will-it-scale's -t 384 and
    -t 768 on 384 CPUs): no CPU of the core is idle when a pair's write wakes its partner, so the
    wake-up lands on the writer's CPU (WF_SYNC) and each pair ping-pongs there. Every wake-up is
    local, every switch is user -> user (one a byte: the reader blocks and its partner runs), no
    CPU goes idle once the load runs: no lazy transition, no mm_count atomic."""
    alone = counts("context_switch1_threads", "refcount", "x86", 2)
    crowded = counts("context_switch1_threads", "refcount", "x86", units)
    per = crowded.per_op
    assert per["remote_wakeups"] == 0, crowded.to_json()
    assert per["lazy_switches"] < 0.01 * alone.per_op["lazy_switches"], (alone.to_json(), crowded.to_json())
    assert crowded.count_line_atomics < 0.01 * alone.count_line_atomics
    assert per["context_switches"] == pytest.approx(1.0, abs=0.02)


def test_context_switch1_pairs_split_while_the_core_has_idle_cpus_for_them() -> None:
    """Where the scheduler settles each task (``cpu_of``): a CPU per task while there are two CPUs
    per pair; ``C - P`` pairs split and the rest on a CPU each between; every pair on one CPU, in
    turn, from a pair a CPU on. Every CPU gets a task, and a pair never spans more than two CPUs."""
    from emu.harness.config import Workload

    def cpus_of(pairs: int, ncpus: int) -> list[tuple[int, int]]:
        d = ContextSwitch1Threads(Workload(kthreads=0), ncpus, None, tasks=pairs)  # type: ignore[arg-type]
        return [(d.cpu_of(2 * p), d.cpu_of(2 * p + 1)) for p in range(pairs)]

    assert cpus_of(2, 4) == [(0, 1), (2, 3)]
    assert cpus_of(1, 4) == [(0, 1)]
    assert cpus_of(3, 4) == [(0, 1), (2, 2), (3, 3)]
    assert cpus_of(4, 4) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert cpus_of(8, 4) == [(c, c) for c in (0, 1, 2, 3, 0, 1, 2, 3)]
    for pairs in range(1, 10):
        placed = cpus_of(pairs, 4)
        assert len({c for pair in placed for c in pair}) == min(4, 2 * pairs)


def test_the_schemes_differ_only_in_what_a_lazy_transition_costs() -> None:
    """The same load under shoot-lazies and hazptr: the same lazy transitions, no mm_count atomic."""
    ref = counts("context_switch1_threads", "refcount", "x86", 2)
    for scheme in ("shoot-lazies", "hazptr"):
        c = counts("context_switch1_threads", scheme, "x86", 2)
        assert c.per_op["lazy_switches"] == pytest.approx(ref.per_op["lazy_switches"], abs=0.05)
        assert c.per_op["lazy_refcount_atomics"] == 0
        assert c.count_line_atomics < 0.05 * ref.count_line_atomics


def test_context_switch1_processes_switches_mm_where_threads_do_not() -> None:
    """Two tasks a CPU: threads of one mm switch user -> user without switch_mm's mask update;
    processes each have an mm, so x86 (up to v6.13) sets and clears mm_cpumask bits on those switches."""
    threads = counts("context_switch1_threads", "refcount", "x86", 4)
    procs = counts("context_switch1_processes", "refcount", "x86", 4)
    assert threads.mask_line_atomics < 0.05
    assert procs.mask_line_atomics > 0.3, procs.to_json()


@pytest.mark.parametrize("units", [2, 4])
def test_tlb_flush2_flushes_every_other_cpu_running_the_mm_once_per_iteration(units: int) -> None:
    """Each iteration is a madvise(MADV_DONTNEED) of one page: a flush of the live mm, which on x86
    IPIs the other CPUs running it (one thread per CPU here), plus a munmap every 256 pages."""
    c = counts("tlb_flush2_threads", "refcount", "x86", units)
    assert c.per_op["tlb_flushes"] == pytest.approx(1 + 1 / MEMORYSIZE_PAGES, abs=0.01)
    assert c.ipis == pytest.approx(units - 1, abs=0.05), c.to_json()
    assert c.per_op["lazy_switches"] < 0.01  # the threads never block: no CPU goes idle


def test_hackbench_wakes_a_receiver_at_most_once_a_message() -> None:
    c = counts("hackbench", "refcount", "x86", 1)
    assert 0 < c.per_op["remote_wakeups"] <= 1.0
    assert c.per_op["context_switches"] <= 2.0  # at most a switch to and from a receiver per message


def test_the_counts_are_deterministic() -> None:
    a = counts("context_switch1_threads", "refcount", "powerpc", 2)
    b = counts("context_switch1_threads", "refcount", "powerpc", 2)
    assert a.per_op == b.per_op and a.ops == b.ops


def test_a_benchmark_run_drains_clean_and_creates_its_tasks_in_order() -> None:
    """Every task exits once the load ends (partners wake each other), the machine drains, no leak."""
    for name in BENCHMARKS:
        r = run(bench_config(name, "refcount", "x86", 1, cpus=3, steps=3_000))
        assert r.verdict == "clean", (name, r.violations[:2], r.harness)
        assert r.metrics["bench_ops"] > 0


def test_roles_follow_creation_order() -> None:
    """The child of each will-it-scale pair is created first (it reads first), hackbench's receivers
    before its senders: no write goes to a task not yet there."""
    from emu.harness.config import Workload

    d = ContextSwitch1Threads(Workload(kthreads=0), 4, None, tasks=2)  # type: ignore[arg-type]
    assert [d.partner(d.task_id(j)) for j in range(4)] == [d.task_id(1), d.task_id(0), d.task_id(3), d.task_id(2)]
    h = Hackbench(Workload(kthreads=0), 4, None, tasks=2)  # type: ignore[arg-type]
    roles = [h.role(h.task_id(j)) for j in range(h.ntasks)]
    assert roles[:HACKBENCH_FDS] == [(0, False)] * HACKBENCH_FDS and roles[HACKBENCH_FDS] == (0, True)
    assert h.receivers(1)[0] == h.task_id(2 * HACKBENCH_FDS)


def test_tasks_per_cpu_are_kept_when_the_machine_shrinks() -> None:
    cs1 = BENCHMARKS["context_switch1_threads"]
    assert tasks_for(cs1, 192, 384, 4) == 2  # a task a CPU: two pairs on four CPUs
    assert tasks_for(cs1, 384, 384, 4) == 4  # two tasks a CPU
    assert tasks_for(cs1, 768, 384, 4) == 8
    assert tasks_for(cs1, 1, 384, 4) == 1  # fewer tasks than CPUs: still a CPU each


@pytest.mark.parametrize("per_cpu_pairs", [0.5, 1.0])
def test_the_counts_per_iteration_depend_on_tasks_per_cpu_not_on_the_emulated_cpus(per_cpu_pairs: float) -> None:
    """What lets four emulated CPUs stand for 384: at the same tasks per CPU, two and eight CPUs
    count the same per iteration (the lazy transitions and mm_count atomics a pair causes are the
    pair's, whatever the machine's size)."""
    small = measure("context_switch1_threads", "refcount", "x86", int(2 * per_cpu_pairs), cpus=2, steps=STEPS)
    large = measure("context_switch1_threads", "refcount", "x86", int(8 * per_cpu_pairs), cpus=8, steps=STEPS)
    for key in ("lazy_switches", "lazy_refcount_atomics", "context_switches"):
        assert small.per_op[key] == pytest.approx(large.per_op[key], abs=0.05), key
