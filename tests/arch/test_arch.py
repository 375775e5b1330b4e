"""Each architecture's mm_cpumask and flush rules, in isolation (one in-process CPU; the other CPU
of the machine is never booted, so it is offline and IPIs to it are not sent)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from emu.harness.testbed import Testbed
from emu.kernel.cpu import Cpu
from emu.machine.layout import C_LOADED_MM, INIT_MM, M_ARCH, M_STATE, MM_EXITED
from tests.helpers import kthread, mm_count, switch, user_task, violations


def booted(arch: str, **cfg: Any) -> Iterator[tuple[Cpu, int, int]]:
    with Testbed(cpus=2, arch=arch, **cfg) as tb:
        cpu = tb.local_cpu(0)
        yield cpu, cpu.mm.mm_alloc(users=1), cpu.mm.mm_alloc(users=1)


def switch_mm(cpu: Cpu, prev: int, next: int) -> None:
    cpu.switch_mm(prev, next)
    cpu.set_active_mm(next)


def bits(cpu: Cpu, mm: int) -> list[int]:
    return cpu.arch.mm_cpumask_cpus(mm)


def counter(cpu: Cpu, name: str) -> int:
    return cpu.w[cpu.layout.counter(cpu.cpu, name)]


def in_irq(cpu: Cpu, fn: Any, *args: Any) -> None:
    """Run ``fn`` as a flush IPI's handler would: interrupts off."""
    flags = cpu.irq.local_irq_save()
    fn(*args)
    cpu.irq.local_irq_restore(flags)


def record_targets(cpu: Cpu) -> list[list[int]]:
    """Replace the flush's ``on_each_cpu_mask`` by a recorder of the CPUs it would interrupt."""
    sent: list[list[int]] = []
    cpu.irq.on_each_cpu_mask = lambda cpus, fid, arg, wait=True: sent.append(sorted(cpus))  # type: ignore[method-assign]
    return sent


def fake_remote(cpu: Cpu, other: int, mm: int, lazy: bool = False) -> None:
    """Make CPU ``other`` look as if it had ``mm`` loaded (and is in its mask), lazy or not."""
    base = cpu.layout.cpu(other)
    cpu.w[base + C_LOADED_MM] = mm
    if "is_lazy" in cpu.layout.arch_offsets:  # x86's cpu_tlbstate_shared.is_lazy
        cpu.w[base + cpu.layout.arch_field("is_lazy")] = int(lazy)
    cpu.atomics.cpumask_set_cpu(cpu.arch.mm_cpumask(mm), other)


# -- x86 up to v6.13 -----------------------------------------------------------------------------


def test_x86_mask_follows_the_loaded_mm_and_a_lazy_flush_drops_the_bit() -> None:
    for cpu, a, b in booted("x86"):
        switch_mm(cpu, INIT_MM, a)
        assert bits(cpu, a) == [0]
        switch_mm(cpu, a, b)
        assert bits(cpu, a) == [] and bits(cpu, b) == [0]
        cpu.arch.enter_lazy_tlb(b)  # a kernel thread runs on b: cpu_tlbstate_shared.is_lazy, in the shared segment
        assert cpu.w[cpu.layout.cpu(0) + cpu.layout.arch_field("is_lazy")] == 1 and bits(cpu, b) == [0]
        in_irq(cpu, cpu.arch.flush_tlb_func, b)  # a freed-tables flush reaches the lazy CPU
        assert cpu.arch.loaded_mm() == INIT_MM and cpu.active_mm() == b  # the unreliable case
        assert bits(cpu, b) == [] and cpu.w[cpu.layout.cpu(0) + cpu.layout.arch_field("is_lazy")] == 0
        assert violations(cpu) == {}


def test_x86_the_exit_flush_runs_on_the_exiting_cpu_too() -> None:
    for cpu, a, _ in booted("x86"):
        switch_mm(cpu, INIT_MM, a)
        cpu.arch.enter_lazy_tlb(a)  # exit_mm: the exiting task goes on lazily on its own mm
        cpu.arch.flush_tlb_mm_exit(a)  # only this CPU in the mask: flush_tlb_func locally
        assert cpu.arch.loaded_mm() == INIT_MM and cpu.active_mm() == a
        assert bits(cpu, a) == []  # the exiting CPU dropped its own bit: B9 covers it too
        assert violations(cpu) == {}


def test_x86_a_flush_that_frees_no_page_tables_skips_lazy_cpus() -> None:
    for cpu, a, _ in booted("x86"):
        switch_mm(cpu, INIT_MM, a)
        fake_remote(cpu, 1, a, lazy=True)
        sent = record_targets(cpu)
        cpu.arch.flush_tlb_munmap(a, freed_tables=False)  # on_each_cpu_cond_mask(tlb_is_not_lazy)
        cpu.arch.flush_tlb_munmap(a, freed_tables=True)  # on_each_cpu_mask: lazy CPUs too
        cpu.arch.flush_tlb_mm_exit(a)  # the exit flush frees page tables
        assert sent == [[0], [0, 1], [0, 1]]
        assert counter(cpu, "tlb_flushes") == 2


