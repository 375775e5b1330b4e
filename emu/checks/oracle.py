"""The oracle: generic checks that know nothing about which scheme is running.

- A CPU that touches an mm (the MMU walking its page tables while it is active or lazy, and
  every dereference in scheme code) finds it live: same generation, not freed.
- ``__mmdrop`` finds no CPU with the mm as its active_mm or loaded mm.
- An mm is freed once; ``mm_users`` and ``mm_count`` never go below zero.
- ``__mmdrop`` finds no per-CPU field that the scheme declares as a reference (``Strategy.pins``:
  a hazard slot, a parked ``mm_count`` reference) still naming the mm.
- On an architecture whose flushes rely on ``mm_cpumask`` (x86 and x86-lazy-mask send their
  flush IPIs by it, powerpc decides by it whether a local flush is enough; not arm64 or s390,
  whose flushes are hardware broadcasts), a CPU that has an mm loaded is in that mm's mask.
  Checked wherever the machine changes which mm a CPU runs or which CPUs a mask holds: at the
  page walk, in ``switch_mm_irqs_off`` (the mm left and the mm loaded), after every clear of a
  bit (``Arch.cpumask_clear``: also of another CPU's bit), and at every flush that goes by the
  mask (``mask_covers_loaded``: every CPU with the mm loaded, not only the sender).
- On an architecture that models TLB generations (``Arch.tracks_tlb_gen``: the x86 models), a CPU
  that runs user code of its loaded mm holds a TLB generation no older than the newest flush of
  that mm that has completed, and a CPU that has an mm loaded at all (lazy too) one no older than
  the newest completed flush that freed its page tables (``missed_flush``, with the place: user
  code, or a page walk): a completed flush reached every CPU it had to.
- When the machine is quiet, every mm created has been freed (checked by the runner).
- A kernel wait loop does not wait on a CPU that cannot end the wait (``liveness``: reported by
  the waiting CPU, with the awaited CPU as ``other``; a scheme's busy-wait checks it).

A violation is appended to a shared table with the CPU, the mm, where it was seen, and (for
the first few) a snapshot of every CPU's event ring.
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic_ns
from typing import TYPE_CHECKING

import numpy as np

from emu.machine.layout import (
    C_ACTIVE_MM,
    C_LOADED_MM,
    CPU_WORDS,
    H_NVIOL,
    H_VIOL_KINDS,
    INIT_MM,
    M_GEN,
    M_STATE,
    MM_FREED,
    MM_SLOT_BITS,
    MM_SLOT_MASK,
    MM_WORDS,
    SNAP_CAP,
    TG_DONE,
    TG_FREED,
    V_AUX,
    V_CLOCK,
    V_CPU,
    V_KIND,
    V_MM,
    V_OTHER,
    V_SITE,
    V_SNAP,
    VIOL_CAP,
    VIOL_WORDS,
    Layout,
)
from emu.machine.trace import event

if TYPE_CHECKING:
    from emu.machine.atomics import Atomics
    from emu.machine.trace import Trace

KINDS = (
    "use_after_free",  # a CPU touched a freed mm
    "freed_while_lazy",  # __mmdrop while some CPU still has the mm as active_mm / loaded
    "double_free",
    "count_underflow",
    "leak",  # quiet machine, mm never freed
    "scheme_warning",  # a scheme's own WARN_ON fired (its debug check)
    "inconsistent_mm",  # an interrupt found active_mm and the loaded mm disagreeing
    "lockdep",  # a kernel API's locking precondition broken (switch_mm_irqs_off with interrupts on)
    "cpumask_missing",  # a CPU runs an mm outside its mm_cpumask: flushes sent to the mask miss it
    "dangling_reference",  # at __mmdrop a scheme's per-CPU reference (hazard slot, parked reference) names the mm
    "soft_lockup",  # a CPU spun in a kernel wait loop for --watchdog/2 seconds (the soft-lockup detector)
    "missed_flush",  # a CPU runs an mm with TLB entries older than a flush of it that has completed
    "liveness",  # a kernel wait loop waits on a CPU that cannot end it (a scan busy-waiting on an offline CPU's slot)
)
(
    USE_AFTER_FREE,
    FREED_WHILE_LAZY,
    DOUBLE_FREE,
    COUNT_UNDERFLOW,
    LEAK,
    SCHEME_WARNING,
    INCONSISTENT_MM,
    LOCKDEP,
    CPUMASK_MISSING,
    DANGLING_REFERENCE,
    SOFT_LOCKUP,
    MISSED_FLUSH,
    LIVENESS,
) = range(len(KINDS))

_SITES: list[str] = []


def site(name: str) -> int:
    """Register a named place in the code where an mm is dereferenced."""
    if name not in _SITES:
        _SITES.append(name)
    return _SITES.index(name)


def site_name(code: int) -> str:
    return _SITES[code] if 0 <= code < len(_SITES) else f"site#{code}"


PAGE_WALK = site("page-table walk")
MASK_AT_SWITCH_PREV = site("switch_mm_irqs_off: VM_WARN_ON_ONCE(!cpumask_test_cpu(cpu, mm_cpumask(prev)))")
MASK_AT_SWITCH_NEXT = site("switch_mm_irqs_off: next loaded outside its mm_cpumask")
MASK_AT_CLEAR = site("cpumask_clear_cpu of a CPU that has the mm loaded")
MASK_AT_FLUSH = site("TLB flush by mm_cpumask: a CPU with the mm loaded is not in the mask")
IRQ_ENTRY = site("interrupt entry")
AT_RUN_USER = site("user code runs on the loaded mm")
AT_WALK_FREED = site("page-table walk after a completed flush that freed page tables")
SWITCH_MM_IRQS_ON = site("switch_mm_irqs_off: lockdep_assert_irqs_disabled()")
EV_VIOLATION = event("violation", "VIOLATION {kind:a} on {mm:b}")


class Oracle:
    def __init__(self, words: memoryview, arr: np.ndarray, layout: Layout, atomics: Atomics, cpu: int, trace: Trace) -> None:
        self.w = words
        self.arr = arr
        self.layout = layout
        self.atomics = atomics
        self.cpu = cpu
        self.trace = trace
        self.clock_ns: Callable[[], int] = monotonic_ns  # the machine's clock (steps, in a deterministic mode)
        self.mm_base = layout.mm_base
        self._active = slice(layout.cpu_base + C_ACTIVE_MM, layout.cpu_base + layout.ncpus * CPU_WORDS, CPU_WORDS)
        self._seen: set[tuple[int, int, int, int]] = set()
        self._loaded = slice(layout.cpu_base + C_LOADED_MM, layout.cpu_base + layout.ncpus * CPU_WORDS, CPU_WORDS)
        self._pins: list[slice] = []

    def watch_pins(self, fields: list[int]) -> None:
        """The scheme's per-CPU reference fields (offsets in the CPU record), checked at every free."""
        end = self.layout.cpu_base + self.layout.ncpus * CPU_WORDS
        self._pins = [slice(self.layout.cpu_base + f, end, CPU_WORDS) for f in fields]

    def touch(self, mm: int, where: int = PAGE_WALK) -> bool:
        """Dereference ``mm``: it must be live. Returns False (after reporting) if freed."""
        if mm == INIT_MM or mm == 0:
            return True
        b = self.mm_base + (mm & MM_SLOT_MASK) * MM_WORDS  # layout.mm(mm), inline: every quantum
        w = self.w
        if w[b + M_GEN] != mm >> MM_SLOT_BITS or w[b + M_STATE] == MM_FREED:
            self.report(USE_AFTER_FREE, mm, where)
            return False
        return True

    def mask_covers_loaded(self, mm: int, mask: int, where: int = MASK_AT_FLUSH) -> None:
        """A flush sent by ``mask`` (``mm_cpumask(mm)``) reaches every CPU that has ``mm`` loaded:
        each such CPU missing from the mask is reported (``other`` names it). A CPU that seems to
        be missing is looked at again with the mask word's line held (``Atomics.look``: not an atomic,
        a barrier or a scheduling point), so that a CPU switching away and clearing its bit meanwhile
        is not taken for one running outside the mask."""
        w, base = self.w, self.layout.cpu_base + C_LOADED_MM
        for c in range(self.layout.ncpus):
            if w[base + c * CPU_WORDS] != mm:
                continue
            i, bit = mask + (c >> 5), 1 << (c & 31)
            if not w[i] & bit:
                k = self.atomics.look(i)
                missing = not w[i] & bit and w[self.layout.cpu(c) + C_LOADED_MM] == mm
                self.atomics.unlook(k)
                if missing:
                    self.report(CPUMASK_MISSING, mm, where, other=c)

    def check_tlb_gen(self, mm: int, cpu_gen: int) -> None:
        """This CPU runs user code of ``mm`` with its TLB at generation ``w[cpu_gen]``: no flush of
        ``mm`` newer than that may have completed (the flusher records one only after every CPU
        it sent to has flushed)."""
        if mm == INIT_MM or mm == 0:
            return
        w = self.w
        done = w[self.layout.tlbgen(mm) + TG_DONE]
        if w[cpu_gen] < done:
            self.report(MISSED_FLUSH, mm, AT_RUN_USER, aux=done - w[cpu_gen])

    def check_freed_tables(self, mm: int, cpu_gen: int) -> None:
        """This CPU has ``mm`` in its MMU (running it or lazy on it) with its TLB and paging-structure
        cache at generation ``w[cpu_gen]``: no flush of ``mm`` that freed page tables and is newer may
        have completed, or the MMU may walk freed page tables."""
        w = self.w
        done = w[self.layout.tlbgen(mm) + TG_FREED]
        if w[cpu_gen] < done:
            self.report(MISSED_FLUSH, mm, AT_WALK_FREED, aux=done - w[cpu_gen])

    def check_free(self, mm: int, where: int) -> None:
        """At ``__mmdrop``: no CPU may still run on, or be lazy on, the mm."""
        arr = self.arr
        hits = np.flatnonzero((arr[self._active] == mm) | (arr[self._loaded] == mm))
        for c in hits.tolist():
            self.report(FREED_WHILE_LAZY, mm, where, other=c)
        for pin in self._pins:
            for c in np.flatnonzero(arr[pin] == mm).tolist():
                mine = pin.start + c * CPU_WORDS
                if c == self.cpu and self.atomics.READ_ONCE(mine) != mm:
                    continue  # cleared, the store still in this CPU's buffer (tso): it sees its own store
                self.report(DANGLING_REFERENCE, mm, where, other=c)

    def report(self, kind: int, mm: int, where: int, aux: int = 0, other: int = -1) -> None:
        """Record a violation; one CPU reports each (kind, mm, other CPU) once, so a lazy CPU
        that keeps walking a freed mm counts as one incident, not one per quantum."""
        key = (kind, mm, where, other)
        if key in self._seen:
            return
        self._seen.add(key)
        a, w = self.atomics, self.w
        self.trace(EV_VIOLATION, kind, mm)
        # the counts under their lines' locks, not by the CPU's atomics: a report is no barrier either
        k = a.look(H_NVIOL)
        n = w[H_NVIOL]
        w[H_NVIOL] = n + 1
        a.unlook(k)
        k = a.look(H_VIOL_KINDS + kind)
        w[H_VIOL_KINDS + kind] += 1
        a.unlook(k)
        if n >= VIOL_CAP:
            return
        snap = -1
        if n < SNAP_CAP:
            lay = self.layout
            ew = lay.events_words
            self.arr[lay.snap_base + n * ew : lay.snap_base + (n + 1) * ew] = self.arr[lay.events_base : lay.events_base + ew]
            snap = n
        v = self.layout.viol_base + n * VIOL_WORDS
        w[v + V_KIND], w[v + V_CPU], w[v + V_MM], w[v + V_SITE] = kind, self.cpu, mm, where
        w[v + V_AUX], w[v + V_CLOCK], w[v + V_SNAP], w[v + V_OTHER] = aux, self.clock_ns(), snap, other
