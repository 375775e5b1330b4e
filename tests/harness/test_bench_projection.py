"""The benchmark projection's arithmetic on hand-computable cases, and the machine files: each loads,
and every constant carries its source."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from emu.harness.bench_projection import (
    CONSTANTS,
    PUBLISHED,
    Machine,
    load_machine,
    machine_names,
    parse_machine,
    placement,
    predict,
    published_for,
    transfer_ns,
)
from emu.harness.benchmark import BENCHMARKS, MEASURE_CPUS, PAGEVEC_SIZE, PER_OP, KernelLine, OpCounts, measure_cpus
from emu.harness.config import ConfigError

CS1 = BENCHMARKS["context_switch1_threads"]
TLB = BENCHMARKS["tlb_flush2_threads"]
BARE_TLB = replace(TLB, kernel_lines=())  # tlb_flush2's shape without the kernel's own lines: the lazy-TLB costs alone


def toy(**over: float) -> Machine:
    """Two sockets of two cores, two threads each: eight CPUs, round costs."""
    values = dict(
        sockets=2, cores=4, smt=2, ccx_cores=2, op_ns=1000, idle_exit_ns=0, line_smt_ns=5, line_ccx_ns=50, line_local_ns=50,
        line_remote_ns=200, ipi_rtt_ns=2000, remote_read_ns=100, smt_core_throughput=1.0, lru_gen_store=0, broadcast_flush_ns=300,
        zap_lru_add_drain=1,
    )  # fmt: skip
    values.update(over)
    return Machine("toy", "a toy", "x86", 4, "test", values, {k: "test" for k in values}, ())


def op_counts(units: int, cpus: int = 4, **per: float) -> OpCounts:
    return OpCounts("context_switch1_threads", "refcount", "x86", cpus, units, {k: float(per.get(k, 0.0)) for k in PER_OP}, 1000)


# -- machine files ----------------------------------------------------------------------------------


def test_the_three_machines_of_section_9_load_with_a_source_for_every_constant() -> None:
    assert {"power8-192", "epyc-9654-2s", "milan-36"} <= set(machine_names())
    for name in machine_names():
        m = load_machine(name)
        assert set(m.values) == set(CONSTANTS)
        for key in CONSTANTS:
            assert len(m.sources[key]) > 20, (name, key)  # a citation, not a placeholder
        assert m.published_tasks_source
        # nothing fitted to a published figure, but in the variant that says so and is no check
        assert m.fitted == (("lru_gen_store",) if name == "epyc-9654-2s-mglru" else ()), name
    assert load_machine("epyc-9654-2s-mglru").published_as == "epyc-9654-2s"
    assert load_machine("milan-36-nodrain").published_as == "milan-36"
    # the kernels of the published runs call lru_add_drain() in zap_page_range_single; the variant is van Riel's removal
    assert {n: load_machine(n).values["zap_lru_add_drain"] for n in machine_names()} == {
        n: 0 if n == "milan-36-nodrain" else 1 for n in machine_names()
    }
    assert {load_machine(n).values["lru_gen_store"] for n in ("power8-192", "epyc-9654-2s", "milan-36")} == {0}
    p8, epyc = load_machine("power8-192"), load_machine("epyc-9654-2s")
    assert (p8.values["sockets"], p8.values["cores"], p8.arch) == (16, 192, "powerpc")
    assert (epyc.values["sockets"], epyc.cpus, epyc.arch) == (2, 384, "x86")


def test_a_machine_file_without_a_source_or_with_a_stray_constant_is_refused() -> None:
    good = json.loads(json.dumps({"name": "x", "description": "d", "arch": "x86", "published_tasks": {"value": 1, "source": "s"},
                                  "constants": {k: {"value": 2, "source": "somewhere"} for k in CONSTANTS}}))  # fmt: skip
    good["constants"]["ccx_cores"]["value"] = 1  # a core a socket: a CCX of one
    good["constants"]["lru_gen_store"]["value"] = 0
    good["constants"]["zap_lru_add_drain"]["value"] = 1
    assert parse_machine("x", json.dumps(good)).values["cores"] == 2
    bad = json.loads(json.dumps(good))
    bad["constants"]["ipi_rtt_ns"]["source"] = " "
    with pytest.raises(ConfigError, match="ipi_rtt_ns"):
        parse_machine("x", json.dumps(bad))
    stray = json.loads(json.dumps(good))
    stray["constants"]["switch_ns"] = {"value": 1600, "source": "fitted"}
    with pytest.raises(ConfigError, match="switch_ns"):
        parse_machine("x", json.dumps(stray))
    uneven = json.loads(json.dumps(good))
    uneven["constants"]["sockets"]["value"] = 3
    with pytest.raises(ConfigError, match="sockets"):
        parse_machine("x", json.dumps(uneven))
    with pytest.raises(ConfigError, match="unknown machine"):
        load_machine("power9")
    odd_ccx = json.loads(json.dumps(good))
    odd_ccx["constants"]["ccx_cores"]["value"] = 3  # two cores a socket cannot be CCXs of three
    with pytest.raises(ConfigError, match="ccx_cores"):
        parse_machine("x", json.dumps(odd_ccx))
    half = json.loads(json.dumps(good))
    half["constants"]["lru_gen_store"]["value"] = 0.5
    with pytest.raises(ConfigError, match="lru_gen_store"):
        parse_machine("x", json.dumps(half))
    two = json.loads(json.dumps(good))
    two["constants"]["zap_lru_add_drain"]["value"] = 2
    with pytest.raises(ConfigError, match="zap_lru_add_drain"):
        parse_machine("x", json.dumps(two))
    bad_fit = {**good, "fitted": ["switch_ns"]}
    with pytest.raises(ConfigError, match="fitted"):
        parse_machine("x", json.dumps(bad_fit))
    variant = {**good, "fitted": ["lru_gen_store"], "published_as": "y"}
    parsed = parse_machine("x", json.dumps(variant))
    assert (parsed.fitted, parsed.published_as) == (("lru_gen_store",), "y")
    assert parse_machine("x", json.dumps(good)).published_as == "x"


# -- placement and line transfers ----------------------------------------------------------------


def test_will_it_scale_puts_a_pair_on_one_core_and_fills_socket_after_socket() -> None:
    m = toy()
    assert placement(CS1, m, 1) == (2, 1, 1, 2.0)  # one pair: two threads of core 0
    assert placement(CS1, m, 2) == (4, 2, 1, 2.0)  # two pairs: socket 0 full
    assert placement(CS1, m, 4) == (8, 4, 2, 2.0)
    assert placement(CS1, m, 8) == (8, 4, 2, 2.0)  # more tasks than CPUs: still every CPU, two threads a core
    assert placement(TLB, m, 3) == (3, 3, 2, 1.0)  # tlb_flush2: a thread per core


def test_a_line_moves_to_a_sibling_a_core_or_a_socket_in_proportion_to_the_busy_cpus_there() -> None:
    m = toy()
    assert transfer_ns(m, 1, 1.0) == 0.0  # nobody to share it with
    assert transfer_ns(m, 1, 2.0) == pytest.approx(5.0)  # the other thread of the core
    # eight busy CPUs, two a core, two sockets: of the 7 others, 1 sibling, 2 on this socket, 4 remote
    assert transfer_ns(m, 4, 2.0) == pytest.approx((1 * 5 + 2 * 50 + 4 * 200) / 7)


def test_a_ccx_is_a_level_between_the_core_and_the_socket_and_cores_fill_it_first() -> None:
    """One socket of eight cores in two CCXs of four, one busy thread a core."""
    m = toy(sockets=1, cores=8, smt=1, ccx_cores=4, line_ccx_ns=20, line_local_ns=80)
    assert transfer_ns(m, 4, 1.0) == pytest.approx(20.0)  # four busy cores: all in CCX 0
    # five busy cores: four in CCX 0 see 3 there and 1 across; the fifth sees 4 across
    assert transfer_ns(m, 5, 1.0) == pytest.approx((4 * (3 * 20 + 1 * 80) / 4 + 1 * (4 * 80) / 4) / 5)
    assert transfer_ns(m, 8, 1.0) == pytest.approx((3 * 20 + 4 * 80) / 7)  # both full: 3 of 7 in the same CCX


def test_socket_after_socket_prices_a_half_filled_second_socket_by_where_the_cpus_are() -> None:
    """Two sockets of two cores, three busy cores (one thread each): cores 0 and 1 on socket 0, core 2 alone on socket 1."""
    m = toy(smt=1, line_ccx_ns=50)
    expected = (2 * (1 * 50 + 1 * 200) / 2 + 1 * (2 * 200) / 2) / 3
    assert transfer_ns(m, 3, 1.0) == pytest.approx(expected)


# -- the prediction ----------------------------------------------------------------------------------


def test_one_pair_is_its_own_latency_plus_its_line_transfers() -> None:
    """One chain: no queue, so one operation takes its latency plus its atomics' transfers."""
    m = toy()
    c = op_counts(1, lazy_switches=1, remote_wakeups=1, mm_atomics=2)
    p = predict(CS1, m, 1, c)
    assert p.latency_ns == pytest.approx(1000 + 5)  # op_ns + a wake-up between the core's two threads
    assert p.ops_per_s == pytest.approx(1e9 / (1005 + 2 * 5))
    assert p.bound == "latency"