def test_x86_unlazy_on_flush_ends_the_lazy_use_and_lets_scans_use_the_mask() -> None:
    for cpu, a, _ in booted("x86", strategy="refcount", x86_unlazy_on_flush=True):
        ta = user_task(cpu, a)
        switch(cpu, ta)
        switch(cpu, kthread(cpu))  # user -> kernel: lazy on a, with a reference
        assert mm_count(cpu, a) == 2 and list(cpu.arch.for_each_possible_lazymm_cpu(a)) == [0]
        init_count = mm_count(cpu, INIT_MM)
        in_irq(cpu, cpu.arch.flush_tlb_func, a)  # 21/23: unlazy_mm_irqs_off()
        assert cpu.arch.loaded_mm() == INIT_MM and cpu.active_mm() == INIT_MM
        assert mm_count(cpu, a) == 1 and mm_count(cpu, INIT_MM) == init_count + 1  # the lazy use moved to init_mm
        assert bits(cpu, a) == [] and list(cpu.arch.for_each_possible_lazymm_cpu(a)) == []
        assert violations(cpu) == {}
    for cpu, a, _ in booted("x86"):
        assert list(cpu.arch.for_each_possible_lazymm_cpu(a)) == [0]  # without it: every online CPU


@pytest.mark.parametrize("unlazy", [False, True])
def test_x86_leave_mm_moves_an_idle_lazy_cpu_to_init_mm(unlazy: bool) -> None:
    for cpu, a, _ in booted("x86", x86_idle_leave_mm=True, x86_unlazy_on_flush=unlazy):
        ta = user_task(cpu, a)
        switch(cpu, ta)
        switch(cpu, cpu.cpu)  # the idle task, lazy on a
        cpu.arch.leave_mm()
        assert cpu.arch.loaded_mm() == INIT_MM and bits(cpu, a) == []
        assert cpu.active_mm() == (INIT_MM if unlazy else a)  # 20/23 ends the lazy use too
        assert violations(cpu) == {}


# -- x86 v6.14 lazy mask ---------------------------------------------------------------------


def test_x86_lazy_mask_keeps_bits_until_a_flush_finds_the_mm_unloaded() -> None:
    for cpu, a, b in booted("x86-lazy-mask"):
        switch_mm(cpu, INIT_MM, a)
        switch_mm(cpu, a, b)
        assert bits(cpu, a) == [0] and bits(cpu, b) == [0]  # switching away clears nothing
        in_irq(cpu, cpu.arch.flush_tlb_func, a)  # a is not loaded here: trim the stale bit
        assert bits(cpu, a) == []
        cpu.arch.enter_lazy_tlb(b)
        in_irq(cpu, cpu.arch.flush_tlb_func, b)  # lazy on b: load init_mm, keep the bit
        assert cpu.arch.loaded_mm() == INIT_MM and bits(cpu, b) == [0]
        in_irq(cpu, cpu.arch.flush_tlb_func, b)  # the next flush: b not loaded, the bit goes ...
        assert bits(cpu, b) == [] and cpu.active_mm() == b  # ... while the CPU is still lazy on b
        assert violations(cpu) == {}


def test_x86_lazy_mask_flush_targets() -> None:
    for cpu, a, _ in booted("x86-lazy-mask"):
        switch_mm(cpu, INIT_MM, a)
        cpu.w[cpu.layout.mm(a) + M_ARCH] = 2**62  # next_trim_cpumask: not due
        sent = record_targets(cpu)
        fake_remote(cpu, 1, a, lazy=True)
        cpu.arch.flush_tlb_munmap(a, freed_tables=False)  # should_flush_tlb: a lazy CPU is skipped
        cpu.w[cpu.layout.cpu(1) + cpu.layout.arch_field("is_lazy")] = 0
        cpu.w[cpu.layout.cpu(1) + C_LOADED_MM] = INIT_MM
        cpu.arch.flush_tlb_munmap(a, freed_tables=False)  # not loaded there, no trim due: skipped
        cpu.w[cpu.layout.mm(a) + M_ARCH] = 1  # a trim is due
        cpu.arch.flush_tlb_munmap(a, freed_tables=False)
        cpu.arch.flush_tlb_munmap(a, freed_tables=True)  # freed tables: every CPU in the mask
        assert sent == [[0], [0], [0, 1], [0, 1]]


