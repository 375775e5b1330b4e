"""RISC-V's and LoongArch's mm_cpumask and flush rules (reference 4.3), in isolation: one in-process
CPU; cpu1 is made to look as if it had an mm loaded (``fake_remote``) and the flush's targets are
recorded rather than interrupted."""

from __future__ import annotations

from emu.harness.config import RunConfig
from emu.harness.parts import memory_model_for
from emu.machine.layout import INIT_MM, M_ARCH
from tests.arch.test_arch import bits, booted, counter, fake_remote, in_irq, record_targets, switch_mm
from tests.helpers import kthread, switch, user_task, violations

# -- RISC-V ----------------------------------------------------------------------------------------


def test_riscv_mask_accumulates_every_cpu_that_ran_the_mm() -> None:
    for cpu, a, b in booted("riscv"):
        switch_mm(cpu, INIT_MM, a)
        switch_mm(cpu, a, b)
        assert bits(cpu, a) == [0] and bits(cpu, b) == [0]  # with ASIDs nothing is cleared on switch
        fake_remote(cpu, 1, a)  # cpu1 ran a (lazy on it or not: the flush does not look)
        sent = record_targets(cpu)
        cpu.arch.flush_tlb_munmap(a, freed_tables=False)
        cpu.arch.flush_tlb_mm_exit(a)
        assert sent == [[0, 1], [0, 1]]  # on_each_cpu_mask over the whole mask, this CPU included
        assert violations(cpu) == {}


def test_riscv_a_lazy_cpu_going_back_to_its_mm_reloads_nothing() -> None:
    for cpu, a, _ in booted("riscv"):
        ta = user_task(cpu, a)
        switch(cpu, ta)
        switch(cpu, kthread(cpu))  # lazy on a
        cpu.atomics.cpumask_clear_cpu(cpu.arch.mm_cpumask(a), 0)
        switch(cpu, ta)  # switch_mm(a, a): "if (unlikely(prev == next)) return;", the bit is not set again
        assert bits(cpu, a) == [] and cpu.arch.loaded_mm() == a


def test_riscv_trim_keeps_a_lazy_cpu_and_trims_one_that_left_the_mm() -> None:
    """Xu Lu's rule, ``mm != current->active_mm``: the exiting CPU and a kernel thread lazy on the mm
    keep their bits; a CPU now on another mm loses its own after a full-ASID flush."""
    for cpu, a, b in booted("riscv-trim"):
        ta = user_task(cpu, a)
        switch(cpu, ta)
        switch(cpu, kthread(cpu))  # lazy on a
        in_irq(cpu, cpu.arch.ipi_flush_tlb_all_asid, a)
        assert bits(cpu, a) == [0]
        tb = user_task(cpu, b, 1)
        switch(cpu, tb)  # now on b; a's bit stays (ASIDs)
        in_irq(cpu, cpu.arch.ipi_flush_tlb_range_asid, a)  # a flush by address: no trim
        assert bits(cpu, a) == [0]
        in_irq(cpu, cpu.arch.ipi_flush_tlb_all_asid, a)
        assert bits(cpu, a) == [] and bits(cpu, b) == [0]
        assert violations(cpu) == {}


def test_riscv_trim_on_current_mm_clears_a_lazy_cpu_with_the_mm_loaded() -> None:
    for cpu, a, _ in booted("riscv-trim", mutant="riscv-trim-forgets-lazy"):
        ta = user_task(cpu, a)
        switch(cpu, ta)
        switch(cpu, kthread(cpu))  # lazy on a: current->mm is NULL
        cpu.arch.flush_tlb_mm_exit(a)  # only this CPU in the mask: the local flush trims it
        assert bits(cpu, a) == [] and cpu.arch.loaded_mm() == a
        assert violations(cpu) == {"cpumask_missing": 1}


# -- LoongArch -------------------------------------------------------------------------------------


def test_loongarch_exit_flush_does_nothing_and_a_shared_mm_is_flushed_by_ipi() -> None:
    for cpu, a, _ in booted("loongarch"):
        switch_mm(cpu, INIT_MM, a)
        fake_remote(cpu, 1, a)
        sent = record_targets(cpu)
        cpu.arch.flush_tlb_mm_exit(a)  # flush_tlb_mm: mm_users is 0 at exit_mmap, nothing sent
        cpu.arch.flush_tlb_munmap(a, freed_tables=False)  # current->mm is not a: IPI the mask
        assert sent == [[0, 1]]
        assert violations(cpu) == {}


