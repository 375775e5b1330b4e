"""The weak memory model's coherence with a CPU's own buffered RMW without return value.

``WeakAtomics.rmw_no_return`` (arm64's ``STADD``: ``atomic_add`` on ``mm_count`` in the 2022
scheme) enters the store buffer and is applied when it commits. A later load of the same word by
the same CPU must still see it (CoWR: a CPU reads its own latest write to a location, LKMM's
coherence), whatever the model's draws. Each case is one scripted interleaving: the draws are
pinned, so no buffered entry commits on its own and a load is answered from memory (0.99) or from
the CPU's view wherever it can be (0.0). On cc77d13 every case failed: the load skipped the
buffered RMW (CoWR), and the RMW's own lock committed the later ``WRITE_ONCE`` to the word ahead of it
(CoWW: 8 left in memory instead of 7).
"""

from __future__ import annotations

import pytest

from emu.harness.litmus_kernel import stadd  # atomic_add as the model buffers it
from emu.harness.testbed import Testbed
from emu.machine.memory_model import WeakAtomics


@pytest.mark.parametrize("draw", [0.99, 0.0], ids=["memory", "view"])
@pytest.mark.parametrize("load", ["READ_ONCE", "smp_load_acquire", "atomic_read"])
@pytest.mark.parametrize("before", [None, 5], ids=["fresh", "after-a-store"])
def test_a_cpu_reads_its_own_buffered_rmw_without_return_value(before: int | None, load: str, draw: float) -> None:
    with Testbed(cpus=1, memory_model="weak") as tb:
        a = tb.local_cpu(0).atomics
        assert isinstance(a, WeakAtomics)
        x, y = tb.scratch(0), tb.scratch(1)
        a._rand = lambda: 0.99  # type: ignore[method-assign]  # nothing commits on its own
        a.READ_ONCE(x)  # this CPU's view holds x == 0
        base = 0
        if before is not None:
            a.WRITE_ONCE(x, before)  # a buffered store to the word first: the RMW applies on top of it
            base = before
        a.WRITE_ONCE(y, 1)  # an unrelated buffered store
        stadd(a, x, 1)
        assert tb.words[x] == 0, "the RMW was meant to stay buffered"
        a._rand = lambda: draw  # type: ignore[method-assign]
        assert getattr(a, load)(x) == base + 1, f"{load} missed this CPU's own atomic_add (CoWR)"
        a.smp_mb()
        assert tb.words[x] == base + 1, "the RMW applied twice or not at all"


def test_a_later_store_to_the_word_still_wins_over_the_buffered_rmw() -> None:
    """CoWW within the buffer: ``atomic_add`` then ``WRITE_ONCE`` reads (and leaves) the store's value."""
    with Testbed(cpus=1, memory_model="weak") as tb:
        a = tb.local_cpu(0).atomics
        assert isinstance(a, WeakAtomics)
        x = tb.scratch(0)
        a._rand = lambda: 0.99  # type: ignore[method-assign]
        stadd(a, x, 1)
        a.WRITE_ONCE(x, 7)
        assert a.READ_ONCE(x) == 7
        a.smp_mb()
        assert tb.words[x] == 7


# -- the MMU's walk of an outgoing lazy mm (WeakAtomics.mmu_walk) --------------------------------
def _walking(tb: Testbed) -> tuple[WeakAtomics, list[int]]:
    a = tb.local_cpu(0).atomics
    assert isinstance(a, WeakAtomics)
    done: list[int] = []
    a.walk_check, a.walk_late = done.append, lambda mm: mm != 9  # mm 9 stands for the task's own
    a._rand = lambda: 0.99  # type: ignore[method-assign]  # nothing commits on its own
    return a, done


@pytest.mark.parametrize("plain", ["WRITE_ONCE", "READ_ONCE", "smp_load_acquire", "atomic_inc", "xchg_relaxed", "xchg_acquire", "smp_wmb"])
def test_a_walk_of_a_lazy_mm_is_not_performed_by_plain_stores_acquires_or_relaxed_rmws(plain: str) -> None:
    """A load is not ordered before a later plain store or relaxed RMW (LKMM: no ppo from a load to an
    independent store), nor by an ACQUIRE after it: the clear of a hazard pointer can reach memory first."""
    with Testbed(cpus=1, memory_model="weak") as tb:
        a, done = _walking(tb)
        x = tb.scratch(0)
        a.mmu_walk(5)
        if plain == "smp_wmb":
            a.smp_wmb()
        elif plain in ("READ_ONCE", "smp_load_acquire", "atomic_inc"):
            getattr(a, plain)(x)
        else:
            getattr(a, plain)(x, 1)
        if a._buf:
            a._commit_one()
        assert done == [], f"{plain} performed the walk"
        assert plain not in ("WRITE_ONCE",) or tb.words[x] == 1, "the store reached memory before the walk"


BARRIERS = ["smp_mb", "smp_rmb", "smp_store_release", "xchg", "xchg_release", "store_buffer_drain", "perform_walks", "lock"]


