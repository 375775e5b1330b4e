"""The atomic emulation: exact under contention, and really racy without its locks."""

from __future__ import annotations

import pytest

from emu.harness.testbed import Testbed
from emu.kernel.cpu import Cpu

N_CPUS = 4
N_INC = 20_000


def test_atomic_inc_loses_no_update_under_contention() -> None:
    with Testbed(cpus=N_CPUS) as tb:
        x = tb.scratch(0)

        def hammer(cpu: Cpu) -> int:
            for _ in range(N_INC):
                cpu.atomics.atomic_inc(x)
            return 0

        tb.run([hammer] * N_CPUS)
        assert tb.words[x] == N_CPUS * N_INC


@pytest.mark.race  # whether the processes interleave inside an increment is the host's scheduling: a race
def test_unlocked_read_modify_write_loses_updates() -> None:
    """The same increment without the lock races for real between the processes."""
    n = 100_000
    with Testbed(cpus=N_CPUS) as tb:
        x = tb.scratch(0)

        def hammer(cpu: Cpu) -> int:
            for _ in range(n):
                cpu.atomics.unlocked_inc(x)
            return 0

        tb.run([hammer] * N_CPUS)
        assert tb.words[x] < N_CPUS * n


def test_read_modify_write_semantics() -> None:
    with Testbed(cpus=1) as tb:
        a = tb.local_cpu().atomics
        x = tb.scratch(1)
        a.WRITE_ONCE(x, 5)
        assert a.atomic_add_return(x, 3) == 8
        assert a.atomic_xchg(x, 2) == 8 and a.READ_ONCE(x) == 2
        assert a.atomic_cmpxchg(x, 7, 9) == 2 and a.READ_ONCE(x) == 2  # no match: unchanged
        assert a.atomic_cmpxchg(x, 2, 9) == 2 and a.READ_ONCE(x) == 9
        assert a.try_cmpxchg(x, 1, 0) == (False, 9)
        assert a.try_cmpxchg(x, 9, 1) == (True, 9)
        assert a.atomic_dec_and_test(x) is True
        assert a.atomic_dec_and_test(x) is False and a.atomic_read(x) == -1
        a.smp_store_release(x, 4)
        assert a.smp_load_acquire(x) == 4
        assert a.irq.in_atomic == 0  # every lock released its mask


def test_cpumask_operations_across_words() -> None:
    with Testbed(cpus=70) as tb:
        c = tb.local_cpu()
        a = c.atomics
        mask = tb.scratch(10)
        for cpu in (0, 31, 32, 63, 69):
            a.cpumask_set_cpu(mask, cpu)
        assert list(a.for_each_cpu(mask, 70)) == [0, 31, 32, 63, 69]
        assert a.cpumask_weight(mask, 70) == 5
        a.cpumask_clear_cpu(mask, 31)
        assert not a.cpumask_test_cpu(mask, 31) and a.cpumask_test_cpu(mask, 32)
        assert list(a.for_each_cpu(mask, 70)) == [0, 32, 63, 69]
