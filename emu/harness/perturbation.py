"""The runner's side of perturbation, as rcutorture's stutter, shuffler and onoff kthreads.

- stutter: every CPU runs, then all pause together (``H_STUTTER``), then run again, for bursty
  contention; run and pause lengths are drawn from the seed.
- shuffle: every so often each CPU process is moved to a random real core
  (``os.sched_setaffinity``), so the OS interleaves them differently.
- kthread_use_mm bursts: for a few milliseconds at a time every kernel thread wakes often and
  adopts a live mm, as io_uring or vhost workers do under load.
- hotplug: at random moments a random CPU (never cpu0, the boot CPU) is asked to go offline,
  or an offline one to come back (``C_HP_WANT``); the CPU carries it out itself.

Before the drain, ``settle`` lifts the stutter and brings every CPU back online.
"""

from __future__ import annotations

import os
import random
import time

from emu.harness.config import RunConfig
from emu.machine.layout import C_HP_WANT, C_ONLINE, H_STUTTER, H_USE_MM_BURST, Layout

STUTTER_RUN_S, STUTTER_PAUSE_S = 0.050, 0.020
SHUFFLE_EVERY_S = 0.100
HOTPLUG_EVERY_S = 0.020
BURST_EVERY_S, BURST_LENGTH_S = 0.050, 0.010
SETTLE_TIMEOUT_S = 10.0


class Perturbation:
    def __init__(self, cfg: RunConfig, layout: Layout, words: memoryview, pids: list[int]) -> None:
        self.cfg = cfg
        self.layout = layout
        self.w = words
        self.pids = pids
        self.rng = random.Random(cfg.seed ^ 0x70657274)
        self.cores = sorted(os.sched_getaffinity(0))
        now = time.monotonic()
        self.next = {
            "stutter": now + self._exp(STUTTER_RUN_S) if cfg.stutter else None,
            "shuffle": now + SHUFFLE_EVERY_S if cfg.shuffle else None,
            "hotplug": now + self._exp(HOTPLUG_EVERY_S) if cfg.hotplug else None,
            "burst": now + self._exp(BURST_EVERY_S) if cfg.use_mm_bursts else None,
        }

    def _exp(self, mean: float) -> float:
        return self.rng.expovariate(1 / mean)

    @property
    def active(self) -> bool:
        return any(t is not None for t in self.next.values())

    def deadline(self) -> float:
        return min((t for t in self.next.values() if t is not None), default=float("inf"))

    def tick(self, now: float) -> None:
        if self.next["stutter"] is not None and now >= self.next["stutter"]:
            paused = not self.w[H_STUTTER]
            self.w[H_STUTTER] = int(paused)
            self.next["stutter"] = now + self._exp(STUTTER_PAUSE_S if paused else STUTTER_RUN_S)
        if self.next["shuffle"] is not None and now >= self.next["shuffle"]:
            self.shuffle()
            self.next["shuffle"] = now + SHUFFLE_EVERY_S
        if self.next["burst"] is not None and now >= self.next["burst"]:
            bursting = not self.w[H_USE_MM_BURST]
            self.w[H_USE_MM_BURST] = int(bursting)
            self.next["burst"] = now + self._exp(BURST_LENGTH_S if bursting else BURST_EVERY_S)
        if self.next["hotplug"] is not None and now >= self.next["hotplug"]:
            self.onoff()
            self.next["hotplug"] = now + self._exp(HOTPLUG_EVERY_S)

    def shuffle(self) -> None:
        for pid in self.pids:
            try:
                os.sched_setaffinity(pid, {self.rng.choice(self.cores)})
            except OSError:
                pass  # a CPU that just exited: the runner notices on its own

    def onoff(self) -> None:
        lay, w = self.layout, self.w
        cpu = self.rng.randrange(1, lay.ncpus)
        want = lay.cpu(cpu) + C_HP_WANT
        if w[want]:
            wanted_up = sum(w[lay.cpu(c) + C_HP_WANT] for c in range(lay.ncpus))
            if wanted_up > 1:
                w[want] = 0
        else:
            w[want] = 1

    def settle(self) -> bool:
        """Lift every perturbation before the drain; False if a CPU did not come back online."""
        lay, w = self.layout, self.w
        w[H_STUTTER] = w[H_USE_MM_BURST] = 0
        for c in range(lay.ncpus):
            w[lay.cpu(c) + C_HP_WANT] = 1
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while not all(w[lay.cpu(c) + C_ONLINE] for c in range(lay.ncpus)):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True