def test_the_idle_exit_is_paid_once_per_lazy_transition() -> None:
    m = toy(idle_exit_ns=700)
    p = predict(CS1, m, 1, op_counts(1, lazy_switches=0.5, remote_wakeups=1))
    assert p.latency_ns == pytest.approx(1000 + 5 + 0.5 * 700)


def test_the_busy_cores_cap_the_rate() -> None:
    free = predict(CS1, toy(), 4, op_counts(4, remote_wakeups=1))
    assert free.ops_per_s == pytest.approx(4 * 1e9 / 1005) and free.bound == "latency"
    capped = predict(CS1, toy(smt_core_throughput=0.5), 4, op_counts(4, remote_wakeups=1))
    assert capped.ops_per_s == pytest.approx(4 * 0.5 * 1e9 / 1000) and capped.bound == "cpu"


def test_a_shared_line_bounds_many_chains_at_one_operation_per_its_service_time() -> None:
    """Sixty-four pairs on a big machine, two atomics an operation on one line: at most one
    operation per two transfers, whatever the number of chains."""
    m = toy(sockets=1, cores=64, smt=2, smt_core_throughput=2.0)
    c = op_counts(4, mm_atomics=2)
    p = predict(CS1, m, 64, c)
    xfer = transfer_ns(m, 64, 2.0)
    assert p.bound == "line"
    assert p.ops_per_s == pytest.approx(1e9 / (2 * xfer), rel=0.02)
    assert p.ops_per_s <= 1e9 / (2 * xfer)


