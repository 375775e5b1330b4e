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

Only what schemes access through this API is buffered. The machine's own bookkeeping (the
scheduler's ``active_mm``/loaded mm, task table, inboxes, mailboxes, counters), which writes
the segment directly, is always visible at once, so the oracle keeps seeing the true state.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence
from multiprocessing.synchronize import Lock
from typing import TYPE_CHECKING

from emu.atomics import Atomics

if TYPE_CHECKING:
    from emu.irq import Irq

MEMORY_MODELS = ("sc", "tso")
STORE_BUFFER_ENTRIES = 16  # a small buffer: x86 has ~50, but a Python access is ~100x slower
COMMIT_P = 0.1  # per access, the chance that the oldest buffered store reaches memory


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
        self.w[i] = v
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
            w = self.w
            while fifo:
                i, v = fifo.popleft()
                w[i] = v
            self._fwd.clear()
            self._unmask()

    def _maybe_commit(self) -> None:
        if self._fifo and self._rand() < COMMIT_P:
            self.irq.in_atomic += 1
            if self._fifo:
                self._commit_oldest()
            self._unmask()

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
    atomic_read = READ_ONCE
    atomic_set = WRITE_ONCE

    def smp_mb(self) -> None:
        self.store_buffer_drain()

    # -- locked instructions drain the buffer first ------------------------------------------
    def lock(self, i: int) -> int:
        if self._fifo:
            self.store_buffer_drain()
        return super().lock(i)

    def unlocked_inc(self, i: int) -> None:
        self.WRITE_ONCE(i, self.READ_ONCE(i) + 1)


def make_atomics(model: str, words: memoryview, locks: Sequence[Lock], irq: Irq, seed: int) -> Atomics:
    if model == "tso":
        return TsoAtomics(words, locks, irq, seed)
    return Atomics(words, locks, irq)
