"""The live progress line on a terminal, and the final report as a table."""

from __future__ import annotations

import sys
from typing import TextIO

from emu.report import Report


class ProgressLine:
    """One line rewritten in place; shown only when stderr is a terminal."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self._last = (0.0, 0)
        self._width = 0

    def __call__(self, snap: dict[str, float]) -> None:
        if not self.enabled:
            return
        t, sw = snap["elapsed"], snap["context_switches"]
        rate = (sw - self._last[1]) / (t - self._last[0]) if t > self._last[0] else 0.0
        self._last = (t, int(sw))
        line = (
            f"  {t:5.1f}s/{snap['duration']:g}s  switches {int(sw):,} ({rate:,.0f}/s)  "
            f"mms freed {int(snap['mm_freed']):,}  IPIs {int(snap['ipis_sent']):,}  violations {int(snap['violations'])}"
        )
        self._width = max(self._width, len(line))
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()

    def done(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


MAIN_METRICS = (
    "context_switches",
    "lazy_switches",
    "switches_per_second",
    "mm_created",
    "mm_freed",
    "forks",
    "exits",
    "kthread_use_mm",
    "migrations",
    "ipis_sent",
    "lazy_refcount_atomics",
    "lazy_refcount_atomics_per_switch",
    "exit_to_free_us_p50",
    "exit_to_free_us_p99",
)


def render_report(r: Report, timeline_lines: int = 40) -> str:
    c = r.config
    out = [
        f"lazytlb: {c['strategy']}{' (mutant ' + c['mutant'] + ')' if c['mutant'] else ''} on {c['arch']}, "
        f"{c['cpus']} CPUs, {r.harness['run_seconds']}s, seed {c['seed']}",
        "",
    ]
    keys = [k for k in MAIN_METRICS if k in r.metrics] + sorted(k for k in r.metrics if k not in MAIN_METRICS)
    width = max(len(k) for k in keys)
    out += [f"  {k:<{width}}  {_fmt(r.metrics[k]):>14}" for k in keys]
    out.append("")
    h = r.harness
    out.append(
        f"  boot {h['boot_seconds']}s, run {h['run_seconds']}s, drain {h['drain_seconds']}s"
        + (f", interrupted by {h['interrupted']}" if h["interrupted"] else "")
    )
    if h["error"]:
        out.append(f"  harness failure: {h['error']}")
    if r.violation_counts:
        out.append("")
        out.append("  violations (kind: count)")
        out += [f"    {k:<18} {n:>8,}" for k, n in sorted(r.violation_counts.items(), key=lambda kv: -kv[1])]
        out.append("")
        for v in r.violations[:5]:
            out.append(f"  - {v['kind']}: {v['detail']}")
        if r.timelines:
            out.append("")
            out.append(f"  timeline of the first violation (last {timeline_lines} events of the CPUs and mm involved):")
            out += ["    " + line for line in r.timelines[0][-timeline_lines:]]
    out.append("")
    out.append(f"verdict: {r.verdict.upper()}")
    out.append(f"rerun:   {r.command}")
    return "\n".join(out)