# -- powerpc radix ---------------------------------------------------------------------------


def active_cpus(cpu: Cpu, mm: int) -> int:
    return cpu.w[cpu.layout.mm(mm) + M_ARCH]


def test_powerpc_mask_and_active_cpus_grow_until_a_trim() -> None:
    for cpu, a, b in booted("powerpc"):
        ta, tb_ = user_task(cpu, a, 0), user_task(cpu, b, 1)
        switch(cpu, ta)
        switch(cpu, tb_)
        switch(cpu, ta)
        assert bits(cpu, a) == [0] and bits(cpu, b) == [0]  # set on first use, never cleared on switch
        assert active_cpus(cpu, a) == 1 and active_cpus(cpu, b) == 1
        switch(cpu, kthread(cpu))  # lazy on a, with refcount's reference
        in_irq(cpu, cpu.arch.do_exit_flush_lazy_tlb, b)  # not running b, not lazy on it: trims itself
        assert bits(cpu, b) == [] and active_cpus(cpu, b) == 0
        in_irq(cpu, cpu.arch.do_exit_flush_lazy_tlb, a)  # lazy on a: init_mm first, then the trim
        assert cpu.active_mm() == INIT_MM and cpu.arch.loaded_mm() == INIT_MM and mm_count(cpu, a) == 1
        assert bits(cpu, a) == [] and active_cpus(cpu, a) == 0
        assert violations(cpu) == {}


def test_powerpc_exit_lazy_flush_tlb_leaves_a_cpu_that_runs_the_mm_alone() -> None:
    for cpu, a, _ in booted("powerpc"):
        ta = user_task(cpu, a)
        switch(cpu, ta)
        in_irq(cpu, cpu.arch.do_exit_flush_lazy_tlb, a)  # current->mm == mm: nothing
        assert bits(cpu, a) == [0] and cpu.arch.loaded_mm() == a


def test_powerpc_offline_clears_the_cpu_from_the_masks_of_live_mms_only() -> None:
    for cpu, a, b in booted("powerpc"):
        switch_mm(cpu, INIT_MM, a)
        switch_mm(cpu, a, b)
        switch_mm(cpu, b, INIT_MM)
        cpu.w[cpu.layout.mm(b) + M_STATE] = MM_EXITED  # no task has b any more
        cpu.arch.cpu_offline()
        assert bits(cpu, a) == [] and active_cpus(cpu, a) == 0
        assert bits(cpu, b) == [0]  # clear_tasks_mm_cpumask finds no task of b
        assert violations(cpu) == {}


def test_powerpc_flushes_are_local_broadcast_or_none_as_flush_type_needed_says() -> None:
    for cpu, a, _ in booted("powerpc"):
        cpu.arch.flush_tlb_munmap(a, freed_tables=False)  # active_cpus 0: no flush
        ta = user_task(cpu, a)
        switch(cpu, ta)
        cpu.arch.flush_tlb_munmap(a, freed_tables=True)  # only this CPU: a local flush
        assert counter(cpu, "tlb_broadcasts") == 0
        fake_remote(cpu, 1, a)
        cpu.arch.inc_mm_active_cpus(a)
        cpu.mm.mmget(a)  # two users: not the single-threaded trim
        cpu.arch.flush_tlb_munmap(a, freed_tables=False)  # another CPU in the mask: tlbie
        cpu.arch.flush_tlb_mm_exit(a)  # fullmm: tlbie, no IPI
        assert counter(cpu, "tlb_broadcasts") == 2 and counter(cpu, "tlb_flushes") == 3
        assert counter(cpu, "ipis_sent") == 0
        assert violations(cpu) == {}


def test_powerpc_the_trim_clock_trims_one_flush_in_trim_timer() -> None:
    for cpu, a, _ in booted("powerpc", trim_timer=3):
        ta = user_task(cpu, a)
        switch(cpu, ta)
        fake_remote(cpu, 1, a)
        cpu.arch.inc_mm_active_cpus(a)
        cpu.mm.mmget(a)
        for _ in range(5):
            cpu.arch.flush_tlb_munmap(a, freed_tables=False)
        assert counter(cpu, "tlb_broadcasts") == 4  # the third flush trimmed instead (exit_flush_lazy_tlbs)
        assert cpu.arch.trim_clock == 2


def test_powerpc_b7_mutant_switches_with_interrupts_on_under_any_scheme() -> None:
    for strategy in ("refcount", "shoot-lazies"):
        for mutant in (None, "powerpc-exit-irqs-enabled"):
            for cpu, a, _ in booted("powerpc", strategy=strategy, mutant=mutant, trim_timer=1):
                ta = user_task(cpu, a)
                switch(cpu, ta)
                cpu.exit_mm(ta)  # last user: exit_mmap -> flush_type_needed -> exit_lazy_flush_tlb, locally
                assert cpu.active_mm() == INIT_MM and bits(cpu, a) == []
                assert violations(cpu) == ({"lockdep": 1} if mutant else {})


