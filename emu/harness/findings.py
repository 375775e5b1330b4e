"""Findings: violating runs grouped by signature, each with its count and its best reproducer.

A campaign of thousands of runs meets one bug many times, each time in another interleaving, as
syzbot meets one kernel bug in many crashes. As syzbot groups crashes by a title made of the
report's kind and its top stack frames, a finding here is named by what a reader would call the
same bug: the configuration (scheme, architecture or arch mutant, scheme mutant, fixes), the
violation kind and the place the oracle saw it (``site``: ``__mmdrop``, a page-table walk), and
the *shape* of the violating story: the last ``SHAPE_HOOKS`` kernel hooks the violating CPU went
through on the violating mm before the violation (by last occurrence, repeats dropped: the top of
the stack, in order) and how many CPUs took part in the drop in those steps (the violating CPU,
and any other that changed the mm's counts or scanned for it meanwhile; another CPU that merely
switched to or from the mm then is the workload's, and would split one bug in two).

Why those and not more: the story before the top hooks is the workload's (how many switches
happened to the mm before its exit), which differs from one seed to the next for one bug; the
top hooks are the bug's path (an arm64 shoot-lazies exit goes ``flush > mm_count > __mmdrop``
with the lazy CPU unshot, an x86 one ``switch_mm > mm_count > __mmdrop``, a refcount that never
grabbed drops from ``leaves > mm_count > __mmdrop``), and stay the same for every seed that meets
the bug. The CPU count tells a race on one CPU from one between two.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from emu.harness.columns import Ev

STORY_EVENTS = 40  # the interleaving shown: the violating mm's last events, up to the violation
# a remote dropper's steps that explain its drop: the other mm's exit, and the scheme's own steps in
# its scan (emu.strategies.base.SHOWN_OPS: the read of a CPU's field, a stall, an xchg)
SCAN_STEPS = re.compile(r"__mmput\(|reads cpu\d+'s |stalls in the race window|xchg: ")
SHAPE_HOOKS = 3  # the top of the violating CPU's path: see the module's docstring
DROP_STEPS = re.compile(r"(mm_users|mm_count|__mmput|__mmdrop)\(|reads cpu\d+'s |stalls in the race window|xchg: ")
# the names in an event's text that are the run's, not the kernel's: an mm, a task, a CPU, a number
_PLACEHOLDER = re.compile(r"^(mm\d+#\d+|task\d+|swapper/\d+|kworker/\S+|cpu\d+|init_mm|-?[\d.,]+|[+-]\d+|->|\(.*)$")


def story(report: dict[str, Any]) -> list[Ev]:
    """The violating mm's events, from its allocation (or its last ``STORY_EVENTS``) to the violation
    (marked), and the ``__mmput`` and scan steps of any CPU that dropped a count of it without ever running it."""
    if not report.get("timeline_events") or not report.get("violations"):
        return []
    events = [Ev(*e) for e in report["timeline_events"][0]]
    name = report["violations"][0]["mm"]
    mentions = re.compile(rf"(?<![\w#]){re.escape(name)}(?![\w#])")
    mine = [i for i, e in enumerate(events) if e.mark or mentions.search(e.text)]
    born = next((k for k, i in enumerate(mine) if events[i].text.startswith("alloc") or "fork:" in events[i].text), 0)
    mine = mine[born:][-STORY_EVENTS:]
    if not mine:
        return []
    # a CPU that dropped a count of the mm without running it did so from another mm's exit: show that exit
    counts = {i for i in mine if events[i].text.startswith("mm_count(")}
    users = {events[i].cpu for i in mine if i not in counts and not SCAN_STEPS.match(events[i].text)}
    remote = {events[i].cpu for i in counts if "-1 ->" in events[i].text} - users
    why = [i for i in range(mine[0], mine[-1]) if events[i].cpu in remote and SCAN_STEPS.match(events[i].text)]
    return [events[i] for i in sorted({*mine, *why})]


def hook(text: str) -> str:
    """The kernel step an event's text names, without the run's names: ``mm_count(mm9#1) -1 -> 0``
    is ``mm_count``, ``switch_mm mm1#1 -> mm9#1`` is ``switch_mm``, ``task23 -> cpu2`` is a migration."""
    words = text.split()
    if len(words) >= 3 and words[1] == "->" and words[2].startswith("cpu"):
        return "migrate"
    for w in words:
        w = w.split("(", 1)[0].rstrip(":,")
        if w and not _PLACEHOLDER.match(w):
            return w
    return "?"


def shape(events: list[Ev], cpu: int) -> tuple[list[str], int]:
    """The top ``SHAPE_HOOKS`` hooks of ``cpu``'s path to the violation (each by its last
    occurrence, in order), and the number of CPUs that took part in the drop in those steps:
    ``cpu`` and any other that changed the mm's counts or scanned for it (``DROP_STEPS``); another
    CPU merely switching to or from the mm meanwhile is the workload's, not the bug's."""
    steps = [(i, hook(e.text)) for i, e in enumerate(events) if e.cpu == cpu and not e.mark]
    last: dict[str, int] = {}
    for i, h in steps:
        last[h] = i
    top = sorted(last.items(), key=lambda kv: kv[1])[-SHAPE_HOOKS:]
    if not top:
        return [], 1
    start = top[0][1]
    return [h for h, _ in top], len({cpu} | {e.cpu for e in events[start:] if DROP_STEPS.match(e.text)})


@dataclass(frozen=True)
class Signature:
    strategy: str
    arch: str
    mutant: str
    fix: str
    kind: str
    site: str
    hooks: tuple[str, ...]
    cpus: int

    @property
    def key(self) -> str:
        """A short stable name of the signature (the database's and the pages' anchor)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    def title(self) -> str:
        """One line, as syzbot titles a crash: the kind, where, by which path, on which configuration."""
        who = self.strategy + (f" ({self.mutant})" if self.mutant else "") + f" on {self.arch}" + (f" +fix {self.fix}" if self.fix else "")
        path = " > ".join(self.hooks) or "?"
        return f"{self.kind} in {self.site}: {path} on {self.cpus} CPU{'s' if self.cpus != 1 else ''}; {who}"

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "arch": self.arch, "mutant": self.mutant, "fix": self.fix, "kind": self.kind,
                "site": self.site, "hooks": list(self.hooks), "cpus": self.cpus}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Signature:
        return cls(**{**d, "hooks": tuple(d["hooks"])})


def signature(report: dict[str, Any]) -> Signature | None:
    """The signature of a violating run's report (its first violation's); None for a clean one."""
    if report.get("verdict") != "violation" or not report.get("violations"):
        return None
    cfg = report["config"]
    first = report["violations"][0]
    hooks, cpus = shape(story(report), int(first.get("cpu", -1)))
    return Signature(
        strategy=str(cfg.get("strategy", "")),
        arch=str(cfg.get("arch", "")),
        mutant=str(cfg.get("mutant") or ""),
        fix=str(cfg.get("fix") or ""),
        kind=str(first["kind"]),
        site=str(first.get("site") or "?"),
        hooks=tuple(hooks),
        cpus=cpus,
    )


@dataclass
class Finding:
    """One signature, and the runs that met it."""

    signature: Signature
    runs: list[dict[str, Any]] = field(default_factory=list)  # the database's rows, oldest first
    reproducer: dict[str, Any] | None = None  # the best reproducer's row in ``reproducers``, if any

    @property
    def count(self) -> int:
        return len(self.runs)

    @property
    def first_seen(self) -> str:
        return str(self.runs[0]["finished"])

    @property
    def last_seen(self) -> str:
        return str(self.runs[-1]["finished"])

    def best_run(self) -> dict[str, Any] | None:
        """The shortest deterministic replay among the runs (fewest steps to the violation, then fewest
        CPUs); None if no run of it was deterministic."""
        det = [r for r in self.runs if r.get("replay")]
        if not det:
            return None
        return min(det, key=lambda r: (r.get("first_violation_step") or 0, json.loads(r["config"])["cpus"], r["id"]))

    def to_json(self) -> dict[str, Any]:
        best = self.best_run()
        return {
            "signature": self.signature.key,
            "title": self.signature.title(),
            **self.signature.to_dict(),
            "count": self.count,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "campaigns": sorted({r["campaign"] for r in self.runs}),
            "targets": sorted({r["target"] for r in self.runs}),
            "best_run": {"id": best["id"], "seed": best["seed"], "command": best["command"]} if best else None,
            "example_command": self.runs[0]["command"],
            "reproducer": {k: v for k, v in (self.reproducer or {}).items() if k != "replay"} or None,
        }


def group(rows: list[dict[str, Any]], reproducers: dict[str, dict[str, Any]] | None = None) -> list[Finding]:
    """The violating rows grouped by signature: most runs first, then by first seen."""
    out: dict[str, Finding] = {}
    for r in rows:
        if not r.get("signature"):
            continue
        sig = Signature.from_dict(json.loads(r["signature"]))
        out.setdefault(sig.key, Finding(sig)).runs.append(r)
    for key, f in out.items():
        f.runs.sort(key=lambda r: (r["finished"], r["id"]))
        f.reproducer = (reproducers or {}).get(key)
    return sorted(out.values(), key=lambda f: (-f.count, f.first_seen))
