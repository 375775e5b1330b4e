"""The four context-switch cases, exit_mm and kthread_use_mm, against the reference's section 2."""

from __future__ import annotations

import pytest

from emu.harness.testbed import Testbed
from emu.machine.layout import C_PREV_MM, INIT_MM
from tests.helpers import kthread, mm_count, mm_users, switch, user_task, violations


@pytest.fixture
def cpu():  # type: ignore[no-untyped-def]
    with Testbed(cpus=2, strategy="refcount") as tb:
        yield tb.local_cpu(0)


def test_the_four_cases_under_refcount(cpu) -> None:  # type: ignore[no-untyped-def]
    a, b = cpu.mm.mm_alloc(users=1), cpu.mm.mm_alloc(users=1)
    ta, tb_ = user_task(cpu, a, 0), user_task(cpu, b, 1)
    k, idle = kthread(cpu), cpu.cpu
    mask = cpu.arch.mm_cpumask
    init_before = mm_count(cpu, INIT_MM)

    switch(cpu, ta)  # kernel (idle on init_mm) -> user: the lazy use of init_mm ends
    assert cpu.w[cpu.ACTIVE] == a and cpu.arch.loaded_mm() == a
    assert mm_count(cpu, INIT_MM) == init_before - 1
    assert cpu.w[cpu.layout.cpu(0) + C_PREV_MM] == 0  # rq->prev_mm consumed by finish_task_switch
    assert cpu.atomics.cpumask_test_cpu(mask(a), 0)

    switch(cpu, tb_)  # user -> user: switch_mm, no count changes
    assert cpu.w[cpu.ACTIVE] == b
    assert (mm_count(cpu, a), mm_count(cpu, b)) == (1, 1)
    assert not cpu.atomics.cpumask_test_cpu(mask(a), 0) and cpu.atomics.cpumask_test_cpu(mask(b), 0)

    switches = cpu.w[cpu.c_lazy_switches]
    switch(cpu, k)  # user -> kernel: lazy on b, with a reference
    assert cpu.w[cpu.ACTIVE] == b and cpu.arch.loaded_mm() == b
    assert mm_count(cpu, b) == 2
    assert cpu.w[cpu.c_lazy_switches] == switches + 1

    switch(cpu, idle)  # kernel -> kernel: the lazy mm and its reference are handed on
    assert cpu.w[cpu.ACTIVE] == b and mm_count(cpu, b) == 2

    switch(cpu, ta)  # kernel -> user: switch_mm, then the lazy reference is dropped
    assert cpu.w[cpu.ACTIVE] == a and mm_count(cpu, b) == 1
    assert violations(cpu) == {}


def test_exit_mm_goes_on_lazily_with_its_own_reference(cpu) -> None:  # type: ignore[no-untyped-def]
    a = cpu.mm.mm_alloc(users=2)
    ta = user_task(cpu, a)
    switch(cpu, ta)
    cpu.exit_mm(ta)
    assert (mm_users(cpu, a), mm_count(cpu, a)) == (1, 2)  # one user left; users' ref + our lazy ref
    switch(cpu, cpu.cpu)  # the dead task's last switch: kernel -> kernel, handing the lazy ref on
    assert cpu.w[cpu.ACTIVE] == a and mm_count(cpu, a) == 2
    assert violations(cpu) == {}


def test_last_exit_frees_only_when_the_lazy_cpu_leaves(cpu) -> None:  # type: ignore[no-untyped-def]
    a, b = cpu.mm.mm_alloc(users=1), cpu.mm.mm_alloc(users=1)
    ta, tb_ = user_task(cpu, a, 0), user_task(cpu, b, 1)
    switch(cpu, ta)
    cpu.do_exit(ta)  # the last user: __mmput, but our lazy reference keeps the mm
    assert cpu.w[cpu.ACTIVE] == a and mm_count(cpu, a) == 1 and mm_users(cpu, a) == 0
    assert cpu.w[cpu.layout.counter(0, "mm_freed")] == 0
    switch(cpu, tb_)  # kernel -> user: the lazy drop is the last one and frees a
    assert cpu.w[cpu.layout.counter(0, "mm_freed")] == 1
    assert violations(cpu) == {}


def test_kthread_use_and_unuse_mm(cpu) -> None:  # type: ignore[no-untyped-def]
    a = cpu.mm.mm_alloc(users=1)
    k = kthread(cpu)
    switch(cpu, k)  # kernel -> kernel on init_mm
    assert cpu.mm.mmget_not_zero(a)
    cpu.kthread_use_mm(k, a)
    assert cpu.w[cpu.ACTIVE] == a and cpu.arch.loaded_mm() == a
    assert (mm_users(cpu, a), mm_count(cpu, a)) == (2, 2)  # our mmget and mmgrab
    cpu.kthread_unuse_mm(k, a)
    assert mm_count(cpu, a) == 2  # the mmgrab went, a lazy reference came: still on a
    cpu.mm.mmput(a)
    assert mm_users(cpu, a) == 1
    assert violations(cpu) == {}


def test_mutant_refcount_no_grab_takes_no_reference() -> None:
    with Testbed(cpus=1, strategy="refcount", mutant="refcount-no-grab") as tb:
        cpu = tb.local_cpu(0)
        a = cpu.mm.mm_alloc(users=1)
        ta = user_task(cpu, a)
        switch(cpu, ta)
        switch(cpu, kthread(cpu))  # user -> kernel without mmgrab_lazy_tlb
        assert mm_count(cpu, a) == 1
