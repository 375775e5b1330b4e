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
