"""hotplug, as rcutorture's onoff: at random moments a random CPU (never cpu0, the boot CPU) is
asked to go offline, or an offline one to come back (``C_HP_WANT``); the CPU carries it out itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

from emu.harness.perturbations.base import PerturbationKind
from emu.machine.layout import C_HP_WANT

if TYPE_CHECKING:
    from emu.harness.perturbation import Events

HOTPLUG_EVERY_S = 0.020


class Hotplug(PerturbationKind):
    name = field = event = "hotplug"
    help = "take random CPUs offline and back online"
    order, column_order = 1, 0
    min_cpus, min_cpus_why = 2, "cpu0 stays online"
    pauses_cpus = True

    every_s = HOTPLUG_EVERY_S

    def fire(self, ev: Events, count: int) -> None:
        w, lay = ev.w, ev.layout
        if lay.ncpus < 2:
            return
        cpu = ev.rng("hotplug-cpu", count).randrange(1, lay.ncpus)
        want = lay.cpu(cpu) + C_HP_WANT
        if w[want]:
            if sum(w[lay.cpu(c) + C_HP_WANT] for c in range(lay.ncpus)) > 1:
                w[want] = 0
        else:
            w[want] = 1

    def lift(self, ev: Events) -> None:
        for c in range(ev.layout.ncpus):
            ev.w[ev.layout.cpu(c) + C_HP_WANT] = 1
