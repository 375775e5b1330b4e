"""Each architecture's mm_cpumask rules, in isolation (one in-process CPU, no IPIs)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emu.cpu import Cpu
from emu.layout import INIT_MM
from emu.testbed import Testbed
from tests.helpers import violations


def booted(arch: str) -> Iterator[tuple[Cpu, int, int]]:
    with Testbed(cpus=2, arch=arch) as tb:
        cpu = tb.local_cpu(0)
        yield cpu, cpu.mm.mm_alloc(users=1), cpu.mm.mm_alloc(users=1)


def switch_mm(cpu: Cpu, prev: int, next: int) -> None:
    cpu.switch_mm(prev, next)
    cpu.set_active_mm(next)


def bits(cpu: Cpu, mm: int) -> list[int]:
    return cpu.arch.mm_cpumask_cpus(mm)


def test_x86_mask_follows_the_loaded_mm_and_a_lazy_flush_drops_the_bit() -> None:
    for cpu, a, b in booted("x86"):
        switch_mm(cpu, INIT_MM, a)
        assert bits(cpu, a) == [0]
        switch_mm(cpu, a, b)
        assert bits(cpu, a) == [] and bits(cpu, b) == [0]
        cpu.arch.enter_lazy_tlb(b)  # a kernel thread runs on b
        assert bits(cpu, b) == [0]
        cpu.irq.local_irq_disable()
        cpu.arch.flush_tlb_func(b)  # the exit flush reaches the lazy CPU
        cpu.irq.local_irq_enable()
        assert cpu.arch.loaded_mm() == INIT_MM and cpu.active_mm() == b  # the unreliable case
        assert bits(cpu, b) == []
        assert violations(cpu) == {}


def test_x86_lazy_mask_keeps_bits_until_a_flush_finds_the_mm_unloaded() -> None:
    for cpu, a, b in booted("x86-lazy-mask"):
        switch_mm(cpu, INIT_MM, a)
        switch_mm(cpu, a, b)
        assert bits(cpu, a) == [0] and bits(cpu, b) == [0]  # switching away clears nothing
        cpu.irq.local_irq_disable()
        cpu.arch.flush_tlb_func(a)  # a is not loaded here: trim the stale bit
        assert bits(cpu, a) == []
        cpu.arch.enter_lazy_tlb(b)
        cpu.arch.flush_tlb_func(b)  # lazy on b: load init_mm, keep the bit
        cpu.irq.local_irq_enable()
        assert cpu.arch.loaded_mm() == INIT_MM and bits(cpu, b) == [0]


def test_powerpc_mask_grows_until_offline() -> None:
    for cpu, a, b in booted("powerpc"):
        switch_mm(cpu, INIT_MM, a)
        switch_mm(cpu, a, b)
        switch_mm(cpu, b, INIT_MM)
        assert bits(cpu, a) == [0] and bits(cpu, b) == [0]
        cpu.arch.cpu_offline()
        assert bits(cpu, a) == [] and bits(cpu, b) == []


@pytest.mark.parametrize("arch", ["arm64", "s390"])
def test_no_mask_and_a_broadcast_flush(arch: str) -> None:
    for cpu, a, b in booted(arch):
        switch_mm(cpu, INIT_MM, a)
        switch_mm(cpu, a, b)
        assert bits(cpu, a) == [] and bits(cpu, b) == []
        sent = cpu.w[cpu.layout.counter(0, "ipis_sent")]
        cpu.arch.flush_tlb_mm_exit(a)
        assert cpu.w[cpu.layout.counter(0, "tlb_broadcasts")] == 1
        assert cpu.w[cpu.layout.counter(0, "ipis_sent")] == sent


def test_switch_mm_irqs_off_with_interrupts_enabled_is_a_lockdep_violation() -> None:
    for cpu, a, _ in booted("powerpc"):
        cpu.arch.switch_mm_irqs_off(INIT_MM, a)
        assert violations(cpu) == {"lockdep": 1}
