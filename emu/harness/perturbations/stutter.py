"""stutter, as rcutorture's: every CPU runs, then all pause together (``H_STUTTER``), then run
again, for bursty contention; run and pause lengths are drawn from the seed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from emu.harness.perturbations.base import PerturbationKind
from emu.machine.layout import H_STUTTER

if TYPE_CHECKING:
    from emu.harness.perturbation import Events

STUTTER_RUN_S, STUTTER_PAUSE = 0.050, 0.4  # mean run length; a pause is this fraction of it


class Stutter(PerturbationKind):
    name = field = event = "stutter"
    help = "all CPUs run, pause together, run again"
    order, column_order = 0, 1
    pauses_cpus = True

    def mean(self, count: int, unit_s: float) -> float:  # alternately a run and a pause
        mean = STUTTER_RUN_S / unit_s
        return mean if count % 2 == 0 else mean * STUTTER_PAUSE

    def fire(self, ev: Events, count: int) -> None:
        ev.w[H_STUTTER] = int(count % 2 == 0)

    def lift(self, ev: Events) -> None:
        ev.w[H_STUTTER] = 0
