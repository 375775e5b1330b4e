"""The per-CPU column view of an interleaving: one column per CPU, time flowing down.

A merged trace read as one list makes the reader follow the ``cpuN`` field of every line to see
which CPU did what while the others did what. In columns, as a sequence diagram draws its
lifelines (and as loom or shuttle print a schedule), each CPU's own story reads straight down
its column, and every place where execution moves to another CPU is a change of column.

``columns_text`` draws it for a terminal (plain ASCII, fitted to a width); ``columns_svg``
draws the same picture as a standalone SVG document, written by hand.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from xml.sax.saxutils import escape

UNITS = ("ns", "step")
MARK = ">> "  # the gutter of the violating event's lines: a caller can style the lines that start with it
NOMARK = " " * len(MARK)
SEP = " | "  # between columns: the CPUs' lifelines
MIN_COLUMN = 12  # a column is never cut below this many characters: narrower, an event is unreadable
SVG_COLUMN = 80  # characters of an SVG column before its texts wrap (an SVG has no width to fit)


class Shown(Protocol):
    """What the view reads of an event: a report's timeline event (``emu.harness.events.Event``,
    its text its kind's format filled with its values) or an ``Ev``."""

    @property
    def t(self) -> int: ...
    @property
    def cpu(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def mark(self) -> bool: ...


@dataclass(frozen=True)
class Ev:
    """One event of an interleaving.

    ``t`` is nanoseconds since the run's load began (free-running mode) or the global step number
    (a deterministic scheduling mode); ``cpu`` is the CPU that did it; ``mark`` flags the
    violating event."""

    t: int
    cpu: int
    text: str
    mark: bool = False


def stamp(t: int, unit: str) -> str:
    """The gutter's time of an event: ``+12.345ms`` for unit "ns", ``#1234`` for unit "step"."""
    if unit == "ns":
        return f"{t / 1e6:+.3f}ms"
    if unit == "step":
        return f"#{t}"
    raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")


def cpus_of(events: Sequence[Shown]) -> list[int]:
    """The CPUs that appear, in order: the columns, left to right."""
    return sorted({e.cpu for e in events})


def in_order(events: Sequence[Shown]) -> list[Shown]:
    """By time; events with the same time keep the order they were given in (a stable sort)."""
    return sorted(events, key=lambda e: e.t)


def fit(natural: list[int], room: int, floor: int = MIN_COLUMN) -> list[int]:
    """Column widths whose sum fits ``room``: the natural ones when they fit; otherwise the widest
    are cut down to one common cap, as large as fits, so that short columns keep their width. No
    column is cut below ``floor`` (or its natural width): with too many CPUs the lines run wider."""
    if sum(natural) <= room:
        return list(natural)
    cap = max(natural)
    while cap > floor and sum(min(n, cap) for n in natural) > room:
        cap -= 1
    return [min(n, cap) for n in natural]


ABBREV = "~"  # the mark of a word cut short to fit its column
WORD_FLOOR = 24  # a column keeps room for a word this long (kthread_use_mm, finish_task_switch) before it abbreviates


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken at spaces where it can be."""
    # "mm13#1 -> mm14#1": never break at the arrow's hyphen, only at spaces (or inside a long word)
    # a word longer than the column is abbreviated (its end cut, ABBREV marks it), never split over two lines
    words = [w if len(w) <= width else w[: max(1, width - len(ABBREV))] + ABBREV for w in text.split()]
    return textwrap.wrap(" ".join(words), width, break_on_hyphens=False, break_long_words=False) or [""]


def columns_text(events: Sequence[Shown], unit: str = "ns", width: int = 0) -> list[str]:
    """The interleaving as lines of plain ASCII: a header naming the CPUs' columns, a rule, then
    one row per event, in the column of the CPU that did it, its time in the left gutter. The
    violating event's lines begin with ``MARK`` (``>>``). Texts wrap within their column so that
    a line fits ``width`` characters (0: the terminal's width); trailing spaces are stripped."""
    if not events:
        return []
    width = width or shutil.get_terminal_size().columns
    events = in_order(events)
    cpus = cpus_of(events)
    col = {c: i for i, c in enumerate(cpus)}
    stamps = [stamp(e.t, unit) for e in events]
    gutter = len(MARK) + max(map(len, stamps))
    natural = [len(f"cpu{c}") for c in cpus]
    for e in events:
        natural[col[e.cpu]] = max(natural[col[e.cpu]], len(e.text))
    floors = [max(MIN_COLUMN, len(f"cpu{c}")) for c in cpus]
    # a column is never narrower than its longest word (up to WORD_FLOOR): a name (kthread_use_mm) is not split
    words = [0] * len(cpus)
    for e in events:
        words[col[e.cpu]] = min(WORD_FLOOR, max(words[col[e.cpu]], *map(len, e.text.split() or [""])))
    widths = [max(w, n) for w, n in zip(fit(natural, width - gutter - len(SEP) * len(cpus), max(floors)), words, strict=True)]

    def row(left: str, cells: dict[int, str]) -> str:
        return (left.ljust(gutter) + "".join(SEP + cells.get(i, "").ljust(w) for i, w in enumerate(widths))).rstrip()

    lines = [row("", {i: f"cpu{c}" for i, c in enumerate(cpus)})]
    lines.append("-" * gutter + "".join("-+-" + "-" * w for w in widths))
    for e, s in zip(events, stamps, strict=True):
        i = col[e.cpu]
        mark = MARK if e.mark else NOMARK
        for n, piece in enumerate(wrap(e.text, widths[i])):
            # the time on the event's first line only: a wrapped text's other lines are the same event
            lines.append(row(mark + (s.rjust(gutter - len(MARK)) if n == 0 else ""), {i: piece}))
    return lines


# -- SVG -----------------------------------------------------------------------------------------

FONT = 12  # px, monospace
CHAR = FONT * 0.6  # a monospace character's advance, near enough for every common monospace font
ROW = 17  # px per text line
PAD = 10  # px around the picture and inside each column
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(s: str) -> str:
    """``s`` as XML character data: markup escaped, and characters XML 1.0 cannot hold at all
    (control characters, even escaped) shown as ``?`` rather than making the document invalid."""
    return escape(_NOT_XML.sub("?", s))


def columns_svg(events: Sequence[Shown], unit: str = "ns", title: str = "") -> str:
    """The same picture as ``columns_text``, as a standalone SVG document: a header box per CPU,
    its lifeline down the page, each event's text in its CPU's column on its own row, the time
    in the left gutter, the violating event's row highlighted in red. ``title`` (lines split at
    newlines) heads the picture and is the document's ``<title>``."""
    events = in_order(events)
    cpus = cpus_of(events)
    col = {c: i for i, c in enumerate(cpus)}
    stamps = [stamp(e.t, unit) for e in events]
    natural = [len(f"cpu{c}") for c in cpus]
    for e in events:
        natural[col[e.cpu]] = max(natural[col[e.cpu]], len(e.text))
    widths = [min(n, SVG_COLUMN) for n in natural]
    gutter_w = PAD + CHAR * max(map(len, stamps), default=0) + PAD
    xs = [gutter_w]
    for w in widths:
        xs.append(xs[-1] + 2 * PAD + CHAR * w)
    heads = title.splitlines() if title else []
    width = max(xs[-1], PAD + CHAR * max(map(len, heads), default=0)) + PAD
    top = PAD + ROW * len(heads) + (PAD if heads else 0)  # the header boxes' top edge
    body = top + ROW + PAD  # the first event's row
    rows = [(e, s, wrap(e.text, widths[col[e.cpu]])) for e, s in zip(events, stamps, strict=True)]
    height = body + ROW * sum(len(lines) for _, _, lines in rows) + PAD
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'font-family="monospace" font-size="{FONT}" xml:space="preserve">',
        f"<title>{_xml_text(title or 'per-CPU timeline')}</title>",
        f'<rect x="0" y="0" width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>',
    ]
    for n, line in enumerate(heads):
        out.append(f'<text x="{PAD}" y="{PAD + ROW * n + FONT}" font-weight="bold">{_xml_text(line)}</text>')
    for i, c in enumerate(cpus):
        # every other column faintly shaded, so a row's text is easily placed under its CPU
        x0, x1 = xs[i], xs[i + 1]
        if i % 2:
            out.append(f'<rect x="{x0:.1f}" y="{top}" width="{x1 - x0:.1f}" height="{height - PAD - top}" fill="#f4f6f8"/>')
        box = f'x="{x0 + 2:.1f}" y="{top}" width="{x1 - x0 - 4:.1f}" height="{ROW + 2}"'
        out.append(f'<rect {box} rx="3" fill="#e3e8ee" stroke="#8a96a3"/>')
        out.append(f'<text x="{x0 + PAD:.1f}" y="{top + FONT + 2}" font-weight="bold">cpu{c}</text>')
        out.append(f'<line x1="{x0 + PAD / 2:.1f}" y1="{top + ROW + 2}" x2="{x0 + PAD / 2:.1f}" y2="{height - PAD}" stroke="#c4ccd4"/>')
    y = body
    for e, s, lines in rows:
        x = xs[col[e.cpu]] + PAD
        ink = ' fill="#d0021b" font-weight="bold"' if e.mark else ""
        if e.mark:
            band = f'x="{PAD / 2}" y="{y}" width="{width - PAD:.1f}" height="{ROW * len(lines)}"'
            out.append(f'<rect {band} fill="#fde2e2" stroke="#d0021b"/>')
        when = ink or ' fill="#6a737d"'
        out.append(f'<text x="{gutter_w - PAD:.1f}" y="{y + FONT}" text-anchor="end"{when}>{_xml_text(s)}</text>')
        for line in lines:
            out.append(f'<text x="{x:.1f}" y="{y + FONT}"{ink}>{_xml_text(line)}</text>')
            y += ROW
    out.append("</svg>")
    return "\n".join(out) + "\n"
