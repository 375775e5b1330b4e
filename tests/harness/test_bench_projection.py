"""The benchmark projection's arithmetic on hand-computable cases, and the machine files: each loads,
and every constant carries its source."""

from __future__ import annotations

import json

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
    transfer_ns,
)
from emu.harness.benchmark import BENCHMARKS, PER_OP, OpCounts
from emu.harness.config import ConfigError

CS1 = BENCHMARKS["context_switch1_threads"]
TLB = BENCHMARKS["tlb_flush2_threads"]


def toy(**over: float) -> Machine:
    """Two sockets of two cores, two threads each: eight CPUs, round costs."""
    values = dict(
        sockets=2, cores=4, smt=2, op_ns=1000, idle_exit_ns=0, line_smt_ns=5, line_local_ns=50, line_remote_ns=200,
        ipi_rtt_ns=2000, remote_read_ns=100, smt_core_throughput=1.0,
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
        assert m.fitted == ()  # nothing fitted to a figure of section 9
        assert m.published_tasks_source
    p8, epyc = load_machine("power8-192"), load_machine("epyc-9654-2s")
    assert (p8.values["sockets"], p8.values["cores"], p8.arch) == (16, 192, "powerpc")
    assert (epyc.values["sockets"], epyc.cpus, epyc.arch) == (2, 384, "x86")


def test_a_machine_file_without_a_source_or_with_a_stray_constant_is_refused() -> None:
    good = json.loads(json.dumps({"name": "x", "description": "d", "arch": "x86", "published_tasks": {"value": 1, "source": "s"},
                                  "constants": {k: {"value": 2, "source": "somewhere"} for k in CONSTANTS}}))  # fmt: skip
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
    assert transfer_ns(m, 1, 1.0, 1) == 0.0  # nobody to share it with
    assert transfer_ns(m, 2, 2.0, 1) == pytest.approx(5.0)  # the other thread of the core
    # eight busy CPUs, two a core, two sockets: of the 7 others, 1 sibling, 2 on this socket, 4 remote
    assert transfer_ns(m, 8, 2.0, 2) == pytest.approx((1 * 5 + 2 * 50 + 4 * 200) / 7)


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
    xfer = transfer_ns(m, 128, 2.0, 1)
    assert p.bound == "line"
    assert p.ops_per_s == pytest.approx(1e9 / (2 * xfer), rel=0.02)
    assert p.ops_per_s <= 1e9 / (2 * xfer)


def test_ipis_to_every_other_cpu_grow_with_the_busy_cpus() -> None:
    """Measured with two busy CPUs (one IPI an operation), priced with four: three."""
    c = op_counts(2, ipis_sent=1.0, ipis_flush=1.0)
    c = OpCounts("tlb_flush2_threads", "refcount", "x86", 4, 2, c.per_op, 1000)
    p = predict(TLB, toy(), 4, c)
    assert p.cpu_ns == pytest.approx(1000 + 3 * 2000)


def test_the_published_figures_name_machines_that_exist() -> None:
    names = set(machine_names())
    assert {q.machine for q in PUBLISHED} <= names
    assert {q.benchmark for q in PUBLISHED} <= set(BENCHMARKS)
    curve = [q for q in PUBLISHED if q.machine == "epyc-9654-2s"]
    assert [q.tasks for q in curve] == [1, 2, 3, 6, 12, 24, 48, 96, 192, 384, 768]
    assert max(curve, key=lambda q: q.ratio or 0).tasks == 192  # the RFC's largest gain, +28%
