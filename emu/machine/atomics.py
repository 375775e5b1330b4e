"""The kernel's atomic API, emulated with a hashed table of process-shared locks.

This is how GCC's libatomic does atomics it cannot do natively: a lock chosen by hashing the
address's cache line. Two fields on one line share a lock (and contend, as the line would
bounce); fields on different lines almost never do. Every read-modify-write runs with the
CPU's soft interrupt mask raised, so an IPI handler never tries to take a lock that the code
it interrupted already holds.

Plain loads (``READ_ONCE``) are single word accesses, atomic on their own; a plain store
(``WRITE_ONCE``, and a model's commit of a buffered one) takes its line's lock too, only so that
it cannot land between the read and the write of another CPU's RMW of the word and be lost.
Under the default sequentially consistent model the barriers (``smp_mb``, acquire/release) have
nothing to order and cost nothing; ``emu.machine.memory_model`` adds a store buffer for the
``tso`` model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.synchronize import Lock
from time import perf_counter_ns
from types import FunctionType
from typing import TYPE_CHECKING

from emu.machine.layout import LINE
from emu.machine.points import sched_point

if TYPE_CHECKING:
    from emu.machine.irq import Irq

LINE_SHIFT = LINE.bit_length() - 1
# Tries before a contended lock blocks: a holder running on another core releases within a few
# microseconds, while a sleep and wake-up costs tens and may leave a core idle.
LOCK_SPINS = 50

# The scheduling points of a deterministic mode (emu.machine.points): every access a scheme makes
# through this API is one. A write, a barrier (it makes buffered stores visible) and every
# read-modify-write (even a failed cmpxchg: it takes the line's lock) is progress; a read is not,
# whatever its name or ordering (READ_ONCE, atomic_read, smp_load_acquire, rcu_dereference, a
# cpumask test or walk), so CPUs that only read while they spin are seen to wait.
READ, PROGRESS = sched_point(progress=False), sched_point(progress=True)
BARRIER = sched_point(progress=True, word=None)  # no one word: it conflicts with every access


def _walk_nothing(mm: int) -> bool:
    return True


def _not_late(mm: int) -> bool:
    return False


def make_locks(ctx, n: int = 256) -> list[Lock]:  # type: ignore[no-untyped-def]
    """The lock table, created by the runner before the CPUs fork. ``n`` is a power of two."""
    assert n & (n - 1) == 0
    return [ctx.Lock() for _ in range(n)]


class Atomics:
    """Atomic operations on word offsets of the shared segment, for one CPU process."""

    def __init__(self, words: memoryview, locks: Sequence[Lock], irq: Irq) -> None:
        self.w = words
        self.irq = irq
        self._acq = [lk._semlock.acquire for lk in locks]  # type: ignore[attr-defined]
        self._rel = [lk._semlock.release for lk in locks]  # type: ignore[attr-defined]
        self._mask = len(locks) - 1
        # what the locks cost, in the machine's own counters (set by the CPU; -1: not counted)
        self._mm_lo = self._mm_hi = self._mask_lo = 0
        self._c_mm_atomics = self._c_mask_atomics = self._c_contended = self._c_wait_ns = -1
        # the oracle's look at an mm whose page tables the MMU walks (set by the CPU: ``Oracle.touch``)
        self.walk_check: Callable[[int], object] = _walk_nothing
        # which walks a model that performs loads late may hold (set by the CPU; ``WeakAtomics.mmu_walk``)
        self.walk_late: Callable[[int], bool] = _not_late

    def count_costs(self, mm_lo: int, mm_hi: int, mm_atomics: int, contended: int, wait_ns: int) -> None:
        """Count atomics on mm lines ([mm_lo, mm_hi): mm records and masks) and lock contention."""
        self._mm_lo, self._mm_hi = mm_lo, mm_hi
        self._mask_lo = mm_hi  # no split until count_mask_atomics: the compare below never holds
        self._c_mm_atomics, self._c_contended, self._c_wait_ns = mm_atomics, contended, wait_ns

    def count_mask_atomics(self, mask_lo: int, counter: int) -> None:
        """Count the mm-line atomics from ``mask_lo`` on (the ``mm_cpumask`` lines) in ``counter``
        instead: the mm-atomics counter then holds the records' alone, and the reader adds the two
        (``emu.harness.report.sum_counters``). One increment per atomic either way: the hot path
        pays nothing for the split."""
        self._mask_lo, self._c_mask_atomics = mask_lo, counter

    # -- the lock: raise the soft mask first, so no IPI handler runs while it is held --------
    def lock(self, i: int) -> int:
        self.irq.in_atomic += 1
        k = (i >> LINE_SHIFT) & self._mask
        w = self.w
        if self._mm_lo <= i < self._mm_hi:
            w[self._c_mm_atomics if i < self._mask_lo else self._c_mask_atomics] += 1
        acq = self._acq[k]
        if not acq(False):  # contended: another CPU holds the line; time the wait
            t0 = perf_counter_ns()
            for _ in range(LOCK_SPINS):  # a spinlock spins before the host puts the waiter to sleep
                if acq(False):
                    break
            else:
                acq()
            if self._c_contended >= 0:
                w[self._c_contended] += 1
                w[self._c_wait_ns] += perf_counter_ns() - t0
        return k

    # the lock of an RMW on a scheme's data (``mm_count``): weaker than ``lock`` only in the weak model. A copy of
    # ``lock``'s function, not an alias, so that it is a scheduling point (an RMW's access) while the
    # machine's own lock is a wait loop of the hand-over's (``install_points``); the copy costs no call.
    if TYPE_CHECKING:

        def lock_rmw(self, i: int) -> int: ...
    else:
        lock_rmw = PROGRESS(FunctionType(lock.__code__, lock.__globals__, "lock_rmw", lock.__defaults__, lock.__closure__))

    def unlock(self, k: int) -> None:
        self._rel[k]()
        irq = self.irq
        irq.in_atomic -= 1
        if irq.pending:
            irq.replay()

    # -- the oracle's look at a line: no atomic of the load, no barrier, no scheduling point ----------
    def look(self, i: int) -> int:
        """Hold word ``i``'s line, interrupts masked, so that no other CPU's RMW of it is half done while
        the oracle reads it. Not counted among the mm's atomics, a barrier in no memory model (the weak
        model's buffer and view are left as they are), and not a scheduling point: a check must not
        change what it checks. A deterministic mode's acquisition still yields while another CPU holds
        the line (``_acq``). Release with ``unlook``."""
        self.irq.in_atomic += 1
        k = (i >> LINE_SHIFT) & self._mask
        self._acq[k]()
        return k

    def unlook(self, k: int) -> None:
        Atomics.unlock(self, k)

    # -- plain accesses --------------------------------------------------------------------
    @READ
    def READ_ONCE(self, i: int) -> int:
        return self.w[i]

    @PROGRESS
    def WRITE_ONCE(self, i: int, v: int) -> None:
        # under the line's lock, interrupts masked (an IPI handler may take that lock): see _store
        irq = self.irq
        irq.in_atomic += 1
        k = (i >> LINE_SHIFT) & self._mask
        self._acq[k]()
        self.w[i] = v
        self._rel[k]()
        irq.in_atomic -= 1
        if irq.pending:
            irq.replay()

    @READ
    def smp_load_acquire(self, i: int) -> int:
        return self.w[i]

    @PROGRESS
    def smp_store_release(self, i: int, v: int) -> None:
        irq = self.irq
        irq.in_atomic += 1
        k = (i >> LINE_SHIFT) & self._mask
        self._acq[k]()
        self.w[i] = v
        self._rel[k]()
        irq.in_atomic -= 1
        if irq.pending:
            irq.replay()

    def _store(self, i: int, v: int) -> None:
        """A plain store reaching memory (a model's commit of a buffered one; the caller masks
        interrupts): under its line's lock, which every RMW of the word holds from its read to its
        write, so that the store lands before the RMW's read or after its write, never between, where
        the RMW's write would lose it (Documentation/atomic_t.txt: RMWs are atomic with respect to
        ``atomic_set`` and plain stores too). Not ``lock()``: no barrier, no atomic counted."""
        k = (i >> LINE_SHIFT) & self._mask
        self._acq[k]()
        self.w[i] = v
        self._rel[k]()

    @BARRIER
    def smp_mb(self) -> None:
        """A full barrier: nothing to do when every access is already ordered."""

    def store_buffer_drain(self) -> None:
        """Make this CPU's buffered stores visible: nothing is buffered here (see ``emu.machine.memory_model``)."""

    atomic_read = READ_ONCE
    atomic_set = WRITE_ONCE

    # -- the MMU's own load -------------------------------------------------------------------
    def mmu_walk(self, mm: int) -> None:
        """The MMU walks ``mm``'s page tables as the CPU switches away from it (the loaded tables may
        be walked up to the CR3 write): a load of ``mm``'s memory. Under ``sc`` and ``tso`` it is
        performed at once (no load is performed after a later store), while ``mm`` is still loaded:
        an mm freed by then was freed while loaded, which ``Oracle.check_free`` reported at the free,
        so there is nothing to look at (``WeakAtomics`` may perform it late and looks with
        ``walk_check``). Not a scheduling point: no scheme reads its value."""

    walks_late = False  # a model whose mmu_walk may be performed late (``WeakAtomics``)

    def perform_walks(self) -> None:
        """Perform every walk held (a RELEASE the machine makes: csd_unlock): none is held here."""

    # -- read-modify-writes --------------------------------------------------------------
    @PROGRESS
    def atomic_add_return(self, i: int, d: int) -> int:
        k = self.lock(i)
        w = self.w
        v = w[i] + d
        w[i] = v
        self.unlock(k)
        return v

    @PROGRESS
    def atomic_add(self, i: int, d: int) -> None:
        self.atomic_add_return(i, d)

    @PROGRESS
    def atomic_sub(self, i: int, d: int) -> None:
        self.atomic_add_return(i, -d)

    @PROGRESS
    def atomic_inc(self, i: int) -> None:
        self.atomic_add_return(i, 1)

    @PROGRESS
    def atomic_dec(self, i: int) -> None:
        self.atomic_add_return(i, -1)

    @PROGRESS
    def atomic_dec_and_test(self, i: int) -> bool:
        return self.atomic_add_return(i, -1) == 0

    @PROGRESS
    def atomic_xchg(self, i: int, new: int) -> int:
        k = self.lock(i)
        w = self.w
        old = w[i]
        w[i] = new
        self.unlock(k)
        return old

    @PROGRESS
    def atomic_cmpxchg(self, i: int, old: int, new: int) -> int:
        """Store ``new`` if the word holds ``old``; return what it held."""
        k = self.lock(i)
        w = self.w
        cur = w[i]
        if cur == old:
            w[i] = new
        self.unlock(k)
        return cur

    @PROGRESS
    def try_cmpxchg(self, i: int, old: int, new: int) -> tuple[bool, int]:
        """The kernel's ``try_cmpxchg(ptr, &old, new)``: success, and the value seen."""
        cur = self.atomic_cmpxchg(i, old, new)
        return cur == old, cur

    @PROGRESS
    def atomic_inc_not_zero(self, i: int) -> bool:
        """Increment unless the word is 0; True if it did (fully ordered when it does)."""
        k = self.lock(i)
        w = self.w
        v = w[i]
        if v:
            w[i] = v + 1
        self.unlock(k)
        return v != 0

    @PROGRESS
    def rmw_no_return(self, i: int, apply: Callable[[], object]) -> None:
        """An RMW without a return value on the word ``i`` (``atomic_add(n, &mm->mm_count)``), done
        by ``apply`` (which takes the word's lock itself): at once here; a weak model may make it
        visible later, as arm64's ``STADD`` (unordered, like a store)."""
        apply()

    # -- the ordering vocabulary (Documentation/atomic_t.txt, memory-barriers.txt) -----------
    # Here every access is already ordered, so each name is the same operation; a weaker model
    # (``emu.machine.memory_model``) gives each its documented ordering. Plain aliases cost nothing.
    @BARRIER
    def smp_rmb(self) -> None:
        """Order earlier loads before later loads: nothing to do here."""

    @BARRIER
    def smp_wmb(self) -> None:
        """Order earlier stores before later stores: nothing to do here."""

    smp_mb__before_atomic = smp_mb__after_atomic = smp_mb__after_spinlock = smp_mb__after_unlock_lock = smp_mb
    atomic_long_read, atomic_long_set = READ_ONCE, WRITE_ONCE
    rcu_dereference, rcu_assign_pointer = smp_load_acquire, smp_store_release  # dependency order, modelled as acquire

    @PROGRESS
    def atomic_fetch_add(self, i: int, d: int) -> int:
        return self.atomic_add_return(i, d) - d

    @PROGRESS
    def atomic_sub_return(self, i: int, d: int) -> int:
        return self.atomic_add_return(i, -d)

    @PROGRESS
    def atomic_inc_return(self, i: int) -> int:
        return self.atomic_add_return(i, 1)

    @PROGRESS
    def atomic_dec_return(self, i: int) -> int:
        return self.atomic_add_return(i, -1)

    @PROGRESS
    def atomic_sub_and_test(self, i: int, d: int) -> bool:
        return self.atomic_add_return(i, -d) == 0

    atomic_add_return_relaxed = atomic_add_return_acquire = atomic_add_return_release = atomic_add_return
    atomic_sub_return_relaxed = atomic_sub_return_acquire = atomic_sub_return_release = atomic_sub_return
    atomic_inc_return_relaxed = atomic_inc_return_acquire = atomic_inc_return_release = atomic_inc_return
    atomic_dec_return_relaxed = atomic_dec_return_acquire = atomic_dec_return_release = atomic_dec_return
    atomic_fetch_add_relaxed = atomic_fetch_add_acquire = atomic_fetch_add_release = atomic_fetch_add
    atomic_xchg_relaxed = atomic_xchg_acquire = atomic_xchg_release = atomic_xchg
    atomic_cmpxchg_relaxed = atomic_cmpxchg_acquire = atomic_cmpxchg_release = atomic_cmpxchg
    xchg = xchg_relaxed = xchg_acquire = xchg_release = atomic_xchg
    cmpxchg = cmpxchg_relaxed = cmpxchg_acquire = cmpxchg_release = atomic_cmpxchg
    try_cmpxchg_relaxed = try_cmpxchg_acquire = try_cmpxchg_release = try_cmpxchg
    atomic_try_cmpxchg = try_cmpxchg
    atomic_try_cmpxchg_relaxed = atomic_try_cmpxchg_acquire = atomic_try_cmpxchg_release = try_cmpxchg
    atomic_long_xchg, atomic_long_xchg_relaxed = atomic_xchg, atomic_xchg
    atomic_long_cmpxchg, atomic_long_try_cmpxchg, atomic_long_try_cmpxchg_relaxed = atomic_cmpxchg, try_cmpxchg, try_cmpxchg

    # -- spinlocks: lock is ACQUIRE, unlock RELEASE (for litmus patterns; the machine's own locks are ``lock``) --
    @PROGRESS
    def spin_lock(self, i: int) -> None:
        spins = 0
        while not self.try_cmpxchg_acquire(i, 0, 1)[0]:
            while self.READ_ONCE(i):
                spins += 1
                if spins > LOCK_SPINS:  # the holder may be a process the host has not scheduled
                    os.sched_yield()

    @PROGRESS
    def spin_unlock(self, i: int) -> None:
        self.smp_store_release(i, 0)

    # -- cpumask: 32 CPUs a word, so a word never needs the sign bit ----------------------------
    @PROGRESS
    def cpumask_set_cpu(self, mask: int, cpu: int) -> None:
        i = mask + (cpu >> 5)
        k = self.lock(i)
        self.w[i] |= 1 << (cpu & 31)
        self.unlock(k)

    @PROGRESS
    def cpumask_clear_cpu(self, mask: int, cpu: int) -> None:
        i = mask + (cpu >> 5)
        k = self.lock(i)
        self.w[i] &= ~(1 << (cpu & 31))
        self.unlock(k)

    # a model whose loads may be satisfied from a stale view of memory (``WeakAtomics``); ``view_load`` is
    # such a load (a plain one here), not a scheduling point: for an inline read (``Arch.in_mm_cpumask``)
    loads_stale = False

    def view_load(self, i: int) -> int:
        return self.w[i]

    @READ
    def cpumask_test_cpu(self, mask: int, cpu: int) -> bool:
        return bool(self.w[mask + (cpu >> 5)] >> (cpu & 31) & 1)

    @READ
    def for_each_cpu(self, mask: int, ncpus: int) -> Iterator[int]:
        """Iterate the set bits, reading each word once (a racy snapshot, as in the kernel)."""
        for wi in range((ncpus + 31) >> 5):
            bits = self.w[mask + wi]
            while bits:
                low = bits & -bits
                yield (wi << 5) + low.bit_length() - 1
                bits ^= low

    @READ
    def cpumask_weight(self, mask: int, ncpus: int) -> int:
        return sum(bin(self.w[mask + wi]).count("1") for wi in range((ncpus + 31) >> 5))

    # -- for tests: the read-modify-write that the locks exist to prevent --------------------
    def unlocked_inc(self, i: int) -> None:
        self.w[i] = self.w[i] + 1
