"""The scheme x architecture x mutant matrix and what each cell is expected to show.

One table serves the race-hunting test suite (``tests/race``), ``stress hunt --matrix`` and the
documentation. ``expect`` is ``clean`` or the violation kind the generic oracle must report
(``also``: further kinds that count as the catch, for a cell with several defects, whichever a
run meets first stops it); the reasons restate the reference's sections 4 and 5.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from emu import arch as _arch
from emu import strategies as _strategies
from emu.harness.config import RunConfig, Workload, arches_declaring
from emu.kernel.protocols import CellDecl
from emu.strategies import MUTANTS

CLEAN = "clean"
# the deterministic mode's machine: 3 CPUs, two processes of two threads, one kernel thread a CPU
DET_MACHINE = {"cpus": 3, "procs": 2, "threads": 2, "kthreads": 1}
DET_STEPS = 50_000


@dataclass(frozen=True)
class Cell:
    strategy: str  # a strategy or a scheme mutant name
    arch: str
    expect: str = CLEAN
    options: dict[str, Any] = field(default_factory=dict)
    why: str = ""
    min_seconds: float = 0.0  # a rare race: runs of this cell last at least this long
    # the runs of at least min_seconds a broken cell is given before it may be called not caught: its
    # catch is not certain in one (a free run's interleaving is the host's); hunt budgets for them
    catch_runs: int = 3
    arch_mutant: str | None = None  # a mutant of the arch model (emu.arch.ARCH_MUTANTS), under the scheme ``strategy``
    workload: dict[str, Any] = field(default_factory=dict)  # Workload fields that differ from the run's
    also: tuple[str, ...] = ()  # other kinds that catch it: the cell runs code with more than one defect
    det_workload: dict[str, Any] = field(default_factory=dict)  # on top of ``workload`` under a deterministic scheduler
    det_cpus: int = 0  # CPUs under a deterministic scheduler, where the cell needs more than DET_MACHINE's
    # what ``--sched pct`` on the small machine shows, where it differs from ``expect``: a window of a few scheduling
    # points on one CPU that another CPU's whole exit path must fall into, which PCT's few priority changes miss
    det_expect: str | None = None

    @property
    def kinds(self) -> tuple[str, ...]:
        """The violation kinds any one of which catches this cell."""
        return (self.expect, *self.also)

    @property
    def mutant(self) -> str | None:
        """The run's ``--mutant``: the arch mutant, or the scheme mutant ``strategy`` names."""
        if self.arch_mutant:
            return self.arch_mutant
        return self.strategy if self.strategy in MUTANTS else None

    @property
    def base(self) -> str:
        """The run's ``--strategy``."""
        return (MUTANTS[self.strategy].mutant_of or "") if self.strategy in MUTANTS else self.strategy

    @property
    def expect_verdict(self) -> str:
        return CLEAN if self.expect == CLEAN else "violation"

    @property
    def det_kinds(self) -> tuple[str, ...]:
        """The violation kinds that catch this cell under a deterministic scheduler (none: expected clean there)."""
        return () if CLEAN in (self.expect, self.det_expect) else self.kinds

    def verdict_expected(self, deterministic: bool) -> str:
        """The expected verdict under the free or a deterministic scheduler (``det_expect``)."""
        return CLEAN if deterministic and not self.det_kinds else self.expect_verdict

    @property
    def id(self) -> str:
        settings = sorted({**self.options, **self.workload}.items())
        opts = "".join(f"+{k.replace('_', '-')}" for k, v in settings if v is True)
        opts += "".join(f"+{k.replace('_', '-')}={v}" for k, v in settings if not isinstance(v, bool))
        opts += "".join(f"-{k.replace('_', '-')}" for k, v in settings if v is False)
        return f"{self.strategy}@{self.arch_mutant or self.arch}{opts}"

    def config(self, seed: int, cpus: int = 8, duration: float = 2.0, **extra: Any) -> RunConfig:
        """The run of this cell; ``extra`` overrides RunConfig fields (a ``workload`` gets the cell's
        own workload settings on top)."""
        duration = max(duration, self.min_seconds)
        cfg = RunConfig(cpus=cpus, strategy=self.base, mutant=self.mutant, arch=self.arch, duration=duration, seed=seed)
        cfg = replace(cfg, **{**self.options, **extra})
        own = self.own_workload(cfg.deterministic)
        return replace(cfg, workload=replace(cfg.workload, **own)) if own else cfg

    def own_workload(self, deterministic: bool) -> dict[str, Any]:
        """The Workload fields this cell sets, under the free or a deterministic scheduler."""
        return {**self.workload, **self.det_workload} if deterministic else self.workload

    def det_config(self, seed: int, steps: int = DET_STEPS) -> RunConfig:
        """This cell under ``--sched pct`` on the small machine PCT suits (``DET_MACHINE``, where the
        cell sets no workload of its own); a broken cell's run stops at its first violation."""
        own = self.own_workload(True)
        small = {k: v for k, v in DET_MACHINE.items() if k != "cpus" and k not in own}
        cpus = self.det_cpus or DET_MACHINE["cpus"]
        cfg = self.config(seed, cpus=cpus, sched="pct", steps=steps, workload=replace(Workload(), **small))
        return replace(cfg, fail_fast=bool(self.det_kinds))


