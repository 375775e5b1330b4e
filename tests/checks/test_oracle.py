"""The oracle catches hand-made violations of every kind, knowing nothing of the scheme."""

from __future__ import annotations

import pytest

from emu.harness.report import collect
from emu.harness.runner import RunState
from emu.harness.testbed import Testbed
from emu.machine.layout import C_ACTIVE_MM, C_LOADED_MM, H_PHASE, M_USERS, PHASE_EXIT, mm_slot
from tests.helpers import violations


def counters(tb: Testbed, name: str) -> int:
    return sum(int(tb.words[tb.layout.counter(c, name)]) for c in range(tb.layout.ncpus))


def test_touching_a_freed_mm_is_use_after_free() -> None:
    with Testbed(cpus=1) as tb:
        cpu = tb.local_cpu()
        a = cpu.mm.mm_alloc(users=1)
        assert cpu.oracle.touch(a)
        cpu.mm.mmput(a)  # last user, no lazy CPU: freed
        assert not cpu.oracle.touch(a)
        cpu.mm.mmgrab(a)  # a count change on a freed mm is caught too, and not applied
        assert violations(cpu) == {"use_after_free": 2}


def test_a_reused_slot_does_not_hide_a_stale_handle() -> None:
    with Testbed(cpus=1) as tb:
        cpu = tb.local_cpu()
        old = cpu.mm.mm_alloc(users=1)
        cpu.mm.mmput(old)
        new = cpu.mm.mm_alloc(users=1)
        assert mm_slot(new) == mm_slot(old) and new != old  # same slot, next generation
        assert cpu.oracle.touch(new)
        assert not cpu.oracle.touch(old)
        assert violations(cpu) == {"use_after_free": 1}


def test_freeing_an_mm_another_cpu_is_lazy_on() -> None:
    with Testbed(cpus=2) as tb:
        cpu = tb.local_cpu()
        a = cpu.mm.mm_alloc(users=1)
        tb.words[tb.layout.cpu(1) + C_ACTIVE_MM] = a  # cpu1 lazy on a, holding nothing
        cpu.mm.mmput(a)
        assert violations(cpu) == {"freed_while_lazy": 1}


def test_double_free_and_count_underflow() -> None:
    with Testbed(cpus=1) as tb:
        cpu = tb.local_cpu()
        a = cpu.mm.mm_alloc(users=1)
        cpu.mm.mm_count_add(a, M_USERS, -2, 0)
        assert violations(cpu) == {"count_underflow": 1}
        cpu.mm.free_mm(a)
        cpu.mm.free_mm(a)
        assert violations(cpu) == {"count_underflow": 1, "double_free": 1}


def test_an_mm_never_freed_on_the_quiet_machine_is_a_leak() -> None:
    with Testbed(cpus=1) as tb:
        cpu = tb.local_cpu()
        freed, leaked = cpu.mm.mm_alloc(users=1), cpu.mm.mm_alloc(users=1)
        cpu.mm.mmput(freed)
        cpu.mm.mmgrab(leaked)
        cpu.mm.mmput(leaked)  # __mmput ran, but the extra mmgrab is never dropped
        tb.words[H_PHASE] = PHASE_EXIT
        del cpu
        report = collect(tb.cfg, tb.layout, tb.seg, RunState(drained=True))
        assert report.violation_counts == {"leak": 1}
        assert report.verdict == "violation" and report.status == 1
        (leak,) = report.violations
        assert leak["kind"] == "leak" and "mm_count 1" in leak["detail"]


@pytest.mark.parametrize("model", ["sc", "tso", "weak"])
def test_the_mask_check_neither_orders_nor_counts_what_it_looks_at(model: str) -> None:
    """A CPU that looks missing from the mask is looked at again with the mask's line held: the check
    must catch it, and must not drain the flushing CPU's buffered stores (a barrier it does not make),
    nor count as an atomic on the mask's line (a cost it does not pay)."""
    with Testbed(cpus=2, memory_model=model) as tb:
        cpu = tb.local_cpu()
        a = cpu.mm.mm_alloc(users=1)
        tb.words[tb.layout.cpu(1) + C_LOADED_MM] = a  # cpu1 runs a, its bit not in a's mask
        x = tb.scratch(0)
        if model != "sc":
            cpu.atomics._rand = lambda: 0.99  # type: ignore[attr-defined]  # nothing commits on its own
        cpu.atomics.WRITE_ONCE(x, 5)
        buffered = tb.words[x] == 0
        assert buffered == (model != "sc")
        before = counters(tb, "mask_atomics")
        cpu.oracle.mask_covers_loaded(a, tb.layout.cpumask(a))
        assert violations(cpu) == {"cpumask_missing": 1}
        assert counters(tb, "mask_atomics") == before
        assert (tb.words[x] == 0) == buffered, "the check drained the flushing CPU's store buffer"
