"""Memory models: which order other CPUs see a CPU's scheme stores in.

``sc`` (sequentially consistent) is the plain ``Atomics``: every store is visible at once.

``tso`` is x86's total store order, modelled the way the hardware does it: every CPU has a
private FIFO store buffer. ``WRITE_ONCE``/``atomic_set``/``smp_store_release`` enter it and
reach the shared segment later, oldest first; a CPU's own loads see its own buffered stores
(store forwarding), other CPUs' loads do not. The buffer is drained

- one entry at a time at random points (each access through the API may commit the oldest
  entry, drawn from a generator seeded by the run seed and the CPU), and whole when full;
- entirely at ``smp_mb``, before any locked read-modify-write (``lock()``: atomics, xchg,
  cmpxchg, cpumask updates, the checked ``mm_count``/``mm_users`` updates), at interrupt entry,
  before an IPI is sent, and before the CPU idles, so a store never lingers forever.

What TSO implies for the one-sided barriers: loads are not reordered with loads, stores not
with stores, and a load is not reordered with a later store; only a store followed by a load
(the store-buffering pattern) can appear reordered. So ``smp_load_acquire`` is a plain load
and ``smp_store_release`` a plain buffered store (the FIFO already puts it after every earlier
store); neither drains. Only ``smp_mb`` (x86 ``mfence``/``lock; addl``) and locked
instructions order an earlier store before a later load.

``weak`` (``WeakAtomics``) is the ordering of Documentation/atomic_t.txt and memory-barriers.txt
as LKMM states it, for the weakly ordered architectures: stores become visible out of order
and loads can be satisfied out of order (its rules are in ``WeakAtomics``' docstring).

``arch`` runs each architecture on the model its class declares (``Arch.memory_model``, with the
reason in each model's module; an arch mutant runs on its architecture's): x86 (both models) and
s390 on ``tso``; arm64, powerpc, riscv (both models) and loongarch on ``weak``; a model that declares none runs on ``sc``.

Only what schemes access through this API is buffered. The machine's own bookkeeping (the
scheduler's ``active_mm``/loaded mm, task table, inboxes, mailboxes, counters), which writes
the segment directly, is always visible at once, so the oracle keeps seeing the true state. The
lazy user's own load of the mm, the MMU's walk of the outgoing tables up to the CR3 write, goes
through the model (``mmu_walk``): ``weak`` may perform it late (``WeakAtomics.mmu_walk``).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.synchronize import Lock
from typing import TYPE_CHECKING

from emu.machine.atomics import LINE_SHIFT, Atomics

if TYPE_CHECKING:
    from emu.machine.irq import Irq

MEMORY_MODELS = ("sc", "tso", "weak", "arch")
MACHINE_MODELS = ("sc", "tso", "weak")  # what an architecture may declare as its own
STORE_BUFFER_ENTRIES = 16  # a small buffer: x86 has ~50, but a Python access is ~100x slower
COMMIT_P = 0.1  # per access, the chance that the oldest buffered store reaches memory


def _no_commit() -> None:
    pass


class TsoAtomics(Atomics):
    """``Atomics`` with a per-CPU FIFO store buffer in front of the shared segment."""

    def __init__(self, words: memoryview, locks: Sequence[Lock], irq: Irq, seed: int) -> None:
        super().__init__(words, locks, irq)
        self._rand = random.Random(seed).random
        self._fifo: deque[tuple[int, int]] = deque()
        self._fwd: dict[int, list[int]] = {}  # address -> [entries buffered, newest value]

    # -- the buffer: every change with interrupts masked, since an IPI handler uses it too ------
    def _commit_oldest(self) -> None:
        i, v = self._fifo.popleft()
        self._store(i, v)
        f = self._fwd[i]
        f[0] -= 1
        if not f[0]:
            del self._fwd[i]

    def _unmask(self) -> None:
        irq = self.irq
        irq.in_atomic -= 1
        if irq.pending:
            irq.replay()

    def store_buffer_drain(self) -> None:
        fifo = self._fifo
        if fifo:
            self.irq.in_atomic += 1
            store = self._store
            while fifo:
                i, v = fifo.popleft()
                store(i, v)
            self._fwd.clear()
            self._unmask()

    def _maybe_commit(self) -> None:
        if self._fifo and self._rand() < COMMIT_P:
            self.irq.in_atomic += 1
            if self._fifo:
                self._commit_oldest()
            self._unmask()

    def commit_only_when_forced(self) -> None:
        """No early commits: a buffered store reaches memory only where TSO forces it (``smp_mb``, a locked op,
        interrupt entry, before an IPI, before idling, a wait loop's spin, a full buffer). The choice of a policy
        that declares ``tso_early_commits = False`` (``--sched explore``, and replays of its schedules): it enumerates
        schedules, not commit points, and with no early commit every schedule shows each store->load reordering
        it can, with no draw of the seed in it. The explorer may still commit early, as one of its decisions
        (``commit_oldest``, ``explore --tso-commits``)."""
        self._maybe_commit = _no_commit  # type: ignore[method-assign]

    def buffered(self) -> int:
        """The stores in the buffer, not yet in memory."""
        return len(self._fifo)

    def commit_oldest(self) -> None:
        """An early commit decided by the scheduler (``explore --tso-commits``, and its replays): the oldest
        buffered store reaches memory now, the store buffer acting as a thread of its own that the schedule runs."""
        if self._fifo:
            self.irq.in_atomic += 1
            self._commit_oldest()
            self.irq.in_atomic -= 1

    # -- plain accesses --------------------------------------------------------------------
    def READ_ONCE(self, i: int) -> int:
        self._maybe_commit()
        f = self._fwd.get(i)
        return self.w[i] if f is None else f[1]

    def WRITE_ONCE(self, i: int, v: int) -> None:
        self.irq.in_atomic += 1
        self._fifo.append((i, v))
        f = self._fwd.get(i)
        if f is None:
            self._fwd[i] = [1, v]
        else:
            f[0] += 1
            f[1] = v
        if len(self._fifo) > STORE_BUFFER_ENTRIES:
            self._commit_oldest()
        self._unmask()
        self._maybe_commit()

    smp_load_acquire = READ_ONCE  # TSO: loads are not reordered with later accesses
    smp_store_release = WRITE_ONCE  # TSO: the FIFO keeps it after every earlier store
    atomic_read = atomic_long_read = rcu_dereference = READ_ONCE
    atomic_set = atomic_long_set = rcu_assign_pointer = WRITE_ONCE
    # smp_rmb, smp_wmb, smp_mb__{before,after}_atomic, __after_spinlock: compiler barriers on x86
    # (arch/x86/include/asm/barrier.h), as in the base class: every locked op already drains

    def smp_mb(self) -> None:
        self.store_buffer_drain()

    # -- locked instructions drain the buffer first ------------------------------------------
    def lock(self, i: int) -> int:
        if self._fifo:
            self.store_buffer_drain()
        return super().lock(i)

    lock_rmw = lock  # x86: every locked instruction drains

    def unlocked_inc(self, i: int) -> None:
        self.WRITE_ONCE(i, self.READ_ONCE(i) + 1)


# -- weak ------------------------------------------------------------------------------------
WEAK_BUFFER_ENTRIES = 8  # stores a CPU may hold back; more gives nothing the litmus patterns need
VIEW_ENTRIES = 16  # words a CPU keeps a possibly stale copy of (the lines in its cache)
STALE_P = 0.5  # per load, the chance that it is satisfied from the copy, not from memory
WALK_ENTRIES = 4  # walks a CPU may hold unperformed; more are performed oldest first
WEAK_COMMIT_P = 0.5  # per access: the buffer is shallow and leaky, so that another CPU sees the reordered stores
# a deterministic mode: when a store after a held walk reaches memory (the reordering is visible), the
# chance that the CPU loses the turn there (``window_stall``), as a host may deschedule a free-running CPU
WINDOW_STALL_P = 0.5


class WeakAtomics(Atomics):
    """``Atomics`` as Documentation/atomic_t.txt and memory-barriers.txt order them, and no more.

    Two private structures per CPU, both in the CPU's own process:

    - A **store buffer** that is not FIFO: ``WRITE_ONCE``/``atomic_set`` append ``(addr, value,
      epoch)``; at random points (``WEAK_COMMIT_P`` per access, from a generator seeded by the run seed
      and the CPU) one *eligible* entry reaches memory: the oldest store to its address (so a
      CPU's stores to one word stay in order: CoWW), and of the lowest epoch in the buffer.
      ``smp_wmb`` starts a new epoch, so no later store passes an earlier one; a
      ``smp_store_release`` starts one and joins it (every earlier store is visible first;
      later stores may pass it, but not the stores before it: stronger than release, sound).
      A CPU's own loads see its newest buffered write to the word (forwarding: CoWR); when that
      write is a deferred RMW (below), whose value only memory can give, the buffer is committed
      in program order up to it and the load reads memory.
    - A **view**: the value of each of the last ``VIEW_ENTRIES`` words the CPU read or wrote, as
      it read or wrote it. A load not forwarded is satisfied from the view with ``STALE_P``
      (the load performed when the view was filled: earlier than program order says, which is
      what reordering a load before earlier loads and stores is), else from memory, which
      refills the view. Since the view holds the latest value this CPU saw of each word,
      loads of one word never go backwards (CoRR, CoRW).

    The barriers: ``smp_mb`` (and ``store_buffer_drain``, used by the machine at interrupt
    entry, before an IPI, before idling) empties the buffer (in an order its rules allow) and *refreshes*
    the view: every entry is re-read from memory (or from the buffer), so a later load is
    performed after the barrier, yet may still be satisfied before a later load (this keeps
    load-load reordering possible from the first access after a barrier, without which no
    pattern that starts from a barrier could show it). ``smp_rmb`` and every ACQUIRE
    (``smp_load_acquire``, ``_acquire`` RMWs, ``spin_lock``) refresh the view; an acquire load
    reads memory. ``smp_wmb`` and RELEASE order the buffer as above; a ``_release`` RMW empties
    the buffer first. A fully ordered RMW (``atomic_*_return``, ``atomic_dec_and_test``,
    ``atomic_inc_not_zero`` when it increments, ``xchg``, ``cmpxchg``/``try_cmpxchg`` when they
    succeed) empties the buffer before and refreshes the view after; ``smp_mb__before_atomic``
    / ``__after_atomic`` / ``__after_spinlock`` are ``smp_mb``. Unordered RMWs (``atomic_inc``
    and the other RMWs without a return value, ``_relaxed`` forms, cpumask bitops, a failed
    cmpxchg) only commit this CPU's buffered stores to the word's cache line first and drop the
    line from the view (coherence: the RMW reads the newest value and later loads see it). An RMW
    without a return value on a scheme's counter (``rmw_no_return``: the 2022 scheme's
    ``atomic_add``/``atomic_sub`` of ``mm_count``) enters the buffer like a store and is applied,
    atomically, when it commits (arm64's ``STADD``), so a later store or RMW to another word can
    become visible before it; to its own word, it keeps its place among this CPU's writes (its
    lock commits none of this CPU's later stores ahead of it: CoWW). The machine's own locks (``lock()``) are full barriers,
    and their unlock re-reads the view (the section's direct writes, a new mm's masks, are this CPU's own).
    ``mm_cpumask`` reads (``for_each_cpu``, ``cpumask_test_cpu``, ``cpumask_weight``, ``view_load`` for an
    arch's look at its own bit) are plain loads, each word through the view.

    Memory itself is one array that every store reaches at once when it commits, so the model
    is multi-copy atomic (other-multi-copy atomic, as arm64, for a CPU's own stores).

    The MMU's walk of an outgoing lazy mm (``mmu_walk``) is a load performed late: held until a
    barrier that orders an earlier load before later accesses, so a plain store after it (a hazard
    pointer's clear) can be visible first. In a deterministic mode the CPU may lose the turn where a store
    issued after the held walk reaches memory (``window_stall``, ``WINDOW_STALL_P``), as a host may
    deschedule a free-running CPU there: without it PCT almost never paused the CPU in that window.

    What it cannot produce, all allowed by LKMM: load buffering (LB: a load never returns a
    value from a store that is later in another CPU's program order, since a load returns at
    once; only the MMU's walk, whose value no code consumes, is performed late); outcomes that
    need stores to reach CPUs at different times (IRIW or WRC with ``smp_rmb``/acquire on the
    readers, which powerpc, not multi-copy atomic, allows: only the barrier-free IRIW, through
    the readers' load reordering, appears); a failed ``cmpxchg``
    letting an earlier store pass it (the buffer is emptied before every fully ordered
    attempt; the *later* loads are unordered, which cmpxchg-fail-unordered shows); stores
    after a release passing the stores before it. Address dependencies are not tracked: a
    load whose address comes from an earlier load must use ``rcu_dereference`` (here an
    acquire) or ``smp_load_acquire``. The machine's own bookkeeping written straight into the
    segment (task table, inboxes, CR3's truth) is outside the model; why each of these is so, and
    what it would cost, is in docs/memory-models.md.
    """

    def __init__(self, words: memoryview, locks: Sequence[Lock], irq: Irq, seed: int) -> None:
        super().__init__(words, locks, irq)
        rng = random.Random(seed)
        self._rand, self._pick = rng.random, rng.randrange
        # (addr, value, epoch), program order; the value of a deferred RMW (rmw_no_return) is its function
        self._buf: list[tuple[int, int | Callable[[], object], int]] = []
        self._epoch = 0
        self._view: dict[int, int] = {}  # addr -> the value this CPU last saw there, oldest first
        self._rmw = False  # inside an RMW of the vocabulary: lock() is lock_rmw()
        self._deferred = False  # applying a buffered RMW without return value (rmw_no_return)
        self._walks: list[int] = []  # mms whose page-table walk (mmu_walk) is issued, not yet performed
        self._machine_locks = 0  # machine locks (lock(), not an RMW's) held: their unlock re-reads the view
        # a deterministic mode's stall (DetSched.preempt, set by the CPU); None in free-running mode
        self.window_stall: Callable[[], None] | None = None
        self._stored_after_walk = False  # a store issued since a walk was held
        self._window = False  # such a store reached memory while the walk is still held

    # -- the buffer and the view: changed with interrupts masked, since an IPI handler uses them --
    def _unmask(self) -> None:
        irq = self.irq
        irq.in_atomic -= 1
        if irq.pending:
            irq.replay()

    def _commit_one(self) -> None:
        """Commit one eligible entry, chosen at random (in atomic context)."""
        buf = self._buf
        lo, seen, ok = buf[0][2], set(), []
        for j, (i, _, e) in enumerate(buf):
            if e != lo:
                break  # epochs never decrease in program order: the rest is behind a barrier
            if i not in seen:
                seen.add(i)
                ok.append(j)
        i, v, _ = buf.pop(ok[self._pick(len(ok))])
        self._apply(i, v)
        if self._stored_after_walk and self._walks:
            self._window = True

    def _open_window(self) -> None:
        """A store after a held walk became visible: in a deterministic mode the CPU may lose the turn
        here, for a stall, with ``WINDOW_STALL_P`` (from its seeded draws), so that another CPU can act
        on the store (free the mm) while the walk is still unperformed: the schedule a free-running host
        makes when it deschedules the CPU process there. The walk stays held: nothing here orders it."""
        self._window = False
        if self.window_stall is not None and self._walks and self._rand() < WINDOW_STALL_P:
            self.window_stall()

    def _apply(self, i: int, v: int | Callable[[], object]) -> None:
        if isinstance(v, int):
            self._store(i, v)
        else:  # a deferred RMW without return value: it takes the word's lock now
            self._deferred = True  # its lock_rmw must not commit this CPU's later stores before it (CoWW)
            try:
                v()
            finally:
                self._deferred = False

    def _maybe_commit(self) -> None:
        if self._buf and self._rand() < WEAK_COMMIT_P:
            self._commit_one()

    def _remember(self, i: int, v: int) -> None:
        view = self._view
        if i in view:
            del view[i]  # re-insert: the view's order is the order of last use
        elif len(view) >= VIEW_ENTRIES:
            del view[next(iter(view))]
        view[i] = v

    def _drain(self) -> None:
        """Empty the buffer, in any order its epochs and addresses allow (another CPU may look meanwhile);
        every barrier that drains (smp_mb, a fully ordered or release RMW, the machine's locks) performs
        the pending walks first: they are earlier loads."""
        if self._walks:
            self._perform_walks()
        buf = self._buf
        if buf:
            self.irq.in_atomic += 1
            while buf:
                self._commit_one()
            self._unmask()

    def _refresh(self) -> None:
        """Every later load is performed from now on: re-read the view (own buffered stores win)."""
        view = self._view
        if view:
            self.irq.in_atomic += 1
            w = self.w
            for i in view:
                view[i] = w[i]
            for i, v, _ in self._buf:
                if i in view and type(v) is int:
                    view[i] = v
            self._unmask()

    def _forward(self, i: int) -> int | None:
        """This CPU's newest buffered write to ``i`` (in atomic context): a store's value; for a
        deferred RMW without return value, whose value only memory can give, the buffer is
        committed in program order up to it and ``i`` dropped from the view, so that the load
        reads memory (None), as for a word with nothing buffered. A CPU always reads its own latest
        write to a location (CoWR), a buffered ``atomic_add`` included."""
        buf = self._buf
        for j in range(len(buf) - 1, -1, -1):
            e = buf[j]
            if e[0] == i:
                if type(e[1]) is int:
                    return e[1]
                head = buf[: j + 1]
                del buf[: j + 1]  # first: a deferred RMW applied here takes locks of its own
                for a, v, _ in head:  # a prefix in program order: every epoch and address rule holds
                    self._apply(a, v)
                self._view.pop(i, None)
                return None
        return None

    def store_buffer_drain(self) -> None:
        self._drain()
        self._refresh()

    # -- the MMU's walk of an mm the CPU leaves: a load that may be performed late -------------
    def mmu_walk(self, mm: int) -> None:
        """The walk of the outgoing mm's page tables at the CR3 write (``Arch.load_mm``). When the CPU
        was lazy on that mm (``walk_late``: it is not the current task's own, whose later users the
        scheduler's ``prev->on_cpu`` release and acquire order after it), the load is held and
        performed at the next barrier that orders an earlier load before later accesses (``smp_mb``,
        ``smp_rmb``, a RELEASE store or RMW, a fully ordered RMW, the machine's locks, interrupt
        entry, idling), not at a plain store: so a plain ``WRITE_ONCE`` that ends the lazy use (a
        hazard pointer's clear) may be visible, and the mm freed, before the walk reads it. LKMM
        allows that (a load is not ordered before a later independent store: LB); the walk's value
        feeds no program logic, so performing it late needs no speculation, unlike LB in general."""
        if self.walk_late(mm):
            walks = self._walks
            if not walks:
                self._stored_after_walk = False
            walks.append(mm)
            if len(walks) > WALK_ENTRIES:
                self.walk_check(walks.pop(0))
        else:
            self.walk_check(mm)

    walks_late = True

    def _perform_walks(self) -> None:
        walks, self._walks = self._walks, []
        for mm in walks:
            self.walk_check(mm)

    def perform_walks(self) -> None:
        if self._walks:
            self._perform_walks()

    # -- plain accesses --------------------------------------------------------------------
    def READ_ONCE(self, i: int) -> int:
        self.irq.in_atomic += 1
        self._maybe_commit()
        v = self._forward(i) if self._buf else None
        if v is None:
            v = self._view.get(i)
            if v is None or self._rand() >= STALE_P:
                v = self.w[i]
            self._remember(i, v)
        self._unmask()
        if self._window:
            self._open_window()
        return v

    def WRITE_ONCE(self, i: int, v: int) -> None:
        self.irq.in_atomic += 1
        buf = self._buf
        buf.append((i, v, self._epoch))
        self._remember(i, v)
        if self._walks:
            self._stored_after_walk = True
        if len(buf) > WEAK_BUFFER_ENTRIES:
            self._commit_one()
        self._maybe_commit()
        self._unmask()
        if self._window:
            self._open_window()

    def smp_load_acquire(self, i: int) -> int:
        self.irq.in_atomic += 1
        self._maybe_commit()
        v = self._forward(i) if self._buf else None
        if v is None:
            v = self.w[i]
        self._remember(i, v)
        self._unmask()
        self._refresh()
        if self._window:
            self._open_window()
        return v

    def smp_store_release(self, i: int, v: int) -> None:
        if self._walks:
            self._perform_walks()  # earlier loads before the release (stronger than LKMM: before later stores too)
        if self._buf:
            self._epoch += 1  # every earlier store first
        self.WRITE_ONCE(i, v)

    def smp_mb(self) -> None:
        self._drain()
        self._refresh()

    def smp_rmb(self) -> None:
        if self._walks:
            self._perform_walks()
        self._refresh()

    def smp_wmb(self) -> None:
        if self._buf:
            self._epoch += 1

    smp_mb__before_atomic = smp_mb__after_atomic = smp_mb__after_spinlock = smp_mb__after_unlock_lock = smp_mb
    atomic_read = atomic_long_read = READ_ONCE
    atomic_set = atomic_long_set = WRITE_ONCE
    rcu_dereference, rcu_assign_pointer = smp_load_acquire, smp_store_release

    # -- locked operations ------------------------------------------------------------------
    def lock(self, i: int) -> int:
        """The machine's own locks (run queues, inboxes, the oracle's looks) are full barriers, as
        the kernel's scheduler handoffs are ordered (``smp_mb__after_spinlock`` in ``__schedule``,
        the release of ``prev->on_cpu`` and its acquire in ``try_to_wake_up``); an RMW of the
        vocabulary takes it through ``lock_rmw``, which orders nothing by itself."""
        if self._rmw:
            return self.lock_rmw(i)
        self._drain()
        self._refresh()
        k = self.lock_rmw(i)
        self._machine_locks += 1
        return k

    def unlock(self, k: int) -> None:
        """A machine lock's section writes the segment directly (a new mm's masks at ``mm_alloc``): the
        view is re-read after it, so that this CPU's later loads see its own writes (coherence)."""
        super().unlock(k)
        if self._machine_locks:
            self._machine_locks -= 1
            self._refresh()

    def lock_rmw(self, i: int) -> int:
        """Coherence with this CPU's own buffered stores and view for the word's line, then the lock."""
        if self._buf or self._view:
            self.irq.in_atomic += 1
            line = i >> LINE_SHIFT
            buf = self._buf
            last = -1
            for j in range(0 if self._deferred else len(buf)):  # a deferred RMW: every older store to its word is out
                if buf[j][0] >> LINE_SHIFT == line:
                    last = j
            if last >= 0:  # commit up to the last store to the line, in program order (always allowed)
                head = buf[: last + 1]
                del buf[: last + 1]  # first: a deferred RMW applied here takes locks of its own
                for a, v, _ in head:
                    self._apply(a, v)
            view = self._view
            for a in [a for a in view if a >> LINE_SHIFT == line]:
                del view[a]
            self._unmask()
        return super().lock(i)

    def unlocked_inc(self, i: int) -> None:
        self.WRITE_ONCE(i, self.READ_ONCE(i) + 1)

    # -- mm_cpumask reads: plain loads (test_bit, find_next_bit), each word through the view ------------
    loads_stale = True

    def view_load(self, i: int) -> int:
        return WeakAtomics.READ_ONCE(self, i)  # the class's: not a second scheduling point

    def cpumask_test_cpu(self, mask: int, cpu: int) -> bool:
        return bool(WeakAtomics.READ_ONCE(self, mask + (cpu >> 5)) >> (cpu & 31) & 1)

    def for_each_cpu(self, mask: int, ncpus: int) -> Iterator[int]:
        load = WeakAtomics.READ_ONCE
        for wi in range((ncpus + 31) >> 5):
            bits = load(self, mask + wi)
            while bits:
                low = bits & -bits
                yield (wi << 5) + low.bit_length() - 1
                bits ^= low

    def cpumask_weight(self, mask: int, ncpus: int) -> int:
        load = WeakAtomics.READ_ONCE
        return sum(bin(load(self, mask + wi)).count("1") for wi in range((ncpus + 31) >> 5))

    def rmw_no_return(self, i: int, apply: Callable[[], object]) -> None:
        """Buffered like a store (arm64's ``STADD``): it reaches memory, atomically, when committed."""
        self.irq.in_atomic += 1
        self._buf.append((i, apply, self._epoch))  # type: ignore[arg-type]
        if len(self._buf) > WEAK_BUFFER_ENTRIES:
            self._commit_one()
        self._unmask()


def _ordered(raw: Callable[..., object], order: str, ok: Callable[[tuple[int, ...], object], bool] | None = None) -> Callable[..., object]:
    """A locked RMW with the ordering its name documents: ``full``: an smp_mb on each side (the
    one after only when ``ok`` says it succeeded); ``acquire``: later loads after; ``release``:
    earlier stores before; ``relaxed``: neither (``lock`` keeps coherence)."""
    before, after = order in ("full", "release"), order in ("full", "acquire")

    def op(self: WeakAtomics, *args: int) -> object:
        if before:
            self._drain()
        self._rmw = True
        try:
            r = raw(self, *args)
        finally:
            self._rmw = False
        if after and (ok is None or ok(args, r)):
            self._refresh()
        return r

    return op


def _add_return(self: Atomics, i: int, d: int) -> int:
    return Atomics.atomic_add_return(self, i, d)


def _sub_return(self: Atomics, i: int, d: int) -> int:
    return Atomics.atomic_add_return(self, i, -d)


def _inc_return(self: Atomics, i: int) -> int:
    return Atomics.atomic_add_return(self, i, 1)


def _dec_return(self: Atomics, i: int) -> int:
    return Atomics.atomic_add_return(self, i, -1)


def _fetch_add(self: Atomics, i: int, d: int) -> int:
    return Atomics.atomic_add_return(self, i, d) - d


def _dec_and_test(self: Atomics, i: int) -> bool:
    return Atomics.atomic_add_return(self, i, -1) == 0


def _sub_and_test(self: Atomics, i: int, d: int) -> bool:
    return Atomics.atomic_add_return(self, i, -d) == 0


def _try_cmpxchg(self: Atomics, i: int, old: int, new: int) -> tuple[bool, int]:
    cur = Atomics.atomic_cmpxchg(self, i, old, new)
    return cur == old, cur


def _cmpxchg_ok(args: tuple[int, ...], r: object) -> bool:
    return r == args[1]


def _try_ok(args: tuple[int, ...], r: object) -> bool:
    return bool(r[0])  # type: ignore[index]


def _truthy(args: tuple[int, ...], r: object) -> bool:
    return bool(r)


def _install_weak_rmws() -> None:
    """Give ``WeakAtomics`` every RMW name of the base class with its documented ordering."""
    families: list[tuple[str, Callable[..., object], Callable[[tuple[int, ...], object], bool] | None]] = [
        ("atomic_add_return", _add_return, None),
        ("atomic_sub_return", _sub_return, None),
        ("atomic_inc_return", _inc_return, None),
        ("atomic_dec_return", _dec_return, None),
        ("atomic_fetch_add", _fetch_add, None),
        ("atomic_xchg", Atomics.atomic_xchg, None),
        ("xchg", Atomics.atomic_xchg, None),
        ("atomic_cmpxchg", Atomics.atomic_cmpxchg, _cmpxchg_ok),
        ("cmpxchg", Atomics.atomic_cmpxchg, _cmpxchg_ok),
        ("try_cmpxchg", _try_cmpxchg, _try_ok),
        ("atomic_try_cmpxchg", _try_cmpxchg, _try_ok),
    ]
    for name, raw, ok in families:
        setattr(WeakAtomics, name, _ordered(raw, "full", ok))
        for suffix in ("relaxed", "acquire", "release"):
            setattr(WeakAtomics, f"{name}_{suffix}", _ordered(raw, suffix, ok))
    full: dict[str, tuple[Callable[..., object], Callable[[tuple[int, ...], object], bool] | None]] = {
        "atomic_dec_and_test": (_dec_and_test, None),
        "atomic_sub_and_test": (_sub_and_test, None),
        "atomic_inc_not_zero": (Atomics.atomic_inc_not_zero, _truthy),  # ordered only when it increments
        "atomic_long_xchg": (Atomics.atomic_xchg, None),
        "atomic_long_cmpxchg": (Atomics.atomic_cmpxchg, _cmpxchg_ok),
        "atomic_long_try_cmpxchg": (_try_cmpxchg, _try_ok),
    }
    for name, (raw, ok) in full.items():
        setattr(WeakAtomics, name, _ordered(raw, "full", ok))
    relaxed: dict[str, Callable[..., object]] = {
        "atomic_add": _add_return,  # the RMWs without a return value: unordered
        "atomic_sub": _sub_return,
        "atomic_inc": _inc_return,
        "atomic_dec": _dec_return,
        "atomic_long_xchg_relaxed": Atomics.atomic_xchg,
        "atomic_long_try_cmpxchg_relaxed": _try_cmpxchg,
        "cpumask_set_cpu": Atomics.cpumask_set_cpu,  # set_bit: unordered
        "cpumask_clear_cpu": Atomics.cpumask_clear_cpu,
    }
    for name, raw in relaxed.items():
        setattr(WeakAtomics, name, _ordered(raw, "relaxed"))


_install_weak_rmws()


def make_atomics(model: str, words: memoryview, locks: Sequence[Lock], irq: Irq, seed: int) -> Atomics:
    """The atomics of ``model`` (``sc``, ``tso`` or ``weak``; ``arch`` is resolved above, from the
    model the architecture declares: ``emu.arch.base.Arch.memory_model``)."""
    if model == "tso":
        return TsoAtomics(words, locks, irq, seed)
    if model == "weak":
        return WeakAtomics(words, locks, irq, seed)
    return Atomics(words, locks, irq)