def test_lru_gen_use_mm_is_a_store_to_a_shared_mm_line_on_every_switch_to_a_user_task() -> None:
    """With CONFIG_LRU_GEN_WALKS_MMU every switch to a user task writes mm->lru_gen.bitmap: a line
    every scheme pays for. Sixty-four pairs, one switch to a user task an operation and no atomics:
    at most one operation per transfer; without it, the chains' own latency."""
    m = toy(sockets=1, cores=64, smt=2, ccx_cores=64, smt_core_throughput=2.0)
    c = op_counts(4, context_switches=2, lazy_switches=1, remote_wakeups=1)
    assert c.user_switches == pytest.approx(1.0)
    off = predict(CS1, m, 64, c)
    assert off.bound == "latency" and off.ops_per_s == pytest.approx(64 * 1e9 / 1005)
    on = predict(CS1, toy(sockets=1, cores=64, smt=2, ccx_cores=64, smt_core_throughput=2.0, lru_gen_store=1), 64, c)
    xfer = transfer_ns(m, 64, 2.0)
    assert on.bound == "line" and on.ops_per_s == pytest.approx(1e9 / xfer, rel=0.02) and on.ops_per_s <= 1e9 / xfer
    # two tasks a CPU, user -> user: every switch is to a user task, none to idle
    assert op_counts(4, context_switches=1).user_switches == pytest.approx(1.0)


