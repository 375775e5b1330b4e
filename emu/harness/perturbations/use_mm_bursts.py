"""kthread_use_mm bursts: now and then, for a while (both drawn with a mean of ``BURST_EVERY_S``),
every kernel thread wakes often and adopts a live mm (``H_USE_MM_BURST``), as io_uring or vhost
workers do under load."""

from __future__ import annotations

from typing import TYPE_CHECKING

from emu.harness.perturbations.base import PerturbationKind
from emu.machine.layout import H_USE_MM_BURST

if TYPE_CHECKING:
    from emu.harness.perturbation import Events

# a burst and the gap before it have the same mean: the deterministic mode's definition, which both
# modes share (the free mode's bursts had a mean of 10 ms; the deterministic mode's figures stand)
BURST_EVERY_S = 0.050


class UseMmBursts(PerturbationKind):
    name = "use-mm-bursts"
    matrix_id = "bursts"
    field = "use_mm_bursts"
    event = "burst"
    help = "now and then every kernel thread adopts a live mm at once"
    order, column_order = 2, 2

    every_s = BURST_EVERY_S

    def fire(self, ev: Events, count: int) -> None:
        ev.w[H_USE_MM_BURST] = int(count % 2 == 0)

    def lift(self, ev: Events) -> None:
        ev.w[H_USE_MM_BURST] = 0
