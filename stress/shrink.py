"""``stress shrink REPORT.json``: reduce a failing deterministic run to an interleaving one can read.

The way hypothesis and syzkaller minimise, on the schedule itself: every candidate is a replay
(``--replay``) of a smaller run, kept if the same violation kind still occurs. In turn:

1. steps: the run phase ends just after the violation (a replay's prefix is the same run);
2. the machine: one CPU, process, thread or kernel thread fewer, where the configuration allows
   (the schedule's hand-overs to a CPU that is gone are dropped);
3. hand-overs: chunks of the schedule's hand-overs removed, halves first, then smaller (the CPU
   holding the turn keeps it instead), while the run executed has fewer of them.

Each replay records the schedule it executed, so the result replays exactly. What is printed is
the story of the violating mm, read from the report's events (emu.harness.events): its birth (its
``mm_alloc``, and the fork or exec that gives it its first task) and the events that name it up to
the violation (40 in all), and the ``__mmput`` of another mm on a CPU that dropped a count of it
from afar (a scan's displaced reference), in one column per CPU, the violating event marked;
``--svg`` draws the same picture.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import tempfile
import time
from typing import Any

from emu.harness.columns import columns_svg, columns_text
from emu.harness.config import ConfigError, RunConfig
from emu.harness.findings import story
from emu.harness.replay import read_report, setup_digest
from emu.harness.report import Report, headline
from emu.machine.detsched import Schedule
from stress.output import STATUS_INTERRUPTED, write_json, write_text
from stress.progress import LiveStatus

MIN_CPUS = 2


def add_parser(sub: Any) -> None:
    from stress.options import Duration

    s = sub.add_parser("shrink", help="reduce a failing deterministic run to a short interleaving that still fails")
    s.add_argument("report", metavar="REPORT", nargs="?", default=None, help="the JSON report of a failing run under --sched pct or random")
    s.add_argument("--budget", type=Duration(), default=60.0, help="wall-clock budget for the replays, e.g. 90s, 5m (default: 60s)")
    s.add_argument("--json", metavar="PATH", default=None, help="where the shrunk run's report goes (default: REPORT with .shrunk.json)")
    s.add_argument("--svg", metavar="PATH", default=None, help="also draw the interleaving as SVG")
    s.add_argument("--quiet", action="store_true", help="no header line and no progress line")


@dataclasses.dataclass
class Failing:
    cfg: RunConfig
    report: dict[str, Any]

    @property
    def handovers(self) -> int:
        return int(self.report["schedule"]["count"])


def _load(path: str) -> tuple[RunConfig, dict[str, Any]]:
    data = read_report(path, "shrink")
    cfg = RunConfig.from_dict(data["config"])
    if not cfg.deterministic or not isinstance(data.get("schedule"), dict):
        raise ConfigError(f"shrink: {path} is a free-mode run: only a run under --sched pct or random has a schedule to shrink")
    if data.get("verdict") != "violation":
        raise ConfigError(f"shrink: {path} did not fail (verdict {data.get('verdict')}): nothing to shrink")
    return cfg, data


def target_kind(report: dict[str, Any]) -> str:
    """The kind to keep: the first recorded violation's (a leak only if nothing else happened)."""
    kinds = [v["kind"] for v in report["violations"] if v["kind"] != "leak"]
    return kinds[0] if kinds else "leak"


