"""The schemes as they were posted (reference 3.3-3.5), one code path at a time, in-process.

Each test drives two booted CPUs of one machine by hand (no scheduler loop, no signals), so the
defect it is about shows on its own, and its fix removes exactly that symptom.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from emu.harness.config import Workload
from emu.harness.testbed import Testbed
from emu.kernel.cpu import Cpu
from emu.machine.layout import INIT_MM, POISON, T_MM, T_RESUME
from tests.helpers import kthread, mm_count, switch, user_task, violations

NO_PREEMPT = Workload(p_preempt=0.0)


@contextmanager
def machine(strategy: str, fix: str = "", arch: str = "arm64", workload: Workload = NO_PREEMPT, **cfg: object) -> Iterator[list[Cpu]]:
    # arm64: flushes are broadcasts, so no IPI is needed between the in-process CPUs
    with Testbed(cpus=2, strategy=strategy, fix=fix, arch=arch, workload=workload, **cfg) as tb:
        yield [tb.local_cpu(0), tb.local_cpu(1)]


def freed(cpu: Cpu) -> int:
    return sum(cpu.w[cpu.layout.counter(c, "mm_freed")] for c in range(cpu.ncpus))


def rq_word(cpu: Cpu, field: str, on: int) -> int:
    """The word of the scheme's per-runqueue ``field`` on CPU ``on``, by its declared name."""
    return cpu.rq_field(on, cpu.strategy.percpu.index(field))


def rq(cpu: Cpu, field: str, on: int) -> int:
    return cpu.w[rq_word(cpu, field, on)]


def lazy_on_exiting_mm(c0: Cpu, c1: Cpu) -> int:
    """cpu0 runs a task of mm c, goes lazy on it (a kthread), and c's last user goes on cpu1."""
    c = c0.mm.mm_alloc(users=1)
    switch(c0, user_task(c0, c))
    switch(c0, kthread(c0))  # user -> kernel: lazy on c
    assert c0.active_mm() == c
    c1.mm.mmput(c)  # the last user's mmput, elsewhere: __mmput scans, parks a reference on cpu0
    return c


# -- luto-rfc: the mockup and its fixes -------------------------------------------------------
def test_d1_the_unconditional_drop_frees_the_mm_the_cpu_is_lazy_on() -> None:
    with machine("luto-rfc", "integrated,scan-online") as (c0, c1):
        c = lazy_on_exiting_mm(c0, c1)
        assert rq(c0, "mm_to_mmdrop", 0) == c and mm_count(c0, c) == 1  # the parked reference
        switch(c0, c0.cpu)  # kernel -> kernel: drop_extra_mm_refs, unconditionally
        assert freed(c0) == 1 and c0.active_mm() == c
        assert "freed_while_lazy" in violations(c0)


def test_d1_fixed_by_the_2022_check_the_mm_goes_when_the_cpu_leaves_it() -> None:
    with machine("luto-rfc", "integrated,scan-online,drop-check") as (c0, c1):
        c = lazy_on_exiting_mm(c0, c1)
        switch(c0, c0.cpu)  # kernel -> kernel: still lazy on c, the reference stays parked
        assert freed(c0) == 0 and mm_count(c0, c) == 1
        other = c0.mm.mm_alloc(users=1)
        switch(c0, user_task(c0, other, 1))  # kernel -> user: lazy_mm cleared, then the drop frees c
        assert freed(c0) == 1 and violations(c0) == {}


def test_d2_the_mask_scan_finds_no_lazy_cpu_on_arm64() -> None:
    for fix, parked in (("integrated", False), ("integrated,scan-online", True)):
        with machine("luto-rfc", fix) as (c0, c1):
            c = lazy_on_exiting_mm(c0, c1)
            scanned = c1.w[c1.layout.counter(1, "cpus_scanned")]
            assert (rq(c0, "mm_to_mmdrop", 0) == c) is parked, fix
            assert scanned == (2 if parked else 0), fix  # "XXX: this is wrong on arm64": an empty mask
            if not parked:
                assert freed(c0) == 1 and "freed_while_lazy" in violations(c0)


