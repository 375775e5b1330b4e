"""Perturbation that widens race windows, as KCSAN's delays and rcutorture's reader delays do.

``--noise RATE``: at every access a scheme makes through the atomics API (loads, stores,
barriers, and every locked read-modify-write, mm counts and cpumask updates included) the CPU,
with probability RATE, gives up its core (``sched_yield``) or spins briefly before going on.
The choice is drawn from the CPU's own generator, so a run's perturbation follows its seed.
The wrapping is installed on one CPU's ``Atomics`` object before the scheme binds its
primitives, and composes with any memory model subclass.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

from emu.machine.atomics import Atomics

NOISY = ("READ_ONCE", "WRITE_ONCE", "smp_load_acquire", "smp_store_release", "smp_mb", "lock")
SPIN_MAX = 200  # iterations of a busy loop: a few microseconds


class Noise:
    def __init__(self, rate: float, rng: random.Random, words: memoryview, counter: int) -> None:
        self.rate = rate
        self.rng = rng
        self.w = words
        self.counter = counter  # this CPU's noise_delays counter

    def __call__(self) -> None:
        rng = self.rng
        if rng.random() >= self.rate:
            return
        self.w[self.counter] += 1
        if rng.random() < 0.5:
            os.sched_yield()
        else:
            for _ in range(rng.randrange(SPIN_MAX)):
                pass

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def noisy(*args: Any) -> Any:
            self()
            return fn(*args)

        noisy.__name__ = fn.__name__
        return noisy


def install_noise(atomics: Atomics, rate: float, rng: random.Random, counter: int) -> Noise | None:
    """Wrap this CPU's atomics with delay injection; None when ``rate`` is 0."""
    if rate <= 0:
        return None
    noise = Noise(rate, rng, atomics.w, counter)
    for name in NOISY:
        setattr(atomics, name, noise.wrap(getattr(atomics, name)))
    # the RMWs call self.lock(); the instance attribute now shadows the method for them too
    return noise
