"""shuffle, as rcutorture's shuffler (free mode only: it is about host cores): every so often each
CPU process is moved to a random real core (``os.sched_setaffinity``), so the OS interleaves them
differently."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from emu.harness.perturbations.base import PerturbationKind

if TYPE_CHECKING:
    from emu.harness.perturbation import Perturbation

SHUFFLE_EVERY_S = 0.100


class Shuffle(PerturbationKind):
    name = field = "shuffle"
    help = "move CPU processes between the real cores at intervals"
    free_only = "moves CPU processes between host cores"
    in_matrix = False
    host_every_s = SHUFFLE_EVERY_S

    def fire_free(self, pert: Perturbation) -> None:
        for pid in pert.pids:
            try:
                os.sched_setaffinity(pid, {pert.rng.choice(pert.cores)})
            except OSError:
                pass  # a CPU that just exited: the runner notices on its own
