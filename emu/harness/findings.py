"""Findings: violating runs grouped by signature, each with its count and its best reproducer.

A campaign of thousands of runs meets one bug many times, each time in another interleaving, as
syzbot meets one kernel bug in many crashes. As syzbot groups crashes by a title made of the
report's kind and its top stack frames, a finding here is named by what a reader would call the
same bug: the configuration (scheme, architecture or arch mutant, scheme mutant, fixes), the
violation kind and the place the oracle saw it (``site``: ``__mmdrop``, a page-table walk), and
the *shape* of the violating story: the last ``SHAPE_HOOKS`` kernel hooks (the kinds of its
events: ``tlb_broadcast``, ``mmdrop``, ``__mmdrop``) the violating CPU went through on the violating
mm before the violation (by last occurrence, repeats dropped: the top of
the stack, in order) and how many CPUs took part in the drop in those steps (the violating CPU,
and any other that changed the mm's counts or scanned for it meanwhile; another CPU that merely
switched to or from the mm then is the workload's, and would split one bug in two).

Why those and not more: the story before the top hooks is the workload's (how many switches
happened to the mm before its exit), which differs from one seed to the next for one bug; the
top hooks are the bug's path (an arm64 shoot-lazies exit goes ``tlb_broadcast > mmdrop >
__mmdrop`` with the lazy CPU unshot, an x86 one ``switch_mm > mmdrop > __mmdrop``, a refcount that
never grabbed drops from ``lazy_leave > mmdrop > __mmdrop``), and stay the same for every seed that
meets the bug. The CPU count tells a race on one CPU from one between two.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from emu.harness.events import Event
from emu.harness.events import from_json as events_from_json

STORY_EVENTS = 40  # the interleaving shown: the violating mm's last events, up to the violation
SCAN_OPS = ("read", "park", "displace")  # a scheme's shown steps in a scan (emu.strategies.base.SHOWN_OPS): a read, an xchg
BIRTHS = ("fork", "exec_mmap")  # how a new mm gets its first task
SHAPE_HOOKS = 3  # the top of the violating CPU's path: see the module's docstring
COUNTS = ("mmgrab", "mmdrop", "mmget", "mmput", "__mmput", "__mmdrop")  # the events that change an mm's counts


def scan_step(e: Event) -> bool:
    """A remote dropper's step that explains its drop: the other mm's ``__mmput``, or the scheme's
    own step in its scan (emu.strategies.base.SHOWN_OPS: the read of a CPU's field, an xchg), or a stall."""
    op, _, field = e.kind.partition(" ")
    return e.kind in ("__mmput", "race_stall") or (bool(field) and op in SCAN_OPS)


def story(report: dict[str, Any]) -> list[Event]:
    """The violating mm's events: its birth, where the timeline holds it (its ``mm_alloc``, and the
    ``fork`` or ``exec_mmap`` that gives it its first task), then its last events up to the violation
    (marked), ``STORY_EVENTS`` in all; and the ``__mmput`` and scan steps of any CPU that dropped a
    count of it without ever running it."""
    timelines = events_from_json(report.get("events"), "shrink")
    if not timelines:
        return []
    events = timelines[0]
    name = report["violations"][0]["mm"]
    mine = [i for i, e in enumerate(events) if e.mark or e.names(name)]
    born = next((i for i in mine if events[i].kind == "mm_alloc" and events[i].values[0] == name), None)
    head = []
    if born is not None:
        first_task = next((i for i in mine if i > born and events[i].kind in BIRTHS and events[i].values[0] == name), None)
        head = [born] if first_task is None else [born, first_task]
    tail = [i for i in mine if i not in head and (born is None or i > born)][len(head) - STORY_EVENTS :]
    mine = sorted({*head, *tail})
    if not mine:
        return []
    # a CPU that dropped a count of the mm without running it did so from another mm's exit: show that exit
    counts = {i for i in mine if events[i].kind in ("mmgrab", "mmdrop")}
    users = {events[i].cpu for i in mine if i not in counts and not scan_step(events[i])}
    remote = {events[i].cpu for i in counts if events[i].kind == "mmdrop"} - users
    start = tail[0] if tail else mine[0]
    why = [i for i in range(start, mine[-1]) if events[i].cpu in remote and scan_step(events[i])]
    return [events[i] for i in sorted({*mine, *why})]


def shape(events: list[Event], cpu: int) -> tuple[list[str], int]:
    """The top ``SHAPE_HOOKS`` hooks (event kinds) of ``cpu``'s path to the violation (each by its
    last occurrence, in order), and the number of CPUs that took part in the drop in those steps:
    ``cpu`` and any other that changed the mm's counts (``COUNTS``) or scanned for it; another CPU
    merely switching to or from the mm meanwhile is the workload's, not the bug's."""
    last: dict[str, int] = {}
    for i, e in enumerate(events):
        if e.cpu == cpu and not e.mark:
            last[e.kind] = i
    top = sorted(last.items(), key=lambda kv: kv[1])[-SHAPE_HOOKS:]
    if not top:
        return [], 1
    start = top[0][1]
    return [h for h, _ in top], len({cpu} | {e.cpu for e in events[start:] if e.kind in COUNTS or scan_step(e)})


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