def test_d4_the_untouched_exit_mm_keeps_a_classic_reference_nobody_drops() -> None:
    for fix, leaked in (("scan-online,drop-check", True), ("scan-online,drop-check,integrated", False)):
        with machine("luto-rfc", fix) as (c0, _):
            a, b = c0.mm.mm_alloc(users=1), c0.mm.mm_alloc(users=1)
            ta = user_task(c0, a, 0)
            switch(c0, ta)
            c0.do_exit(ta)  # exit_mm, the last mmput, and the dead task's switch to the idle task
            switch(c0, user_task(c0, b, 1))  # kernel -> user: the mockup drops nothing here
            assert (freed(c0) == 0) is leaked, fix
            assert mm_count(c0, a) == (1 if leaked else POISON), fix  # exit_mm's mmgrab, or poisoned
            assert violations(c0) == {}, fix


def test_d4_the_untouched_kthread_use_mm_drops_a_count_the_new_switch_never_took() -> None:
    with machine("luto-rfc", "scan-online,drop-check") as (c0, _):
        a, b = c0.mm.mm_alloc(users=1), c0.mm.mm_alloc(users=1)
        ta = user_task(c0, a)
        switch(c0, ta)
        k = kthread(c0)
        switch(c0, k)  # lazy on a, no reference (the mockup's context switch)
        assert c0.mm.mmget_not_zero(b)
        c0.kthread_use_mm(k, b)  # mmdrop(old active_mm): a's only count was its users'
        assert freed(c0) == 1  # with its user ta alive
        c0.kthread_unuse_mm(k, b)
        switch(c0, ta)
        c0.page_walk()  # ta runs on its freed mm
        assert "use_after_free" in violations(c0)


def test_rerun_command_and_config_carry_the_fixes() -> None:
    from emu.harness.config import RunConfig
    from emu.harness.report import command_for

    cmd = command_for(RunConfig(strategy="luto-rfc", fix="drop-check,integrated", seed=3))
    assert "--fix drop-check,integrated" in cmd


# -- hazptr: RFC v2 as posted --------------------------------------------------------------------
def test_hp_allocate_does_not_overwrite_a_busy_slot_h3() -> None:
    with machine("hazptr") as (c0, _):
        a = c0.mm.mm_alloc(users=1)
        switch(c0, user_task(c0, a))
        switch(c0, kthread(c0))  # lazy on a: published
        assert rq(c0, "hazptr_slot", 0) == a
        c0.sched_force_init_mm()  # mmgrab_lazy_tlb(&init_mm) first, while the slot holds a
        assert "scheme_warning" in violations(c0)
        assert rq(c0, "hazptr_slot", 0) == 0  # then the drop of a clears it, unconditionally


def test_h3_gone_when_init_mm_publishes_nothing() -> None:
    with machine("hazptr", "skip-init-mm") as (c0, _):
        a = c0.mm.mm_alloc(users=1)
        switch(c0, user_task(c0, a))
        switch(c0, kthread(c0))
        c0.sched_force_init_mm()
        assert violations(c0) == {} and rq(c0, "hazptr_slot", 0) == 0


def test_h1_a_preempted_drop_leaves_the_slot_stale() -> None:
    for fix, stale in (("skip-init-mm", True), ("skip-init-mm,drop-irqs-off", False)):
        with machine("hazptr", fix, workload=Workload(p_preempt=1.0)) as (c0, _):
            a, b = c0.mm.mm_alloc(users=1), c0.mm.mm_alloc(users=1)
            switch(c0, user_task(c0, a))
            k = kthread(c0)
            switch(c0, k)  # lazy on a
            assert c0.mm.mmget_not_zero(b)
            preempted = c0.kthread_use_mm(k, b)
            assert preempted is stale and (c0.w[c0.layout.task(k) + T_RESUME] != 0) is stale, fix
            assert (rq(c0, "hazptr_slot", 0) == a) is stale, fix
            switch(c0, kthread(c0, 1))  # the kthread (now on b) is switched away from: lazy on b
            assert ("scheme_warning" in violations(c0)) is stale, fix  # hp_allocate fails: b unprotected