def all_arches() -> tuple[str, ...]:
    """Every architecture model known now (emu.arch scans its package; a loaded one joins): x86's
    first, then powerpc, then the rest by name, the order the tables read in."""
    return tuple(sorted(_arch.ARCHES, key=lambda a: (not a.startswith("x86"), a != "powerpc", a)))


ARCHES = all_arches()
X86_MODELS = arches_declaring("x86_unlazy_on_flush")


def _non_default(options: dict[str, Any], default: object | None = None) -> dict[str, Any]:
    default = RunConfig() if default is None else default
    return {k: v for k, v in options.items() if getattr(default, k) != v}


def find(
    strategy: str, arch: str, options: dict[str, Any] | None = None, arch_mutant: str | None = None, workload: dict[str, Any] | None = None
) -> Cell | None:
    """The matrix cell for this configuration (``strategy``: the scheme or its mutant; ``options``
    as RunConfig fields, ``workload`` as Workload fields), if the table has one."""
    wanted = _non_default(options or {})
    wanted_wl = _non_default(workload or {}, Workload())
    for cell in CELLS:
        if (cell.strategy, cell.arch, cell.arch_mutant) != (strategy, arch, arch_mutant):
            continue
        if _non_default(cell.options) == wanted and _non_default(cell.workload, Workload()) == wanted_wl:
            return cell
    return None


def declared_cells() -> list[Cell]:
    """The cells the parts declare in their classes (``Strategy.cells``, ``Arch.cells``), each scheme's
    in name order, then each model's; an ``arch`` of ``"*"`` is every architecture model known now
    that takes the generic rows (``Arch.in_generic_cells``: not a kernel version with a defect of its
    own, whose rows it declares). An out-of-tree part's cells join once it is loaded (``emu.harness.plugins``)."""
    tables = (_strategies.STRATEGIES, _strategies.MUTANTS, _arch.ARCHES, _arch.ARCH_MUTANTS)
    owners = [p for parts in tables for _, p in sorted(parts.items())]
    decls: list[CellDecl] = [d for p in dict.fromkeys(owners) for d in vars(p).get("cells", ())]
    arches = [a for a in all_arches() if _arch.ARCHES[a].in_generic_cells]
    out = []
    for d in decls:
        for a in arches if d.arch == "*" else (d.arch,):
            out.append(Cell(d.strategy, a, d.expect, dict(d.options), d.why, d.min_seconds, d.catch_runs, d.arch_mutant,
                            dict(d.workload), d.also, dict(d.det_workload), d.det_cpus, d.det_expect))  # fmt: skip
    return out


def all_cells() -> list[Cell]:
    """The matrix as it stands now: built-in parts' and loaded parts' cells."""
    return declared_cells()


# the built-in parts' matrix, as the race tests parametrize it
CELLS: list[Cell] = declared_cells()
