"""The lazy-TLB schemes, one per module, and their deliberately broken variants (mutants).

The mutants here patch a scheme; those that patch an architecture's code run under any scheme
and live with their model (``emu.arch.ARCH_MUTANTS``)."""

from __future__ import annotations

from emu.strategies.base import Strategy
from emu.strategies.hazptr import Hazptr, HazptrNoDropMb, HazptrNoMb
from emu.strategies.luto_hazard import LutoHazard, LutoHazardInitMmFirst, LutoHazardLateCount, LutoHazardPlainClear, LutoHazardRelaxedXchg
from emu.strategies.luto_rfc import LutoRfc
from emu.strategies.refcount import Refcount, RefcountNoGrab
from emu.strategies.shoot_lazies import ShootHotplugRace, ShootLazies

_ALL: tuple[type[Strategy], ...] = (
    Refcount,
    RefcountNoGrab,
    ShootLazies,
    ShootHotplugRace,
    LutoRfc,
    LutoHazard,
    LutoHazardLateCount,
    LutoHazardInitMmFirst,
    LutoHazardRelaxedXchg,
    LutoHazardPlainClear,
    Hazptr,
    HazptrNoMb,
    HazptrNoDropMb,
)

STRATEGIES: dict[str, type[Strategy]] = {s.name: s for s in _ALL if s.mutant_of is None}
MUTANTS: dict[str, type[Strategy]] = {s.name: s for s in _ALL if s.mutant_of is not None}


def resolve(name: str) -> type[Strategy]:
    return STRATEGIES.get(name) or MUTANTS[name]


__all__ = ["MUTANTS", "STRATEGIES", "Strategy", "resolve"]