@pytest.mark.parametrize("barrier", BARRIERS)
def test_a_walk_is_performed_by_the_barriers_that_order_an_earlier_load(barrier: str) -> None:
    with Testbed(cpus=1, memory_model="weak") as tb:
        a, done = _walking(tb)
        x = tb.scratch(0)
        a.mmu_walk(5)
        if barrier in ("smp_store_release", "xchg", "xchg_release"):
            getattr(a, barrier)(x, 1)
        elif barrier == "lock":
            a.unlock(a.lock(x))  # the machine's own lock: a full barrier
        else:
            getattr(a, barrier)()
        assert done == [5]


def test_a_walk_of_the_tasks_own_mm_is_performed_at_once_and_held_walks_are_bounded() -> None:
    with Testbed(cpus=1, memory_model="weak") as tb:
        a, done = _walking(tb)
        a.mmu_walk(9)
        assert done == [9]
        for mm in range(10, 16):
            a.mmu_walk(mm)
        assert done == [9, 10, 11], "beyond WALK_ENTRIES the oldest held walk is performed"
        a.smp_mb()
        assert done == [9, *range(10, 16)]


# -- mm_cpumask reads by other CPUs: plain loads through the view -----------------------------------
@pytest.mark.parametrize("read", ["for_each_cpu", "cpumask_test_cpu", "cpumask_weight", "in_mm_cpumask"])
def test_a_mask_read_is_a_plain_load_another_cpus_set_bit_may_not_have_reached_until_a_barrier(read: str) -> None:
    """``for_each_cpu``/``cpumask_test_cpu``/``cpumask_weight`` and an arch's look at its own bit are
    test_bit and find_next_bit: plain loads. Under ``weak`` one may be satisfied from the CPU's view
    (stale) until a barrier re-reads it; before this change they read memory, always fresh."""
    with Testbed(cpus=2, arch="powerpc", memory_model="weak") as tb:
        c = tb.local_cpu(0)
        a = c.atomics
        assert isinstance(a, WeakAtomics)
        mm = 5
        mask = c.arch.mm_cpumask(mm)

        def look() -> object:
            if read == "for_each_cpu":
                return list(a.for_each_cpu(mask, 2))
            if read == "cpumask_test_cpu":
                return a.cpumask_test_cpu(mask, 0)
            if read == "cpumask_weight":
                return a.cpumask_weight(mask, 2)
            return c.arch.in_mm_cpumask(mm)

        empty = look()
        tb.words[mask] = 0b11  # both CPUs' bits set by other CPUs' set_bit (memory, not this CPU's view)
        a._rand = lambda: 0.0  # type: ignore[method-assign]  # a load answered from the view where it can be
        assert look() == empty, f"{read} read memory, not this CPU's view"
        a.smp_mb()
        assert look() != empty, f"{read} missed a bit set before this CPU's smp_mb"


def test_an_arch_mask_clear_is_unordered_and_a_machine_lock_section_leaves_the_view_coherent() -> None:
    """``Arch.cpumask_clear`` is clear_bit (an RMW without return value): under ``weak`` it does not drain
    the buffer as the machine's own locks do. A machine lock section's direct writes (a new mm's masks at
    ``mm_alloc``) are seen by this CPU's later loads: its view is re-read at the unlock."""
    with Testbed(cpus=1, arch="powerpc", memory_model="weak") as tb:
        c = tb.local_cpu(0)
        a = c.atomics
        assert isinstance(a, WeakAtomics)
        a._rand = lambda: 0.99  # type: ignore[method-assign]  # nothing commits on its own
        x = tb.scratch(0)
        a.WRITE_ONCE(x, 1)
        c.arch.cpumask_clear(5, 0)
        assert tb.words[x] == 0, "the mask clear acted as a full barrier"
        mask = c.arch.mm_cpumask(7)
        a.atomic_read(mask)  # the view holds the mask word (0)
        k = a.lock(mask)
        tb.words[mask] = 1  # the machine's write, inside its lock
        a.unlock(k)
        a._rand = lambda: 0.0  # type: ignore[method-assign]
        assert a.atomic_read(mask) == 1, "this CPU's load missed its own write in a machine lock section"


def test_a_deterministic_mode_may_stall_a_cpu_where_a_store_after_a_held_walk_becomes_visible() -> None:
    """``window_stall`` (a deterministic mode's ``DetSched.preempt``) is offered where a store issued after
    a held walk reaches memory, the walk still held (the reordering visible to other CPUs), and only there:
    not for a store before the walk, nor once a barrier performed the walk."""
    with Testbed(cpus=1, memory_model="weak") as tb:
        a, done = _walking(tb)
        stalls: list[list[int]] = []
        a.window_stall = lambda: stalls.append(list(a._walks))
        x, y = tb.scratch(0), tb.scratch(1)
        a.WRITE_ONCE(y, 1)  # before the walk
        a.mmu_walk(5)
        a._rand = lambda: 0.0  # type: ignore[method-assign]  # every draw: commit, stall
        a.READ_ONCE(x)  # commits the older store only
        assert stalls == [], "stalled for a store older than the walk"
        a.WRITE_ONCE(x, 1)  # the clear after the walk: committed at once here
        assert tb.words[x] == 1 and stalls == [[5]] and done == [], (stalls, done)
        a.smp_mb()
        a.WRITE_ONCE(y, 2)
        assert done == [5] and stalls == [[5]], "stalled with no walk held"
