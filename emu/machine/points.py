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
WORD_ATTR = "__sched_point_word__"


def sched_point(*, progress: bool, word: int | None = 0) -> Callable[[F], F]:
    """Declare an atomics method a scheduling point, whether it counts as progress, and which of its
    arguments is the word it accesses (None: no one word, as a barrier's). The explorer's reduction
    reads the word (``declared_words``): two accesses conflict when they touch the same word and one writes."""

    def mark(fn: F) -> F:
        setattr(fn, POINT_ATTR, progress)
        setattr(fn, WORD_ATTR, word)
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


def declared_words(cls: type) -> dict[str, int | None]:
    """Every scheduling point of ``cls`` (method name -> the position of its accessed word's argument, or None)."""
    words: dict[str, int | None] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if getattr(value, POINT_ATTR, None) is not None:
                words[name] = getattr(value, WORD_ATTR, 0)
    return words