def test_loongarch_drop_mmu_context_keeps_a_lazy_cpu_and_clears_one_without_the_mm() -> None:
    for cpu, a, b in booted("loongarch"):
        ta = user_task(cpu, a)
        switch(cpu, ta)
        switch(cpu, kthread(cpu))  # lazy on a
        in_irq(cpu, cpu.arch.flush_tlb_range_ipi_large, a)  # drop_mmu_context: !current->mm, a new ASID
        assert bits(cpu, a) == [0]
        switch(cpu, user_task(cpu, b, 1))
        in_irq(cpu, cpu.arch.flush_tlb_range_ipi, a)  # small: a valid context, flushed by address
        assert bits(cpu, a) == [0]
        in_irq(cpu, cpu.arch.flush_tlb_range_ipi_large, a)  # drop_mmu_context: the ASID is not a's
        assert bits(cpu, a) == [] and bits(cpu, b) == [0]
        assert counter(cpu, "mask_clears_loaded") == 0


def test_loongarch_the_single_threaded_flush_sends_no_ipi_and_keeps_only_its_own_context() -> None:
    for cpu, a, _ in booted("loongarch"):
        switch(cpu, user_task(cpu, a))  # a's only thread runs here
        fake_remote(cpu, 1, a)
        sent = record_targets(cpu)
        cpu.arch.flush_tlb_munmap(a, freed_tables=True)  # cpu_context(cpu1, a) = 0 instead of an IPI
        assert sent == [] and bits(cpu, a) == [0, 1]
        assert cpu.arch.asid_valid_loaded(a)  # its own context is not zeroed: drop_mmu_context renewed it
        assert violations(cpu) == {}


def test_loongarch_a_zeroed_context_lets_a_later_ipi_clear_a_lazy_cpus_bit() -> None:
    for cpu, a, _ in booted("loongarch"):
        switch(cpu, user_task(cpu, a))
        switch(cpu, kthread(cpu))  # lazy on a
        cpu.atomics.atomic_inc(cpu.arch.mm_record(a) + M_ARCH)  # another CPU's single-threaded flush zeroed our context
        assert not cpu.arch.asid_valid_loaded(a)
        in_irq(cpu, cpu.arch.flush_tlb_range_ipi, a)  # a later flush by IPI: asid_valid false, the bit goes
        assert bits(cpu, a) == [] and cpu.active_mm() == a and cpu.arch.loaded_mm() == a
        assert counter(cpu, "mask_clears_loaded") == 1
        assert violations(cpu) == {}  # TLB-wise sound: the CPU takes a new ASID when it next switches to a


def test_loongarch_drop_that_forgets_the_kernel_thread_clears_a_lazy_cpu() -> None:
    for cpu, a, _ in booted("loongarch", mutant="loongarch-drop-forgets-lazy"):
        ta = user_task(cpu, a)
        switch(cpu, ta)
        switch(cpu, kthread(cpu))  # lazy on a
        in_irq(cpu, cpu.arch.flush_tlb_range_ipi_large, a)
        assert bits(cpu, a) == [] and cpu.active_mm() == a
        assert counter(cpu, "mask_clears_loaded") == 1


def test_riscv_and_loongarch_run_on_the_weak_model() -> None:
    for arch in ("riscv", "riscv-trim", "loongarch"):
        assert memory_model_for(RunConfig(arch=arch, memory_model="arch")) == "weak"
    assert memory_model_for(RunConfig(arch="riscv-trim", memory_model="arch", mutant="riscv-trim-forgets-lazy")) == "weak"


def test_loongarch_a_context_zeroed_while_its_mm_runs_is_a_missed_flush() -> None:
    """The zeroing's race with kthread_use_mm: the CPU runs the mm (``current->mm``) with a context
    another CPU's single-threaded flush zeroed, so that flush missed it; the next IPI clears its bit."""
    for cpu, a, _ in booted("loongarch"):
        switch(cpu, user_task(cpu, a))  # runs a
        cpu.atomics.atomic_inc(cpu.arch.mm_record(a) + M_ARCH)  # zeroed meanwhile, by a flush that took a for single-threaded
        in_irq(cpu, cpu.arch.flush_tlb_range_ipi, a)
        assert bits(cpu, a) == [] and violations(cpu) == {"cpumask_missing": 1}
