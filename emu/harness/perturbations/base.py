"""What a perturbation declares, in its one class (a module of ``emu.harness.perturbations``).

Its name is its flag (``--NAME``) and the id it has in the matrix hunt's verdict table; its help is
the flag's; ``field`` is the ``RunConfig`` switch it is, if it has one (the built-in ones: their
reports keep their keys), or else it is named in ``RunConfig.perturb``. Its events (``event``: the
key its gaps and draws are seeded with) come at gaps drawn from the seed with ``mean(count, unit_s)``,
on the host's clock in the free mode and on the step clock in a deterministic one, and each does
``fire(events, count)`` on the shared segment, in both modes alike; ``lift`` undoes it before the
drain. A perturbation of the host itself (the shuffle) has no event: ``fire_free`` runs every
``host_every_s`` in the free mode, and a deterministic ``--sched`` refuses it (``free_only``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from emu.harness.perturbation import Events, Perturbation


class PerturbationKind:
    name: ClassVar[str] = ""  # its flag, --NAME, and its column in hunt --matrix --strategy's table
    matrix_id: ClassVar[str] = ""  # that column's heading, if not the name
    help: ClassVar[str] = ""
    field: ClassVar[str] = ""  # the RunConfig switch it is (a built-in one); "" : named in RunConfig.perturb
    event: ClassVar[str] = ""  # its events' key in the seeded draws; "" : no machine event (host only)
    order: ClassVar[int] = 100  # events due at one moment go in this order
    min_cpus: ClassVar[int] = 1
    min_cpus_why: ClassVar[str] = ""
    # about the host (cores, clocks), what it does to it: refused under a deterministic --sched, where it has no effect
    free_only: ClassVar[str] = ""
    pauses_cpus: ClassVar[bool] = False  # it asks CPUs to pause or go offline: they poll H_STUTTER and C_HP_WANT
    in_matrix: ClassVar[bool] = True  # a column of the verdict table (hunt --matrix --strategy)
    column_order: ClassVar[int] = 100  # that column's place
    host_every_s: ClassVar[float] = 0.0  # fire_free's period (free mode)

    @classmethod
    def enabled(cls, cfg: Any) -> bool:
        return bool(getattr(cfg, cls.field)) if cls.field else cls.name in getattr(cfg, "perturb", ())

    @classmethod
    def options(cls) -> dict[str, Any]:
        """The RunConfig options that turn it on (a matrix cell's, a hunt target's)."""
        return {cls.field: True} if cls.field else {"perturb": (cls.name,)}

    @classmethod
    def column(cls) -> str:
        return cls.matrix_id or cls.name

    every_s: ClassVar[float] = 0.05  # the mean gap between its events, in seconds

    def mean(self, count: int, unit_s: float) -> float:
        """The mean gap before event number ``count``, in clock units of ``unit_s`` seconds (gaps are exponential)."""
        return self.every_s / unit_s

    def fire(self, ev: Events, count: int) -> None:
        """Event number ``count``: what it does to the machine (both modes)."""

    def lift(self, ev: Events) -> None:
        """Before the drain: undo it."""

    def fire_free(self, pert: Perturbation) -> None:
        """A host perturbation's action (free mode only)."""
