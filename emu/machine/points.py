"""Scheduling points, declared where they are.

In a deterministic mode (``emu.machine.detsched``) a CPU may lose the turn only at a scheduling
point. The atomics API declares its points on the methods themselves with ``@sched_point``, and
the wait loops call the hand-over's ``wait`` themselves; nothing is guessed from a method's name.

A point says whether it is progress: something a CPU blocked in a wait loop may be waiting for.
A blocked CPU may run again only once some CPU made progress since it blocked (``DetSched.may_run``),
so a point declared without progress can never wake a waiter, and two CPUs that only spin on each
other through such points are a deadlock.

A method that overrides a declared one in a memory model keeps the declaration it overrides
(``declared_points`` reads the whole class hierarchy), and an alias is the same function, so it
is the same point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

POINT_ATTR = "__sched_point__"


def sched_point(*, progress: bool) -> Callable[[F], F]:
    """Declare an atomics method a scheduling point, and whether it counts as progress."""

    def mark(fn: F) -> F:
        setattr(fn, POINT_ATTR, progress)
        return fn

    return mark


def declared_points(cls: type) -> dict[str, bool]:
    """Every scheduling point of ``cls`` (method name -> progress), from the most derived declaration of each name."""
    points: dict[str, bool] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            mark = getattr(value, POINT_ATTR, None)
            if mark is not None:
                points[name] = bool(mark)
    return points
