"""The scheme x architecture x mutant matrix and what each cell is expected to show.

One table serves the race-hunting test suite (``tests/race``), ``stress hunt --matrix`` and the
documentation. ``expect`` is ``clean`` or the violation kind the generic oracle must report;
the reasons restate the reference's sections 4 and 5.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from emu.config import RunConfig
from emu.strategies import MUTANTS

CLEAN = "clean"


@dataclass(frozen=True)
class Cell:
    strategy: str  # a strategy or a mutant name
    arch: str
    expect: str = CLEAN
    options: dict[str, Any] = field(default_factory=dict)
    why: str = ""
    min_seconds: float = 0.0  # a rare race: runs of this cell last at least this long
    workload: dict[str, Any] = field(default_factory=dict)  # Workload knobs the cell needs (its perturbation)

    @property
    def mutant(self) -> str | None:
        return self.strategy if self.strategy in MUTANTS else None

    @property
    def base(self) -> str:
        m = self.mutant
        return (MUTANTS[m].mutant_of or "") if m else self.strategy

    @property
    def expect_verdict(self) -> str:
        return CLEAN if self.expect == CLEAN else "violation"

    @property
    def id(self) -> str:
        opts = "".join(f"+{k.replace('_', '-')}" for k, v in sorted(self.options.items()) if v is True)
        opts += "".join(f"+{k.replace('_', '-')}={v}" for k, v in sorted(self.options.items()) if not isinstance(v, bool))
        opts += "".join(f"-{k.replace('_', '-')}" for k, v in sorted(self.options.items()) if v is False)
        opts += "".join(f"+{k.replace('_', '-')}={v}" for k, v in sorted(self.workload.items()))
        return f"{self.strategy}@{self.arch}{opts}"

    def config(self, seed: int, cpus: int = 8, duration: float = 2.0, **extra: Any) -> RunConfig:
        duration = max(duration, self.min_seconds)
        cfg = RunConfig(cpus=cpus, strategy=self.base, mutant=self.mutant, arch=self.arch, duration=duration, seed=seed)
        cfg = replace(cfg, **{**self.options, **extra})
        return replace(cfg, workload=replace(cfg.workload, **self.workload)) if self.workload else cfg


ARCHES = ("x86", "x86-lazy-mask", "powerpc", "arm64", "s390")
HAZPTR_FIXED = "skip-init-mm,drop-irqs-off"
LUTO_RFC_FIXED = "drop-check,scan-online,integrated"

CELLS: list[Cell] = [
    *(Cell("refcount", a, why="a lazy use holds a count: correct on every arch") for a in ARCHES),
    Cell("shoot-lazies", "powerpc", why="the mask covers every CPU that ran the mm"),
    Cell("shoot-lazies", "powerpc", options={"radix_exit_shoot": False, "debug_check": True}, why="shootdown at __mmdrop only"),
    Cell("shoot-lazies", "powerpc", options={"hotplug": True}, why="hotplug leaves the lazy mm before the mask"),
    Cell("shoot-lazies", "powerpc", options={"use_mm_bursts": True}, why="each CPU trims only itself, never a running kthread"),
    Cell("shoot-lazies", "x86-lazy-mask", why="the lazy mask is a superset"),
    Cell("shoot-lazies", "arm64", options={"shoot_all": True}, why="no mask: IPI every CPU"),
    Cell("shoot-lazies", "s390", options={"shoot_all": True}, why="no mask: IPI every CPU"),
    Cell("shoot-lazies", "arm64", "use_after_free", why="B1: the mask is empty"),
    Cell("shoot-lazies", "s390", "use_after_free", why="B1 on s390 (unconfirmed arch model)"),
    Cell("shoot-lazies", "x86", "freed_while_lazy", why="the exit flush cleared the lazy CPU's bit"),
    Cell("refcount-no-grab", "x86", "use_after_free", why="B5: no reference for the lazy use"),
    Cell("shoot-irqs-enabled", "powerpc", "lockdep", why="B7: exit-flush lazy switch with interrupts on"),
    Cell(
        "shoot-hotplug-race", "powerpc", "freed_while_lazy", options={"hotplug": True}, why="B2: mask cleared while lazy", min_seconds=4.0
    ),
    # the scanning schemes, under both memory models
    *(Cell("luto-hazard", a, why="hazard pointer re-read after drop_mm: correct on every arch") for a in ARCHES),
    *(Cell("luto-hazard", a, options={"memory_model": "tso"}, why="correct under TSO too") for a in ("x86", "x86-lazy-mask", "arm64")),
    # hazptr, RFC v2 as posted, and its fixes (reference 3.5)
    Cell(
        "hazptr",
        "x86",
        "scheme_warning",
        why="H1, H3 (real, robot-found in the RFC): the idle task grabs init_mm over a busy slot, a preempted drop leaves one stale",
    ),
    Cell(
        "hazptr",
        "x86",
        "scheme_warning",
        options={"fix": "skip-init-mm"},
        why="H1 (real, robot-found, RFC v2): a preempted mmdrop_lazy_tlb leaves a stale slot; the next publish fails",
    ),
    Cell(
        "hazptr",
        "x86",
        "scheme_warning",
        options={"fix": "drop-irqs-off"},
        why="H3 (real, robot-found): sched_force_init_mm grabs init_mm before dropping the old lazy mm",
    ),
    *(
        Cell("hazptr", a, options={"fix": HAZPTR_FIXED}, why="H1 and H3 fixed: publish, smp_mb, scan, retire")
        for a in ("x86", "powerpc", "arm64", "s390")
    ),
    Cell("hazptr", "arm64", options={"fix": HAZPTR_FIXED, "memory_model": "tso"}, why="correct under TSO"),
    Cell(
        "hazptr-no-mb",
        "x86",
        options={"fix": HAZPTR_FIXED},
        why="B6 (synthetic, not a bug in this use): message passing, not store buffering (reference 3.5)",
    ),
    # luto-rfc, the RFC v2 mockup as posted, and its ladder of fixes (reference 3.3)
    *(
        Cell(
            "luto-rfc",
            a,
            "use_after_free",
            why="D4 (integration gap of the posted mockup): untouched paths drop counts the new switch never took",
        )
        for a in ARCHES
    ),
    Cell("luto-rfc", "x86", "use_after_free", options={"fix": "drop-check"}, why="D4 (integration gap) remains without the integration"),
    Cell(
        "luto-rfc",
        "arm64",
        "use_after_free",
        options={"fix": "drop-check,scan-online"},
        why="D4 (integration gap) remains without the integration",
    ),
    *(
        Cell(
            "luto-rfc",
            a,
            "freed_while_lazy",
            options={"fix": "integrated"},
            why="D1 (defect in the posted mockup): the parked mm dropped while the CPU is still lazy on it",
        )
        for a in ("x86", "powerpc", "arm64")
    ),
    Cell(
        "luto-rfc",
        "arm64",
        "freed_while_lazy",
        options={"fix": "integrated,scan-online"},
        why="D1 (defect in the posted mockup) alone: the scan is sound",
    ),
    Cell(
        "luto-rfc",
        "arm64",
        "freed_while_lazy",
        options={"fix": "drop-check,integrated"},
        why="D2 (the mockup's own XXX): the empty mask misses every lazy CPU",
    ),
    Cell(
        "luto-rfc",
        "x86",
        "freed_while_lazy",
        options={"fix": "drop-check,integrated"},
        why="B9 (follows from the mockup's 'mm_cpumask() not being reliable'): x86 up to 6.13 drops lazy CPUs from the mask",
    ),
    *(
        Cell(
            "luto-rfc",
            a,
            "freed_while_lazy",
            options={"fix": LUTO_RFC_FIXED, "race_delay": 1.0},
            workload={"threads": 1},
            why="B3 (race documented by the 2022 patch): one read of lazy_mm; --race-delay widens it, single threads park on the target",
        )  # fmt: skip
        for a in ("arm64", "powerpc", "x86")
    ),
    *(
        Cell("luto-hazard", a, options={"race_delay": 1.0}, workload={"threads": 1}, why="the 2022 re-read closes B3 on the same load")
        for a in ("arm64", "powerpc", "x86")
    ),
    Cell(
        "luto-hazard-init-mm-first",
        "arm64",
        "freed_while_lazy",
        options={"hotplug": True, "race_delay": 1.0},
        why="the literal reading of sched_force_init_mm's order under the 2022 scheme: init_mm published first",
        min_seconds=4.0,
    ),  # fmt: skip
    Cell("luto-hazard", "arm64", options={"hotplug": True, "race_delay": 1.0}, why="switch to init_mm first, then clear lazy_mm"),
    Cell("luto-hazard-late-count", "x86", "use_after_free", options={"race_delay": 1.0}, why="B4: mm_count raised after drop_mm"),
    Cell(
        "powerpc-trim-vs-kthread",
        "powerpc",
        "cpumask_missing",
        options={"use_mm_bursts": True},
        why="B8: sender trims vs kthread_use_mm",
    ),
]


def _non_default(options: dict[str, Any]) -> dict[str, Any]:
    default = RunConfig()
    return {k: v for k, v in options.items() if getattr(default, k) != v}


def find(strategy: str, arch: str, options: dict[str, Any] | None = None) -> Cell | None:
    """The matrix cell for this configuration (options as RunConfig fields), if the table has one."""
    wanted = _non_default(options or {})
    for cell in CELLS:
        if cell.strategy == strategy and cell.arch == arch and _non_default(cell.options) == wanted:
            return cell
    return None