def test_processes_share_no_mm_line() -> None:
    """context_switch1_processes: every task has its own mm, so its lines stay with its CPU."""
    m = toy(sockets=1, cores=64, smt=2, ccx_cores=64, smt_core_throughput=2.0, lru_gen_store=1)
    procs = BENCHMARKS["context_switch1_processes"]
    c = op_counts(4, context_switches=2, lazy_switches=1, remote_wakeups=1, mm_atomics=2)
    p = predict(procs, m, 64, c)
    assert p.bound == "latency" and p.ops_per_s == pytest.approx(64 * 1e9 / 1005)
    threads = predict(CS1, m, 64, c)  # the same counts on one shared mm: bound by its mm_count line
    assert threads.bound == "line" and threads.ops_per_s <= 1e9 / (2 * transfer_ns(m, 64, 2.0))


def test_ipis_to_every_other_cpu_grow_with_the_busy_cpus() -> None:
    """Measured with two busy CPUs (one IPI an operation), priced with four: three."""
    c = op_counts(2, ipis_sent=1.0, ipis_flush=1.0)
    c = OpCounts("tlb_flush2_threads", "refcount", "x86", 4, 2, c.per_op, 1000)
    p = predict(BARE_TLB, toy(), 4, c)
    assert p.cpu_ns == pytest.approx(1000 + 3 * 2000)


def test_the_published_figures_name_machines_that_exist() -> None:
    names = set(machine_names())
    assert {q.machine for q in PUBLISHED} <= names
    assert {q.benchmark for q in PUBLISHED} <= set(BENCHMARKS)
    curve = [q for q in PUBLISHED if q.machine == "epyc-9654-2s"]
    assert [q.tasks for q in curve] == [1, 2, 3, 6, 12, 24, 48, 96, 192, 384, 768]
    assert [(q.tasks, q.ops_per_s) for q in PUBLISHED if q.machine == "power8-192" and q.strategy == "refcount"] == [
        (768, 1.0e6), (768, 1_827_952), (1536, 177_201_906)
    ]  # fmt: skip
    assert max(curve, key=lambda q: q.ratio or 0).tasks == 192  # the RFC's largest gain, +28%


def test_a_broadcast_flush_is_priced_once_whatever_the_cpus_and_is_the_invalidation_share() -> None:
    """INVLPGB reaches every CPU in one instruction: measured with two busy CPUs, priced with four, still one."""
    c = op_counts(2, tlb_broadcasts=1.0)
    c = OpCounts("tlb_flush2_threads", "refcount", "x86-invlpgb", 4, 2, c.per_op, 1000)
    p = predict(BARE_TLB, toy(), 4, c)
    assert c.ipis == 0 and p.cpu_ns == pytest.approx(1000 + 300)
    assert p.flush_share == pytest.approx(300 / 1300)
    ipi = OpCounts("tlb_flush2_threads", "refcount", "x86", 4, 2, op_counts(2, ipis_sent=1.0).per_op, 1000)
    assert predict(BARE_TLB, toy(), 4, ipi).flush_share == pytest.approx(3 * 2000 / (1000 + 3 * 2000))  # three IPIs, each a round trip