class Shrinker:
    def __init__(self, cfg: RunConfig, report: dict[str, Any], kind: str, budget: float, tmp: str, status: LiveStatus | None) -> None:
        self.kind = kind
        self.budget = budget
        self.tmp = tmp
        self.status = status
        self.t0 = time.monotonic()
        self.replays = 0
        self.best = Failing(cfg, report)

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.t0)

    def attempt(self, cfg: RunConfig, handovers: tuple[tuple[int, int], ...]) -> Failing | None:
        """Replay ``handovers`` on ``cfg``: the run, if the kind still occurs."""
        from emu.harness.runner import run

        path = os.path.join(self.tmp, f"candidate{self.replays}.json")
        self.replays += 1
        schedule = Schedule(cfg.sched, handovers)
        with open(path, "w") as f:
            json.dump(
                {"config": dataclasses.replace(cfg, replay="").to_dict(), "schedule": {"sched": cfg.sched, "handovers": schedule.encode()}},
                f,
            )
        r = run(dataclasses.replace(cfg, replay=path, fail_fast=True))
        if r.harness.get("interrupted"):
            raise KeyboardInterrupt  # Ctrl-C stopped this replay: the shrink stops, and keeps the smallest failing run so far
        if self.status:
            self.status.update(time.monotonic() - self.t0, self.budget, f"{self.replays} replays, {self.best.handovers:,} hand-overs left")
        if r.harness["error"] is not None or self.kind not in r.violation_counts:
            return None
        return Failing(dataclasses.replace(cfg, replay=""), r.to_json())

    def current(self) -> tuple[tuple[int, int], ...]:
        return Schedule.decode(self.best.cfg.sched, self.best.report["schedule"]["handovers"]).handovers

    def shrink(self) -> Failing:
        first = self.attempt(self.best.cfg, self.current())
        if first is None:
            raise ConfigError("shrink: the replay of the report does not fail the same way (a report from another version?)")
        self.best = first
        self.shrink_steps()
        self.shrink_machine()
        self.shrink_handovers()
        return self.best

    def shrink_steps(self) -> None:
        step = self.best.report["metrics"].get("first_violation_step")
        cfg = self.best.cfg
        if step and step + 1 < cfg.steps and self.left() > 0:
            got = self.attempt(dataclasses.replace(cfg, steps=step + 1), self.current())
            if got:
                self.best = got

    def shrink_machine(self) -> None:
        changed = True
        while changed and self.left() > 0:
            changed = False
            cfg = self.best.cfg
            wl = cfg.workload
            procs = wl.live_procs(cfg.cpus)
            candidates = []
            if cfg.cpus > MIN_CPUS and not cfg.hotplug:
                candidates.append(dataclasses.replace(cfg, cpus=cfg.cpus - 1, workload=dataclasses.replace(wl, procs=procs)))
            if procs > 1:
                candidates.append(dataclasses.replace(cfg, workload=dataclasses.replace(wl, procs=procs - 1)))
            if wl.threads > 1:
                candidates.append(dataclasses.replace(cfg, workload=dataclasses.replace(wl, threads=wl.threads - 1)))
            if wl.kthreads > 0:
                candidates.append(dataclasses.replace(cfg, workload=dataclasses.replace(wl, kthreads=wl.kthreads - 1)))
            for cand in candidates:
                if self.left() <= 0:
                    return
                kept = tuple((c, s) for c, s in self.current() if c < cand.cpus)
                got = self.attempt(cand, kept)
                if got:
                    self.best, changed = got, True
                    break

    def shrink_handovers(self) -> None:
        chunk = max(1, len(self.current()) // 2)
        while chunk >= 1 and self.left() > 0:
            i = 1  # the first hand-over is the boot's: the turn's starting CPU
            removed = False
            while i < len(self.current()) and self.left() > 0:
                hand = self.current()
                cand = hand[:i] + hand[i + chunk :]
                got = self.attempt(self.best.cfg, cand)
                if got and got.handovers < self.best.handovers:
                    self.best, removed = got, True
                else:
                    i += chunk
            if not removed:
                chunk //= 2


def cmd_shrink(ns: argparse.Namespace) -> int:
    from stress.options import check_distinct, check_writable

    check_writable(ns.json)
    check_writable(ns.svg, "--svg")
    check_distinct(REPORT=ns.report, **{"--json": ns.json, "--svg": ns.svg})
    if not ns.report:
        raise ConfigError("shrink: give the JSON report of a failing run under --sched pct or random (run ... --json REPORT)")
    cfg, report = _load(ns.report)
    out = ns.json or re.sub(r"(\.json)?$", ".shrunk.json", ns.report, count=1)
    check_writable(out)
    kind = target_kind(report)
    before = (cfg.steps, cfg.cpus, report["schedule"]["count"])
    if not ns.quiet:
        print(f"shrink: {kind} in {ns.report}: {before[1]} CPUs, {before[0]:,} steps, {before[2]:,} hand-overs", file=sys.stderr)
    status = None if ns.quiet else LiveStatus(what="shrink")
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="lazytlb-shrink-") as tmp:
        shrinker = Shrinker(cfg, report, kind, ns.budget, tmp, status)
        try:
            best = shrinker.shrink()
        except KeyboardInterrupt:  # Ctrl-C: the smallest failing run found so far is the result
            best, interrupted = shrinker.best, True
        finally:
            if status:
                status.done()
    final = dataclasses.replace(best.cfg, replay=out)
    rep = dict(best.report, config=final.to_dict(), setup_digest=setup_digest(final.to_dict()))
    write_json(out, rep)
    r = Report.from_json(rep)
    events = story(rep)
    print(headline(r))
    print(
        f"shrunk: {best.cfg.cpus} CPUs (was {before[1]}), {best.cfg.steps:,} steps (was {before[0]:,}), "
        f"{best.handovers:,} hand-overs (was {before[2]:,}); the story of {rep['violations'][0]['mm']}, {len(events)} events"
    )
    print()
    print("\n".join(columns_text(events, "step")))
    print()
    print(f"replay: python -m stress run --replay {out}")
    if ns.svg and events:
        write_text(ns.svg, columns_svg(events, "step", title=f"{headline(r)}\nreplay: python -m stress run --replay {out}"), "--svg")
    if interrupted:
        print(f"shrink: interrupted after {shrinker.replays} replays: {out} holds the smallest failing run found so far", file=sys.stderr)
        return STATUS_INTERRUPTED
    return 0
