"""A violation's timeline as data: the events of the CPUs and the mm involved, each with its kind,
CPU, time, the mms it names and its arguments, as the JSON report carries them (``events``).

``stress shrink``, the column view and the SVG read these, never the rendered lines: the text of an
event is its kind's format filled with its values (``emu.machine.trace.fill``), the same line the
flat timeline (the JSON's ``timelines``) shows. The JSON::

    "events": {
      "schema": 2,
      "formats": {"mm_alloc": "mm_alloc {mm:a} for {n:b} threads", ...},
      "timelines": [[{"kind": "mm_alloc", "cpu": 0, "step": 812, "mm": ["mm9#1"], "values": ["mm9#1", 4], "mark": false}, ...]]
    }

one timeline per violation with a snapshot, in the order of ``violations``; ``step`` in a
deterministic run, ``t_ns`` (ns since the load began) in a free-running one. Schema 1, written
before this module, was ``timeline_events``: ``[t, cpu, text, mark]`` lists, text alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emu.harness.config import ConfigError
from emu.machine.trace import Value, fill, mms

SCHEMA = 2
UNITS = {"step": "step", "t_ns": "ns"}  # the event's time key -> the column view's unit


@dataclass(frozen=True)
class Event:
    """One event of a timeline. ``t`` is the step (``unit`` "step") or ns since the load began
    (``unit`` "ns"); ``mm`` the mms it names (as the report names them: ``mm12#4``, slot and
    generation); ``values`` its arguments in its format's order; ``mark`` the violation's own event."""

    kind: str
    cpu: int
    t: int
    unit: str
    fmt: str
    values: tuple[Value, ...]
    mark: bool = False

    @property
    def mm(self) -> tuple[str, ...]:
        return tuple(mms(self.fmt, list(self.values)))

    @property
    def text(self) -> str:
        """The event as the timeline shows it."""
        return fill(self.fmt, list(self.values))

    def names(self, mm: str) -> bool:
        return mm in self.mm

    def to_json(self) -> dict[str, Any]:
        key = "step" if self.unit == "step" else "t_ns"
        return {"kind": self.kind, "cpu": self.cpu, key: self.t, "mm": list(self.mm), "values": list(self.values), "mark": self.mark}


def to_json(timelines: list[list[Event]]) -> dict[str, Any]:
    formats = {e.kind: e.fmt for tl in timelines for e in tl}
    return {"schema": SCHEMA, "formats": dict(sorted(formats.items())), "timelines": [[e.to_json() for e in tl] for tl in timelines]}


def from_json(doc: dict[str, Any] | None, where: str = "report") -> list[list[Event]]:
    """The timelines of a report's ``events``; none for a report without them (written before
    schema 2: its ``timelines`` lines remain). ConfigError, one line, for another schema."""
    if not doc:
        return []
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        schema = doc.get("schema") if isinstance(doc, dict) else None
        raise ConfigError(f"{where}: its events are of schema {schema}; this version of lazytlb reads schema {SCHEMA}")
    formats = doc["formats"]
    out = []
    for tl in doc["timelines"]:
        events = []
        for e in tl:
            key = "step" if "step" in e else "t_ns"
            events.append(Event(e["kind"], e["cpu"], e[key], UNITS[key], formats[e["kind"]], tuple(e["values"]), bool(e["mark"])))
        out.append(events)
    return out