def test_a_machine_s_own_figure_for_one_benchmark_replaces_op_ns_for_that_benchmark_only() -> None:
    m = toy()
    own = Machine("toy", "a toy", "x86", 4, "test", m.values, m.sources, (), bench_op_ns={"tlb_flush2_threads": 3000.0})
    c = OpCounts("tlb_flush2_threads", "refcount", "x86", 4, 2, op_counts(2).per_op, 1000)
    assert predict(BARE_TLB, own, 4, c).cpu_ns == pytest.approx(3000)
    assert predict(CS1, own, 1, op_counts(1)).cpu_ns == pytest.approx(1000)  # context_switch1 keeps op_ns
    milan = load_machine("milan-36")
    assert milan.op_ns("tlb_flush2_threads") == pytest.approx(1e9 / 315e3, abs=1) and len(milan.bench_op_sources["tlb_flush2_threads"]) > 20
    ones = ("ccx_cores", "sockets", "zap_lru_add_drain")
    text = json.dumps({"name": "x", "description": "d", "arch": "x86", "published_tasks": {"value": 1, "source": "s"},
                       "constants": {k: {"value": 1 if k in ones else 0 if k == "lru_gen_store" else 2,
                                         "source": "somewhere"} for k in CONSTANTS},
                       "benchmark_op_ns": {"tlb_flush3": {"value": 5, "source": "somewhere"}}})  # fmt: skip
    with pytest.raises(ConfigError, match="tlb_flush3"):
        parse_machine("x", text)


def test_the_invlpgb_figures_are_set_beside_the_invlpgb_model_and_the_vanilla_ones_beside_the_others() -> None:
    def figures(arch: str, drain: bool) -> list[tuple[float, float]]:
        return sorted((q.ops_per_s or 0, q.flush_share or 0) for q in published_for("milan-36", "tlb_flush2_threads", arch, drain))

    assert figures("x86-v6.14", True) == [(0, 0.40), (527e3, 0)]
    assert figures("x86-invlpgb", True) == [(0, 0.04), (527e3, 0)]
    # the runs without zap_page_range_single's lru_add_drain(): the removal alone, and with INVLPGB
    assert figures("x86-v6.14", False) == [(731e3, 0)]
    assert figures("x86-invlpgb", False) == [(1157e3, 0)]
    assert len(published_for("milan-36", "tlb_flush2_threads")) == 6
    # a global ASID needs the mm on more than 3 CPUs: x86-invlpgb is counted on enough emulated CPUs for it
    assert measure_cpus("x86-invlpgb") >= 8 and measure_cpus("x86-v6.14") == MEASURE_CPUS


# -- the kernel's own lines on a benchmark's path ------------------------------------------------------


def tlb_counts(arch: str = "x86", **per: float) -> OpCounts:
    return OpCounts("tlb_flush2_threads", "refcount", arch, 4, 4, op_counts(4, **per).per_op, 1000)


def test_tlb_flush2_with_lru_add_drain_takes_the_lru_lock_twice_an_iteration() -> None:
    """The drain moves the one faulted folio to the LRU under the lru_lock and the flush's free takes it off
    again: two sections of four transfers an iteration, one lock every busy CPU takes, so at most one iteration
    per eight transfers however many threads run; without the drain, two sections per PAGEVEC_SIZE iterations."""
    lru = next(k for k in TLB.kernel_lines if k.name == "lru_lock")
    per = tlb_counts().per_op
    assert lru.transfers_per_op(per, "x86", drain=True) == pytest.approx(8)
    assert lru.transfers_per_op(per, "x86", drain=False) == pytest.approx(8 / PAGEVEC_SIZE)
    m = toy(sockets=1, cores=64, smt=2, ccx_cores=64, op_ns=3000, smt_core_throughput=2.0)
    xfer = transfer_ns(m, 64, 1.0)
    p = predict(TLB, m, 64, tlb_counts(tlb_flushes=1.0))
    assert (p.bound, p.busiest) == ("line", "lru_lock")
    assert p.ops_per_s <= 1e9 / (8 * xfer) and p.ops_per_s == pytest.approx(1e9 / (8 * xfer), rel=0.02)
    assert p.line_ns["lru_lock"] == pytest.approx(8 * xfer)
    nodrain = predict(TLB, toy(sockets=1, cores=64, smt=2, ccx_cores=64, op_ns=3000, smt_core_throughput=2.0, zap_lru_add_drain=0), 64,
                      tlb_counts(tlb_flushes=1.0))  # fmt: skip
    assert nodrain.line_ns["lru_lock"] == pytest.approx(8 / PAGEVEC_SIZE * xfer)
    assert nodrain.busiest == "mmap_lock" and nodrain.ops_per_s > 3 * p.ops_per_s


