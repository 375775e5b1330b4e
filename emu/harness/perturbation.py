"""Perturbation, as rcutorture's stutter, shuffler and onoff kthreads: what its events are is
decided here, once, for both modes (``Events``); only when they happen is the mode's (the host's
clock in the free mode, the runner's ``Perturbation``; the step count in a deterministic one,
``emu.machine.detsched``, which calls ``Events`` from the CPU holding the turn).

Each perturbation is one module of ``emu.harness.perturbations`` (stutter, hotplug,
use-mm-bursts, shuffle), which declares its flag, its events' gaps and what each does.
Each gap and each draw is from its own generator, seeded by the run's seed, the kind and the
event's number, so the n-th event of a kind is the same whatever else happened. Before the drain
every perturbation lifts (``Events.lift``; the free mode's ``settle`` then waits for every CPU to
be back online).
"""

from __future__ import annotations

import os
import random
import time

from emu.harness.config import RunConfig
from emu.harness.perturbations import PerturbationKind, enabled
from emu.machine.layout import C_ONLINE, Layout

SETTLE_TIMEOUT_S = 10.0


class Events:
    """The perturbation events of a run, for both modes (``emu.machine.detsched.MachineEvents``)."""

    def __init__(self, cfg: RunConfig, layout: Layout, words: memoryview) -> None:
        self.on: list[PerturbationKind] = [k() for k in enabled(cfg)]
        self.by_event = {p.event: p for p in self.on if p.event}
        self.kinds = tuple(self.by_event)  # the machine's events, in the order they go at one moment
        self.seed = cfg.seed
        self.layout = layout
        self.w = words

    def rng(self, kind: str, count: int) -> random.Random:
        return random.Random(f"{self.seed}:{kind}:{count}")

    def gap(self, kind: str, count: int, unit_s: float) -> float:
        return self.rng(kind, count).expovariate(1 / self.by_event[kind].mean(count, unit_s))

    def fire(self, kind: str, count: int) -> None:
        self.by_event[kind].fire(self, count)

    def lift(self) -> None:
        for p in self.on:
            p.lift(self)


class Perturbation:
    """The free mode's side: the events on the host's clock, and the host's perturbations (the shuffle)."""

    def __init__(self, cfg: RunConfig, layout: Layout, words: memoryview, pids: list[int]) -> None:
        self.layout = layout
        self.w = words
        self.pids = pids
        self.events = Events(cfg, layout, words)
        self.rng = random.Random(cfg.seed ^ 0x70657274)  # the host perturbations' (the shuffle's)
        self.cores = sorted(os.sched_getaffinity(0))
        now = time.monotonic()
        self.count = dict.fromkeys(self.events.kinds, 0)
        self.next: dict[str, float] = {k: now + self.events.gap(k, 0, 1.0) for k in self.events.kinds}
        self.host = {p.name: p for p in self.events.on if p.host_every_s}
        for name, p in self.host.items():
            self.next[name] = now + p.host_every_s

    @property
    def active(self) -> bool:
        return bool(self.next)

    def deadline(self) -> float:
        return min(self.next.values(), default=float("inf"))

    def tick(self, now: float) -> None:
        for kind in self.events.kinds:
            if now >= self.next[kind]:
                n = self.count[kind]
                self.events.fire(kind, n)
                self.count[kind] = n + 1
                self.next[kind] = now + self.events.gap(kind, n + 1, 1.0)
        for name, p in self.host.items():
            if now >= self.next[name]:
                p.fire_free(self)
                self.next[name] = now + p.host_every_s

    def settle(self) -> bool:
        """Lift every perturbation before the drain; False if a CPU did not come back online."""
        lay, w = self.layout, self.w
        self.events.lift()
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while not all(w[lay.cpu(c) + C_ONLINE] for c in range(lay.ncpus)):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True
