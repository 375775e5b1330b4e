"""Perturbation, as rcutorture's stutter, shuffler and onoff kthreads: what its events are is
decided here, once, for both modes (``Events``); only when they happen is the mode's (the host's
clock in the free mode, the runner's ``Perturbation``; the step count in a deterministic one,
``emu.machine.detsched``, which calls ``Events`` from the CPU holding the turn).

- stutter: every CPU runs, then all pause together (``H_STUTTER``), then run again, for bursty
  contention; run and pause lengths are drawn from the seed.
- kthread_use_mm bursts: now and then, for a while (both drawn with a mean of ``BURST_EVERY_S``),
  every kernel thread wakes often and adopts a live mm, as io_uring or vhost workers do under load.
- hotplug: at random moments a random CPU (never cpu0, the boot CPU) is asked to go offline,
  or an offline one to come back (``C_HP_WANT``); the CPU carries it out itself.
- shuffle (free mode only: it is about host cores): every so often each CPU process is moved to a
  random real core (``os.sched_setaffinity``), so the OS interleaves them differently.

Each gap and each hotplug target is drawn from its own generator, seeded by the run's seed, the
kind and the event's number, so the n-th event of a kind is the same whatever else happened.
Before the drain every perturbation lifts: the stutter and the bursts end and every CPU is asked
back online (``Events.lift``; the free mode's ``settle`` then waits for them).
"""

from __future__ import annotations

import os
import random
import time

from emu.harness.config import RunConfig
from emu.machine.layout import C_HP_WANT, C_ONLINE, H_STUTTER, H_USE_MM_BURST, Layout

STUTTER_RUN_S, STUTTER_PAUSE = 0.050, 0.4  # mean run length; a pause is this fraction of it
SHUFFLE_EVERY_S = 0.100
HOTPLUG_EVERY_S = 0.020
# a burst and the gap before it have the same mean: the deterministic mode's definition, which both
# modes now share (the free mode's bursts had a mean of 10 ms; the deterministic mode's figures stand)
BURST_EVERY_S = 0.050
SETTLE_TIMEOUT_S = 10.0
KINDS = ("stutter", "hotplug", "burst")  # the machine's events, in the order they go at one moment


class Events:
    """The perturbation events of a run, for both modes (``emu.machine.detsched.MachineEvents``)."""

    def __init__(self, cfg: RunConfig, layout: Layout, words: memoryview) -> None:
        on = {"stutter": cfg.stutter, "hotplug": cfg.hotplug, "burst": cfg.use_mm_bursts}
        self.kinds = tuple(k for k in KINDS if on[k])
        self.seed = cfg.seed
        self.layout = layout
        self.w = words

    def _rng(self, kind: str, count: int) -> random.Random:
        return random.Random(f"{self.seed}:{kind}:{count}")

    def gap(self, kind: str, count: int, unit_s: float) -> float:
        """Exponential gaps: stutter alternates run and pause; bursts and hotplug events have one mean."""
        if kind == "stutter":
            mean = STUTTER_RUN_S / unit_s
            mean = mean if count % 2 == 0 else mean * STUTTER_PAUSE
        else:
            mean = (BURST_EVERY_S if kind == "burst" else HOTPLUG_EVERY_S) / unit_s
        return self._rng(kind, count).expovariate(1 / mean)

    def fire(self, kind: str, count: int) -> None:
        w, lay = self.w, self.layout
        if kind == "stutter":
            w[H_STUTTER] = int(count % 2 == 0)
        elif kind == "burst":
            w[H_USE_MM_BURST] = int(count % 2 == 0)
        elif kind == "hotplug" and lay.ncpus > 1:
            cpu = self._rng("hotplug-cpu", count).randrange(1, lay.ncpus)
            want = lay.cpu(cpu) + C_HP_WANT
            if w[want]:
                if sum(w[lay.cpu(c) + C_HP_WANT] for c in range(lay.ncpus)) > 1:
                    w[want] = 0
            else:
                w[want] = 1

    def lift(self) -> None:
        w, lay = self.w, self.layout
        w[H_STUTTER] = w[H_USE_MM_BURST] = 0
        for c in range(lay.ncpus):
            w[lay.cpu(c) + C_HP_WANT] = 1


class Perturbation:
    """The free mode's side: the events on the host's clock, and the shuffle."""

    def __init__(self, cfg: RunConfig, layout: Layout, words: memoryview, pids: list[int]) -> None:
        self.layout = layout
        self.w = words
        self.pids = pids
        self.events = Events(cfg, layout, words)
        self.rng = random.Random(cfg.seed ^ 0x70657274)  # the shuffle's
        self.cores = sorted(os.sched_getaffinity(0))
        now = time.monotonic()
        self.count = dict.fromkeys(self.events.kinds, 0)
        self.next: dict[str, float] = {k: now + self.events.gap(k, 0, 1.0) for k in self.events.kinds}
        if cfg.shuffle:
            self.next["shuffle"] = now + SHUFFLE_EVERY_S

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
        if "shuffle" in self.next and now >= self.next["shuffle"]:
            self.shuffle()
            self.next["shuffle"] = now + SHUFFLE_EVERY_S

    def shuffle(self) -> None:
        for pid in self.pids:
            try:
                os.sched_setaffinity(pid, {self.rng.choice(self.cores)})
            except OSError:
                pass  # a CPU that just exited: the runner notices on its own

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