def test_powerpc_b8_mutant_clears_the_bit_of_a_cpu_that_runs_the_mm() -> None:
    for mutant in (None, "powerpc-trim-vs-kthread"):
        for cpu, a, _ in booted("powerpc", mutant=mutant):
            ta = user_task(cpu, a)
            switch(cpu, ta)
            fake_remote(cpu, 1, a)  # cpu1: a kernel thread that adopted a (kthread_use_mm), unreachable here
            cpu.arch.inc_mm_active_cpus(a)
            cpu.arch.flush_tlb_munmap(a, freed_tables=False)  # single-threaded: the trim
            if mutant:
                assert bits(cpu, a) == [0] and violations(cpu) == {"cpumask_missing": 1}  # mm_reset_thread_local
            else:
                assert bits(cpu, a) == [0, 1] and violations(cpu) == {}  # each CPU trims only itself


# -- s390 and arm64 ------------------------------------------------------------------------------


def test_s390_mask_is_reset_to_the_attached_cpus_and_flushes_are_broadcasts() -> None:
    for cpu, a, b in booted("s390"):
        switch_mm(cpu, INIT_MM, a)
        switch_mm(cpu, a, b)
        assert bits(cpu, a) == [0] and bits(cpu, b) == [0]  # finish_arch_post_lock_switch; nothing cleared
        cpu.arch.flush_tlb_munmap(a, freed_tables=False)  # __tlb_flush_mm: cpu_attach_mask of a is empty
        assert bits(cpu, a) == []
        cpu.arch.enter_lazy_tlb(b)  # a lazy CPU stays attached
        cpu.arch.flush_tlb_mm_exit(b)
        assert bits(cpu, b) == [0]
        in_irq(cpu, cpu.arch.switch_mm_irqs_off, b, a)  # mid-switch: a loaded, active_mm not yet updated
        cpu.arch.flush_tlb_munmap(b, freed_tables=False)
        assert bits(cpu, b) == [0] and bits(cpu, a) == [0]
        assert counter(cpu, "tlb_broadcasts") == 3 and counter(cpu, "ipis_sent") == 0
        assert violations(cpu) == {}


def test_arm64_keeps_no_mask_and_flushes_by_broadcast() -> None:
    for cpu, a, b in booted("arm64"):
        switch_mm(cpu, INIT_MM, a)
        switch_mm(cpu, a, b)
        assert bits(cpu, a) == [] and bits(cpu, b) == []
        cpu.arch.flush_tlb_mm_exit(a)
        assert counter(cpu, "tlb_broadcasts") == 1 and counter(cpu, "ipis_sent") == 0
        assert violations(cpu) == {}  # arm64's flushes do not rely on the mask: no mask check


# -- the oracle's mask check -------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["x86", "x86-lazy-mask", "powerpc"])
def test_a_cpu_with_the_mm_loaded_outside_its_mask_is_caught_at_once(arch: str) -> None:
    for cpu, a, b in booted(arch):
        switch_mm(cpu, INIT_MM, a)
        cpu.arch.cpumask_clear(a, 0)  # a clear of a CPU that has the mm loaded
        assert violations(cpu) == {"cpumask_missing": 1}
        switch_mm(cpu, a, b)  # and leaving it: the kernel's VM_WARN_ON_ONCE on prev's mask
        fake_remote(cpu, 1, b)
        cpu.atomics.cpumask_clear_cpu(cpu.arch.mm_cpumask(b), 1)
        cpu.oracle.mask_covers_loaded(b, cpu.arch.mm_cpumask(b))  # a flush by the mask misses cpu1
        assert violations(cpu) == {"cpumask_missing": 3}


def test_powerpc_offline_while_lazy_is_caught_at_the_clear() -> None:
    """B2's state (the masks cleared before the CPU leaves its lazy mm) is a violation the moment it arises."""
    for cpu, a, _ in booted("powerpc", strategy="shoot-lazies", mutant="shoot-hotplug-race"):
        ta = user_task(cpu, a)
        switch(cpu, ta)
        switch(cpu, cpu.cpu)  # idle, lazy on a, which still has its user
        cpu.set_cpu_online(False)
        cpu.arch.cpu_offline()
        assert violations(cpu) == {"cpumask_missing": 1}


def test_switch_mm_irqs_off_with_interrupts_enabled_is_a_lockdep_violation() -> None:
    for cpu, a, _ in booted("powerpc"):
        cpu.arch.switch_mm_irqs_off(INIT_MM, a)
        assert violations(cpu) == {"lockdep": 1}