def test_tlb_gen_is_bumped_once_a_flush_and_only_by_the_x86_models() -> None:
    tlb_gen = next(k for k in TLB.kernel_lines if k.name == "tlb_gen")
    assert tlb_gen.transfers_per_op(tlb_counts(tlb_flushes=1.5).per_op, "x86-invlpgb", drain=True) == pytest.approx(1.5)
    assert tlb_gen.transfers_per_op(tlb_counts(tlb_flushes=1.5).per_op, "powerpc", drain=True) == 0.0
    assert tlb_gen.transfers_per_op(tlb_counts().per_op, "x86", drain=True) == 0.0  # no flush, no bump


def test_a_kernel_line_of_the_mm_is_shared_by_threads_only_and_a_global_lock_by_processes_too() -> None:
    """context_switch1's processes with one line of the mm and one global lock of a transfer each an
    operation: the mm's stays with its CPU, the lock every busy CPU takes still bounds them."""
    lines = (KernelLine("mm_thing", 1, "test"), KernelLine("global_lock", 1, "test", per_mm=False))
    m = toy(sockets=1, cores=64, smt=2, ccx_cores=64, smt_core_throughput=2.0)
    xfer = transfer_ns(m, 64, 2.0)
    c = op_counts(4, context_switches=2, lazy_switches=1, remote_wakeups=1)
    procs = predict(replace(BENCHMARKS["context_switch1_processes"], kernel_lines=lines), m, 64, c)
    assert procs.line_ns == {"mm_count": 0, "mm_cpumask": 0, "lru_gen": 0, "mm_thing": 0, "global_lock": pytest.approx(xfer)}
    assert procs.busiest == "global_lock" and procs.ops_per_s <= 1e9 / xfer
    threads = predict(replace(CS1, kernel_lines=lines), m, 64, c)
    assert threads.line_ns["mm_thing"] == pytest.approx(xfer) and threads.line_ns["global_lock"] == pytest.approx(xfer)


def test_the_invalidation_share_counts_a_task_s_waits_at_the_lines() -> None:
    """A spinning CPU is busy: with the lru_lock the bottleneck, a thread's time per iteration is the
    chains over the rate, and the broadcast's share of it is smaller than its share of the CPU time."""
    m = toy(sockets=1, cores=64, smt=2, ccx_cores=64, op_ns=3000, smt_core_throughput=2.0)
    p = predict(TLB, m, 64, tlb_counts("x86-invlpgb", tlb_flushes=1.0, tlb_broadcasts=1.0))
    assert p.busiest == "lru_lock" and p.cycle_ns == pytest.approx(64 / p.ops_per_s * 1e9)
    assert p.cycle_ns > p.cpu_ns
    assert p.flush_share == pytest.approx(300 / p.cycle_ns) and p.flush_share < 300 / 3300
    alone = predict(TLB, m, 1, tlb_counts("x86-invlpgb", tlb_flushes=1.0, tlb_broadcasts=1.0))  # one thread: no queue
    assert alone.flush_share == pytest.approx(300 / alone.cpu_ns)


def test_context_switch1_and_hackbench_declare_no_kernel_line() -> None:
    """Their paths write no kernel line that every busy CPU shares (each pair's pipe is its own):
    only tlb_flush2 declares any, each with its source."""
    assert {n for n, s in BENCHMARKS.items() if s.kernel_lines} == {"tlb_flush2_threads"}
    assert {k.name for k in TLB.kernel_lines} == {"lru_lock", "mmap_lock", "tlb_flush_pending", "tlb_gen"}
    assert all(len(k.source) > 80 and "COUNTED" in k.source for k in TLB.kernel_lines)
