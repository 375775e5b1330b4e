"""What a run shows while it runs and when it ends: the progress display and the report.

Both go through rich. On a terminal the progress display is a live line with elapsed and
remaining time, and the report has colour; in a pipe or a CI log the progress is a plain line
now and then, and the report is plain text, no escape codes, wide enough not to wrap."""

from __future__ import annotations

import io
import sys
import time
from typing import TextIO

from rich import box
from rich.console import Console, RenderableType
from rich.progress import Progress, TaskID, TextColumn
from rich.table import Column, Table
from rich.text import Text

from emu.harness.columns import MARK, columns_text
from emu.harness.report import Report, count, event_timelines, grouped, headline

PLAIN_WIDTH = 200  # a pipe has no width: wide enough that no table wraps
PLAIN_LINES = 10  # at most this many progress lines per run when the output is not a terminal
BAR = 10  # characters of the progress bar


def console_for(stream: TextIO) -> Console:
    """A console for ``stream``: a terminal's own width and colour, or plain text for a pipe."""
    tty = stream.isatty()
    return Console(file=stream, force_terminal=tty, no_color=not tty, width=None if tty else PLAIN_WIDTH, highlight=False)


class LiveStatus:
    """A progress display: rich's live line on a terminal; in a pipe, a plain line at most every
    ``duration / PLAIN_LINES`` seconds (and at least a second apart)."""

    def __init__(self, stream: TextIO | None = None, what: str = "load") -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.what = what
        self._live: Progress | None = None
        self._task: TaskID | None = None
        self._next_plain = 0.0

    def update(self, elapsed: float, total: float, text: str, steps: bool = False) -> None:
        """``elapsed`` of ``total`` seconds, or with ``steps`` of a deterministic run's steps."""
        left = max(0.0, total - elapsed)
        where = f"step {elapsed:,.0f} of {total:,.0f}" if steps else f"{elapsed:.1f}s elapsed, {left:.1f}s left"
        if not self.tty:
            if elapsed >= self._next_plain:
                self._next_plain = elapsed + max(total / PLAIN_LINES, 0 if steps else 1.0)
                self.stream.write(f"  {where}: {text}\n")
                self.stream.flush()
            return
        done = round(BAR * min(1.0, elapsed / total)) if total > 0 else BAR
        # the caller's clock, not rich's: the load's own elapsed time, and what is left of it
        clock = f"[green]{'━' * done}[/][bright_black]{'━' * (BAR - done)}[/] {where}"
        if self._live is None:
            # one text column, so a narrow terminal cuts its end, never the bar or the clock; no
            # refresh thread (the runner forks): each update redraws
            self._live = Progress(
                TextColumn("  {task.fields[clock]}  {task.fields[text]}", table_column=Column(no_wrap=True, overflow="ellipsis")),
                console=console_for(self.stream), transient=True, auto_refresh=False,
            )  # fmt: skip
            self._live.start()
            self._task = self._live.add_task(self.what, total=total, text=text, clock=clock)
        assert self._task is not None
        self._live.update(self._task, completed=min(elapsed, total), total=total, text=text, clock=clock, refresh=True)

    def done(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


class ProgressLine:
    """``run``'s progress: the runner calls it with a snapshot about twice a second."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.status = LiveStatus(stream)
        self._last = (0.0, 0, time.monotonic())

    def __call__(self, snap: dict[str, float]) -> None:
        t, sw = snap["elapsed"], snap["context_switches"]
        rate = (sw - self._last[1]) / (t - self._last[0]) if t > self._last[0] else 0.0
        self._last = (t, int(sw), time.monotonic())
        freed, ipis, viol = int(snap["mm_freed"]), int(snap["ipis_sent"]), int(snap["violations"])
        # most telling first: a narrow terminal cuts the end
        text = f"{viol:,} violations, {freed:,} mms freed, {rate:,.0f} switches/s, {ipis:,} IPIs"
        if "steps" in snap:  # deterministic: the rate is per second of the machine's clock, a microsecond a step
            self.status.update(snap["steps"], snap["steps_total"], text, steps=True)
            return
        self.status.update(t, snap["duration"], text)

    def done(self) -> None:
        self.status.done()


def fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def report_parts(r: Report, verbose: bool = False, timeline_lines: int = 40, width: int = PLAIN_WIDTH) -> list[RenderableType]:
    """The report, top down: the verdict and its answer, the run, what did not keep up, the
    counters by group, the violations, the harness, and the command that reruns it. ``width``
    is what the timeline's columns fit."""
    c, h = r.config, r.harness
    style = {"clean": "bold green", "violation": "bold red"}.get(r.verdict, "bold yellow")
    verdict, _, answer = headline(r).partition(": ")
    parts: list[RenderableType] = [Text.assemble((verdict, style), ": ", answer)]
    mutant = f" (mutant {c['mutant']})" if c["mutant"] else ""
    load = f"{h['run_steps']:,} steps of load under --sched {h['sched']}" if "sched" in h else f"{h['run_seconds']}s of load"
    parts.append(Text(f"{c['strategy']}{mutant} on {c['arch']}, {count(c['cpus'], 'CPU')}, {load}, seed {c['seed']}"))
    for note in h.get("keep_up") or []:
        parts.append(Text(f"the machine could not keep up: {note}", style="yellow"))
    parts.append(Text(""))
    groups = grouped(r, verbose)
    names = [f"  {key}" for _, rows in groups for key, _, _ in rows] + [g for g, _ in groups]
    values = [fmt(value) for _, rows in groups for _, value, _ in rows]
    table = Table.grid(padding=(0, 2))
    # the names and values never wrap or shorten: a narrow terminal wraps the meanings
    table.add_column(no_wrap=True, min_width=max(map(len, names)))
    table.add_column(justify="right", no_wrap=True, min_width=max(map(len, values), default=1))
    table.add_column(style="dim", min_width=20)
    for group, rows in groups:
        table.add_row(Text(group, style="bold"), "", "")
        for key, value, meaning in rows:
            table.add_row(f"  {key}", fmt(value), meaning)
    parts.append(table)
    if r.violation_counts:
        parts.append(Text(""))
        kinds = Table.grid(padding=(0, 2))
        kinds.add_column()
        kinds.add_column(justify="right")
        kinds.add_row(Text("violations by kind", style="bold"), "")
        for k, n in sorted(r.violation_counts.items(), key=lambda kv: -kv[1]):
            kinds.add_row(f"  {k}", f"{n:,}")
        parts.append(kinds)
        parts.append(Text(""))
        parts.append(Text("the first violations", style="bold"))
        parts += [Text(f"  - {v['kind']}: {v['detail']}") for v in r.violations[:5]]
        parts += timeline_parts(r, verbose, timeline_lines, width)
    parts.append(Text(""))
    parts.append(Text("harness", style="bold"))
    if "sched" in h:
        s = r.schedule or {}
        what = f"  {h['run_steps']:,} steps of load, {h['steps']:,} in all, {s.get('count', 0):,} hand-overs between CPUs"
    else:
        what = f"  boot {h['boot_seconds']}s, load {h['run_seconds']}s, drain {h['drain_seconds']}s, {h.get('total_seconds', 0):g}s in all"
    parts.append(
        Text(
            what
            + (f"; interrupted by {h['interrupted']}" if h["interrupted"] else "")
            + (f"; {h['stopped_early']}" if h.get("stopped_early") else "")
        )
    )
    if h["error"]:
        parts.append(Text(f"  harness failure: {h['error']}", style="yellow"))
    parts.append(Text(""))
    parts.append(Text(f"the rerun {rerun_note(r)}", style="dim"))
    return parts


def rerun_note(r: Report) -> str:
    """What the rerun command repeats: said plainly, since the free mode cannot repeat an interleaving."""
    if "sched" not in r.harness:
        return "repeats the configuration and the seed's choices, not the interleaving: the host schedules the CPU processes anew"
    s = r.schedule or {}
    if s.get("truncated"):
        return "repeats this run exactly (a deterministic mode); the schedule in --json is its first part only, too long to keep whole"
    return "repeats this run exactly, event for event (a deterministic mode); so does --replay on its --json report"


def timeline_parts(r: Report, verbose: bool, last: int, width: int) -> list[RenderableType]:
    """The first violation's timeline: its last ``last`` events in one column per CPU, the
    violating event marked; with ``verbose`` the same events as one list too. A report read
    from JSON written before the timeline's events (schema 2: ``events``) shows the list alone."""
    if not r.timelines:
        return []
    parts: list[RenderableType] = [Text("")]
    timelines = event_timelines(r)
    events = timelines[0][-last:] if timelines else []
    if events:
        head = f"timeline of the first violation (last {len(events)} events of the CPUs and mm involved, one column per CPU)"
        parts.append(Text(head, style="bold"))
        for line in columns_text(events, events[0].unit, width=width - 2):
            parts.append(Text("  " + line, style="bold red" if line.startswith(MARK) else ""))
    if verbose or not events:
        lines = r.timelines[0][-last:]
        flat = f"timeline of the first violation (last {len(lines)} events of the CPUs and mm involved)"
        parts.append(Text("the same events, as one list" if events else flat, style="bold"))
        parts += [Text("  " + line) for line in lines]
    return parts


def render_report(r: Report, verbose: bool = False, color: bool = False, width: int | None = None) -> str:
    """The report as text: plain (no escape codes) unless ``color``."""
    out = io.StringIO()
    con = Console(file=out, force_terminal=color, no_color=not color, width=width or PLAIN_WIDTH, highlight=False, markup=False)
    for part in report_parts(r, verbose, width=width or PLAIN_WIDTH):
        con.print(part)
    # the rerun command outside rich: it is copied whole, so it is never wrapped, in a pipe or on a terminal
    return "\n".join([*(line.rstrip() for line in out.getvalue().splitlines()), f"rerun: {r.command}"])


def plain_table(*columns: tuple[str, str]) -> Table:
    """A borderless table whose header is underlined: (header, 'left' or 'right') per column."""
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True, header_style="bold")
    for header, justify in columns:
        t.add_column(header, justify=justify)  # type: ignore[arg-type]
    return t


def table_text(table: Table, stream: TextIO | None = None) -> str:
    """A table of ``compare``, ``hunt`` or ``bench`` as text for ``stream``: the terminal's width,
    or wide enough not to wrap in a pipe; no escape codes but on a terminal."""
    con = console_for(stream or sys.stdout)
    out = io.StringIO()
    Console(file=out, force_terminal=con.is_terminal, no_color=con.no_color, width=con.width, highlight=False, markup=False).print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())