def test_h1_after_a_migration_the_drop_clears_the_wrong_cpus_slot() -> None:
    with machine("hazptr", "skip-init-mm", workload=Workload(p_preempt=1.0)) as (c0, c1):
        a, new = c0.mm.mm_alloc(users=1), c0.mm.mm_alloc(users=1)
        switch(c0, user_task(c0, a))
        t = user_task(c0, new, 1)
        c0.w[c0.layout.task(t) + T_MM] = 0  # a kernel thread about to kernel_execve into new
        switch(c0, t)  # user -> kernel: lazy on a, published on cpu0
        assert c0.exec_mmap(t, new)  # preempted before mmdrop_lazy_tlb(a)
        b = c1.mm.mm_alloc(users=1)
        switch(c1, user_task(c1, b, 0))
        switch(c1, kthread(c1))  # cpu1 lazy on b: its slot holds b
        assert rq(c1, "hazptr_slot", 1) == b
        c1.resume_kernel_path(t)  # the task resumes on cpu1: this_cpu is cpu1
        assert rq(c1, "hazptr_slot", 1) == 0  # cpu1's protection of b is gone
        assert rq(c0, "hazptr_slot", 0) == a  # and cpu0's slot still names a, which it left


def test_hp_scan_on_a_stale_own_slot_is_a_soft_lockup() -> None:
    with machine("hazptr", "skip-init-mm", watchdog=0.2) as (c0, _):
        a = c0.mm.mm_alloc(users=1)
        c0.w[rq_word(c0, "hazptr_slot", 0)] = a  # a stale slot: this CPU is not lazy on a
        c0.strategy.hp_scan(a)  # retire runs locally, finds active_mm != a, and the wait never ends
        assert "soft_lockup" in violations(c0)


# -- the 2022 scheme and the oracle ---------------------------------------------------------------
def test_luto_hazard_settles_on_init_mm_switching_first_then_clearing() -> None:
    with machine("luto-hazard") as (c0, _):
        a = c0.mm.mm_alloc(users=1)
        switch(c0, user_task(c0, a))
        switch(c0, kthread(c0))
        assert rq(c0, "lazy_mm", 0) == a
        c0.strategy.mmgrab_lazy_tlb(INIT_MM)  # sched_force_init_mm's first step publishes nothing
        assert rq(c0, "lazy_mm", 0) == a
        c0.sched_force_init_mm()
        assert rq(c0, "lazy_mm", 0) == 0 and c0.active_mm() == INIT_MM


def test_a_freed_mm_still_parked_is_a_dangling_reference() -> None:
    with machine("luto-hazard") as (c0, c1):
        a = c0.mm.mm_alloc(users=1)
        c1.w[rq_word(c1, "drop_mm", 1)] = a  # rq[1].drop_mm names a, without its count
        c0.mm.mmput(a)  # the last user: freed
        assert freed(c0) == 1 and "dangling_reference" in violations(c0)


def test_a_preempted_kthread_use_mm_finishes_its_drop_when_it_runs_again() -> None:
    with Testbed(cpus=1, strategy="refcount", workload=Workload(p_preempt=1.0)) as tb:
        c0 = tb.local_cpu(0)
        a, b = c0.mm.mm_alloc(users=1), c0.mm.mm_alloc(users=1)
        switch(c0, user_task(c0, a))
        k = kthread(c0)
        switch(c0, k)  # lazy on a, with a reference
        assert mm_count(c0, a) == 2 and c0.mm.mmget_not_zero(b)
        assert c0.kthread_use_mm(k, b)
        assert mm_count(c0, a) == 2  # the drop of a is still to come
        c0.resume_kernel_path(k)
        assert mm_count(c0, a) == 1 and violations(c0) == {}
