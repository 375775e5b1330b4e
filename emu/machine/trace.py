"""Per-CPU event rings in shared memory, stamped with the system-wide monotonic clock.

Every CPU appends what it does (switches, lazy enter/leave, count changes, IPIs, frees) to its
own ring; a violation snapshots all rings, and the report merges them into one timeline.
Event kinds are registered at import time, before the CPUs fork, so every process agrees on
the codes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from time import monotonic_ns

from emu.machine.layout import EV_CAP, EV_WORDS, Layout, mm_name

_FORMATS: list[tuple[str, str]] = []
_FIELD = re.compile(r"\{(mm|task|cpu|n|ipi|site|kind):([ab])\}")


def event(name: str, fmt: str) -> int:
    """Register an event kind; ``fmt`` names how to show a and b, e.g. ``{mm:a}``."""
    for code, (n, _) in enumerate(_FORMATS):
        if n == name:
            return code
    _FORMATS.append((name, fmt))
    return len(_FORMATS) - 1


Trace = Callable[..., None]  # a bound ``Tracer.emit``: ``trace(code, a, b)``, called about twice per switch


class Tracer:
    """Appends to this CPU's ring; single writer, so plain stores suffice."""

    def __init__(self, words: memoryview, layout: Layout, cpu: int, stamp: Callable[[], int] = monotonic_ns) -> None:
        self.w = words
        # the host's clock; a deterministic mode's step and the event's place in the machine's one
        # order of events (``DetSched.stamp``), so that the merged trace is the same on every rerun
        self.stamp = stamp
        self.base = layout.events(cpu)
        self.end = self.base + EV_CAP * EV_WORDS
        self.i = self.base  # the next entry's offset: the oldest one, once the ring has wrapped

    def emit(self, code: int, a: int = 0, b: int = 0) -> None:
        w = self.w
        i = self.i
        w[i + 1] = code
        w[i + 2] = a
        w[i + 3] = b
        w[i] = self.stamp()  # the stamp last: readers sort by it
        i += EV_WORDS
        self.i = i if i < self.end else self.base


STEP_SHIFT = 20  # a step tracer's stamp: the step in the high bits, the event's number in the low ones


def task_name(layout: Layout, t: int) -> str:
    if t < 0:
        return "none"
    if t < layout.ncpus:
        return f"swapper/{t}"
    if t < layout.ncpus * (1 + layout.kthreads):
        k = t - layout.ncpus
        return f"kworker/{k // max(1, layout.kthreads)}:{k % max(1, layout.kthreads)}"
    return f"task{t}"


Value = int | str  # an event's argument as shown: an mm, task, IPI, site or kind by name; a CPU or a number as such


def kind_of(code: int) -> str:
    """The event kind's registered name (``mm_alloc``, ``switch_mm``, ``read lazy_mm``)."""
    return _FORMATS[code][0] if 0 <= code < len(_FORMATS) else f"event#{code}"


def format_of(code: int) -> str:
    """How the kind shows its arguments, e.g. ``mm_count({mm:a}) -1 -> {n:b}``."""
    return _FORMATS[code][1] if 0 <= code < len(_FORMATS) else f"event#{code}({{n:a}}, {{n:b}})"


def values(code: int, a: int, b: int, layout: Layout, names: dict[str, Callable[[int], str]]) -> list[Value]:
    """The event's arguments in the order its format shows them: mms, tasks, IPIs, sites and kinds
    by name, CPUs and numbers as numbers."""
    show: dict[str, Callable[[int], Value]] = {
        "mm": mm_name,
        "task": lambda t: task_name(layout, t),
        "cpu": int,
        "n": int,
        **names,
    }
    return [show.get(m.group(1), str)(a if m.group(2) == "a" else b) for m in _FIELD.finditer(format_of(code))]


def fill(fmt: str, vals: list[Value]) -> str:
    """``fmt`` with its placeholders replaced, in order, by ``vals``: the event as the timeline shows it."""
    it = iter(vals)

    def sub(m: re.Match[str]) -> str:
        v = next(it)
        return f"cpu{v}" if m.group(1) == "cpu" and isinstance(v, int) else str(v)

    return _FIELD.sub(sub, fmt)


def mms(fmt: str, vals: list[Value]) -> list[str]:
    """The mms the event names (its ``{mm:...}`` arguments), in order."""
    return [str(v) for m, v in zip(_FIELD.finditer(fmt), vals, strict=True) if m.group(1) == "mm"]


def render(code: int, a: int, b: int, layout: Layout, names: dict[str, Callable[[int], str]]) -> str:
    return fill(format_of(code), values(code, a, b, layout, names))


def decode_rings(ring_words, layout: Layout) -> list[tuple[int, int, int, int, int]]:  # type: ignore[no-untyped-def]
    """(clock, cpu, code, a, b) for every recorded event in a copy of the event region."""
    out = []
    per_cpu = EV_CAP * EV_WORDS
    for c in range(layout.ncpus):
        ring = ring_words[c * per_cpu : (c + 1) * per_cpu].reshape(EV_CAP, EV_WORDS)
        for clock, code, a, b in ring.tolist():
            if clock:
                out.append((clock, c, code, a, b))
    out.sort()
    return out
