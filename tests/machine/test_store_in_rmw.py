"""A plain store is never lost inside another CPU's RMW of the word.

An emulated RMW reads the word and writes it back under the word's line lock. Up to this change a
plain store (``WRITE_ONCE``, or a ``tso``/``weak`` buffer's commit of one) wrote the word without
that lock, so a store landing between the RMW's read and its write was overwritten: after
``WRITE_ONCE(x, 1)`` on one CPU and ``atomic_add(2, x)`` on another, x could end 2, which
Documentation/atomic_t.txt forbids (an RMW is atomic with respect to plain stores too; the
LKMM outcome set is x == 1 or x == 3). Each case is one scripted interleaving, in two threads of
this process: CPU 1's RMW holds the line lock and has read x when CPU 0's store runs; CPU 1 goes on
only once the store either reached memory (the old code: lost) or waits for the lock (this code).
"""

from __future__ import annotations

import threading

import pytest

from emu.harness.testbed import Testbed
from emu.machine.atomics import LINE_SHIFT


@pytest.mark.parametrize("model", ["sc", "tso", "weak"])
@pytest.mark.parametrize("store", ["WRITE_ONCE", "smp_store_release", "atomic_set"])
def test_a_plain_store_landing_inside_another_cpus_rmw_is_not_lost(model: str, store: str) -> None:
    with Testbed(cpus=2, memory_model=model) as tb:
        a, b = tb.local_cpu(0).atomics, tb.local_cpu(1).atomics
        a._rand = lambda: 0.99  # type: ignore[attr-defined]  # a buffered store commits only at the barrier
        x = tb.scratch(0)
        w = tb.words
        k = (x >> LINE_SHIFT) & a._mask
        reached = threading.Event()  # the store reached memory, or waits for the line's lock
        acquire = a._acq[k]

        def waiting_acquire(*args: object) -> bool:
            reached.set()
            return acquire(*args)

        a._acq[k] = waiting_acquire

        def cpu0() -> None:
            getattr(a, store)(x, 1)
            a.smp_mb()  # a buffered store reaches memory here, inside CPU 1's RMW
            reached.set()

        t = threading.Thread(target=cpu0)
        kb = b.lock_rmw(x)  # CPU 1: atomic_add(2, x), as Atomics.atomic_add_return does it
        old = w[x]
        t.start()
        reached.wait()
        w[x] = old + 2
        b.unlock(kb)
        t.join()
        assert w[x] in (1, 3), f"x == {w[x]}: CPU 0's {store} of 1 was lost inside CPU 1's atomic_add"
