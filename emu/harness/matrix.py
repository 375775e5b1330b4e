"""The scheme x architecture x mutant matrix and what each cell is expected to show.

One table serves the race-hunting test suite (``tests/race``), ``stress hunt --matrix`` and the
documentation. ``expect`` is ``clean`` or the violation kind the generic oracle must report
(``also``: further kinds that count as the catch, for a cell with several defects, whichever a
run meets first stops it); the reasons restate the reference's sections 4 and 5.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from emu.harness.config import X86_MODELS, RunConfig, Workload
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
    def det_kinds(self) -> tuple[str, ...]:
        """The violation kinds that catch this cell under a deterministic scheduler (none: expected clean there)."""
        return () if CLEAN in (self.expect, self.det_expect) else self.kinds

    @property
    def expect_verdict(self) -> str:
        return CLEAN if self.expect == CLEAN else "violation"

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
        cfg = self.config(seed, cpus=DET_MACHINE["cpus"], sched="pct", steps=steps, workload=replace(Workload(), **small))
        return replace(cfg, fail_fast=bool(self.det_kinds))


ARCHES = ("x86", "x86-lazy-mask", "powerpc", "arm64", "s390", *("riscv", "riscv-trim", "loongarch"))
HAZPTR_FIXED = "skip-init-mm,drop-irqs-off"
LUTO_RFC_FIXED = "drop-check,scan-online,integrated"
UNLAZY = {"x86_unlazy_on_flush": True}  # the 2022 series' 20/23 and 21/23 on an x86 model
B7, B8 = "powerpc-exit-irqs-enabled", "powerpc-trim-vs-kthread"  # powerpc's arch mutants
X1 = "x86-lazy-mask-switch-no-mb"  # the lazy mask's switch before 83b0177a6c48
RV_FORGETS, LA_FORGETS = "riscv-trim-forgets-lazy", "loongarch-drop-forgets-lazy"  # RISC-V's and LoongArch's arch mutants
# B3 on the 3-CPU machine: while the scanner stalls, an idle target must run another process, go lazy
# on it and see it exit; with two processes (one of them the exiting one) that is rarely there to run
B3_DET_LOAD = {"procs": 4}
FREQUENT_FREED_TABLES = {"p_munmap": 0.05, "p_free_tables": 1.0}  # every munmap frees page tables, five times as many
# LoongArch: a large flush (drop_mmu_context) reaches a lazy CPU by IPI from a second thread: two threads, flushing often,
# and no kthread_use_mm, the only way back from one user to two after a single-threaded flush zeroed the lazy CPU's context
NO_SECOND_USER = {"p_munmap": 0.3, "p_free_tables": 1.0, "threads": 2, "procs": 2, "p_use_mm": 0.0}
# and that way: single-threaded processes flushing often (zeroing), kernel threads adopting their mms (a second user)
ZEROED_THEN_SHARED = {"p_munmap": 0.3, "threads": 1, "procs": 2, "p_use_mm": 1.0, "kthreads": 2}

CELLS: list[Cell] = [
    *(Cell("refcount", a, why="a lazy use holds a count: correct on every arch") for a in ARCHES),
    Cell("refcount", "powerpc", options={"trim_timer": 1}, why="the radix trimming on every flush is correct arch code"),
    Cell("refcount", "x86", options={"x86_idle_leave_mm": True}, why="leave_mm moves an idle lazy CPU to init_mm; the count still holds"),
    # shoot-lazies: the mask must cover every CPU lazy on the mm at __mmdrop
    Cell("shoot-lazies", "powerpc", why="the mask covers every CPU that used the mm and did not trim itself"),
    Cell("shoot-lazies", "powerpc", options={"debug_check": True}, why="no CPU is lazy on the mm after cleanup_lazy_tlbs"),
    Cell("shoot-lazies", "powerpc", options={"trim_timer": 1}, why="each trim moves a lazy CPU to init_mm before its bit goes"),
    Cell("shoot-lazies", "powerpc", options={"hotplug": True}, why="hotplug leaves the lazy mm before the mask"),
    Cell("shoot-lazies", "powerpc", options={"use_mm_bursts": True}, why="each CPU trims only itself, never a running kthread"),
    Cell("shoot-lazies", "s390", why="the mask is reset to the attached CPUs, lazy ones included"),
    Cell("shoot-lazies", "s390", options={"shoot_all": True}, why="IPI every CPU: correct anywhere"),
    Cell("shoot-lazies", "arm64", options={"shoot_all": True}, why="no mask: IPI every CPU"),
    Cell("shoot-lazies", "arm64", "use_after_free", why="B1: the mask is empty"),
    Cell("shoot-lazies", "x86", "freed_while_lazy", why="a freed-tables flush cleared a lazy CPU's bit, the exiting CPU's own included"),
    Cell("shoot-lazies", "x86", options=UNLAZY, why="a CPU that loads init_mm also stops being lazy: the v6.13 mask then covers lazies"),
    Cell(
        "shoot-lazies",
        "x86-lazy-mask",
        "freed_while_lazy",
        workload=FREQUENT_FREED_TABLES,
        why="finding: a lazy CPU moved to init_mm by one freed-tables flush loses its bit at the next (never combined in the kernel)",
    ),  # fmt: skip
    Cell("shoot-lazies", "x86-lazy-mask", options=UNLAZY, workload=FREQUENT_FREED_TABLES, why="a CPU moved to init_mm is no longer lazy"),
    Cell("refcount-no-grab", "x86", "use_after_free", why="B5: no reference for the lazy use"),
    # RISC-V and LoongArch (reference 4.3): neither selects MMU_LAZY_TLB_SHOOTDOWN, so these are the emulator's findings
    Cell("shoot-lazies", "riscv", why="82dd33fde026: with ASIDs the mask keeps every CPU that ran the mm, lazy ones included"),
    Cell("shoot-lazies", "riscv-trim", why="Xu Lu's trim tests active_mm: a CPU lazy on the mm keeps its bit"),
    Cell(
        "shoot-lazies", "riscv-trim", workload=FREQUENT_FREED_TABLES, why="every munmap flushes the whole ASID and trims: still no lazy CPU"
    ),
    *(
        Cell(s, "riscv-trim", "cpumask_missing", arch_mutant=RV_FORGETS, why="the trim tested on current->mm: a lazy CPU leaves the mask")
        for s in ("refcount", "shoot-lazies")
    ),
    Cell(
        "shoot-lazies",
        "loongarch",
        workload=NO_SECOND_USER,
        why="without a second user after a zeroing no lazy CPU loses its bit: drop_mmu_context keeps it (!current->mm)",
    ),
    Cell(
        "shoot-lazies",
        "loongarch",
        "freed_while_lazy",
        workload=ZEROED_THEN_SHARED,
        also=("use_after_free", "cpumask_missing"),  # cpumask_missing: the zeroing's race with kthread_use_mm (emu.arch.loongarch)
        why="finding: an mm's only thread zeroes a lazy CPU's context (no IPI); once kthread_use_mm adds a user, an IPI clears its bit",
    ),
    Cell(
        "shoot-lazies",
        "loongarch",
        "freed_while_lazy",
        arch_mutant=LA_FORGETS,
        workload=NO_SECOND_USER,
        also=("use_after_free",),
        why="drop_mmu_context without !current->mm: a large flush clears a lazy CPU's bit, cleanup_lazy_tlbs misses it",
    ),
    Cell(
        "refcount",
        "loongarch",
        arch_mutant=LA_FORGETS,
        workload=NO_SECOND_USER,
        why="the lazy reference holds; TLB-wise the dropped context is sound (a new ASID at the next switch)",
    ),
    # powerpc's arch code under any scheme: B7 and B8 as arch mutants
    *(
        Cell(s, "powerpc", "lockdep", options={"trim_timer": 3}, arch_mutant=B7, why="B7: a local trim, interrupts on")
        for s in ("refcount", "shoot-lazies")
    ),
    *(
        Cell(s, "powerpc", "cpumask_missing", options={"use_mm_bursts": True}, arch_mutant=B8, why="B8: trim vs kthread_use_mm")
        for s in ("refcount", "shoot-lazies")
    ),
    Cell("shoot-hotplug-race", "powerpc", "cpumask_missing", options={"hotplug": True}, why="B2: the CPU leaves the masks while lazy"),
    # the scanning schemes, under both memory models
    *(Cell("luto-hazard", a, why="hazard pointer re-read after drop_mm; online CPUs scanned: correct on every arch") for a in ARCHES),
    *(Cell("luto-hazard", a, options=UNLAZY, why="with 20/23 and 21/23 a scan of the mask finds every lazy CPU") for a in X86_MODELS),
    Cell("luto-hazard", "x86", options={**UNLAZY, "x86_idle_leave_mm": True}, why="leave_mm unlazies too (20/23)"),
    *(Cell("luto-hazard", a, options={"memory_model": "tso"}, why="correct under TSO too") for a in ("x86", "x86-lazy-mask", "arm64")),
    # hazptr, RFC v2 as posted, and its fixes (reference 3.5)
    Cell(
        "hazptr",
        "x86",
        "scheme_warning",
        why="H1 (real, robot-found in RFC v2): a preempted mmdrop_lazy_tlb leaves a stale slot; the next publish fails",
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
        options={"fix": "skip-init-mm,this-cpu-write"},
        why="H1 under the thread's fix (f5c749d3-...@efficios.com): this_cpu_write still clears the CPU resumed on; the old slot stays",
    ),
    Cell(
        "hazptr",
        "powerpc",
        "scheme_warning",
        options={"fix": "drop-irqs-off"},
        why="H3 (from the patch on its base, not robot-found): powerpc's exit_lazy_flush_tlb grabs init_mm before dropping the old lazy mm",
    ),
    Cell(
        "hazptr",
        "x86",
        "scheme_warning",
        options={"fix": "drop-irqs-off,sched-force-init-mm", "hotplug": True},
        why="H3 (kernels from Nov 2024 on, not the RFC's base): sched_force_init_mm (hotplug) grabs init_mm before dropping the old mm",
    ),
    Cell(
        "hazptr",
        "x86",
        "liveness",
        options={"fix": HAZPTR_FIXED, "hotplug": True},
        why="H4 (hotplug on the RFC's 6.12-rc1 base): idle_task_exit keeps the dying CPU's slot, a scan then waits on the offline CPU",
    ),
    Cell(
        "hazptr",
        "x86",
        options={"fix": HAZPTR_FIXED + ",sched-force-init-mm", "hotplug": True},
        why="H4's control: with the Nov 2024 path the dying CPU leaves its lazy mm and clears its own slot",
    ),
    Cell(
        "hazptr",
        "x86",
        options={"fix": "drop-irqs-off"},
        why="H3's control: without --hotplug no x86 path grabs init_mm over a busy slot (the drain runs none)",
    ),
    *(
        Cell(
            "hazptr",
            a,
            options={"fix": HAZPTR_FIXED},
            why="H1, H3 fixed by interpretations (drop irqs off, init_mm unpublished): publish, smp_mb, scan, retire",
        )
        for a in ("x86", "powerpc", "arm64", "s390", "riscv", "loongarch")
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
            options={"fix": fix} if fix else {},
            also=("freed_while_lazy", "count_underflow"),  # whichever of D4's and D1's symptoms a run meets first
            why=f"{why}; D1 is there too",
        )
        for a, fix, why in (
            *((a, "", "D4 (integration gap of the posted mockup): untouched paths drop counts the new switch never took") for a in ARCHES),
            ("x86", "drop-check", "D4 (integration gap) remains without the integration"),
            ("arm64", "drop-check,scan-online", "D4 (integration gap) remains without the integration"),
        )
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
            det_workload=B3_DET_LOAD,
            why="B3 (race documented by the 2022 patch): one read of lazy_mm; --race-delay widens it, single threads park on the target",
        )  # fmt: skip
        for a in ("arm64", "powerpc", "x86")
    ),
    *(
        Cell(
            "luto-hazard",
            a,
            options={"race_delay": 1.0},
            workload={"threads": 1},
            det_workload=B3_DET_LOAD,
            why="the 2022 re-read closes B3 on the same load",
        )
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
    Cell(
        "luto-hazard-late-count",
        "x86",
        "use_after_free",
        options={"race_delay": 1.0},
        also=("double_free",),
        why="B4 (synthetic: inverts 16/23's rule, raise mm_count before any drop_mm is set): freed a count early, then touched again",
    ),
    # Peter Zijlstra's rule for the 2022 scheme (reference 3.4), checkable only where RMWs can be reordered
    Cell(
        "luto-hazard", "arm64", options={"memory_model": "weak", "race_delay": 1.0}, why="fully ordered exchanges: the raise is seen first"
    ),
    Cell(
        "luto-hazard-relaxed-xchg",
        "arm64",
        "use_after_free",
        also=("freed_while_lazy", "count_underflow", "dangling_reference"),
        options={"memory_model": "weak", "race_delay": 1.0},
        why="relaxed exchanges: the parked reference is seen, and dropped, before the unordered mm_count raise",
    ),
    Cell(
        "luto-hazard-relaxed-xchg",
        "x86",
        options={"memory_model": "tso", "race_delay": 1.0},
        why="x86: every locked instruction is a full barrier, so the relaxed exchanges are ordered anyway",
    ),
    # B6 under the weak model: the reference's claim that the smp_mb pair is redundant in the lazy-mm use
    Cell("hazptr", "arm64", options={"fix": HAZPTR_FIXED, "memory_model": "weak"}, why="correct under the weak model"),
    Cell(
        "hazptr-no-mb",
        "arm64",
        options={"fix": HAZPTR_FIXED, "memory_model": "weak"},
        why="B6: the publish reaches the scanner through fully ordered mmput/mmdrop and the scheduler's handoff (reference 3.5)",
    ),
    # the lazy use's last walk of the mm (the MMU's, up to the CR3 write) before the clear that ends it: a load
    # before a later store, which only a barrier orders (LKMM: no R->W order without one); weak performs it late
    Cell(
        "hazptr-no-drop-mb",
        "arm64",
        "use_after_free",
        options={"fix": HAZPTR_FIXED, "memory_model": "weak"},
        why="no smp_mb before the clear: the slot is seen empty, and the mm freed, before the lazy use's last walk of it",
        min_seconds=30.0,
        catch_runs=8,  # 4 of 10 runs of 30 s catch it (docs/memory-models.md)
        det_expect=CLEAN,
    ),
    Cell(
        "luto-hazard-plain-clear",
        "arm64",
        "use_after_free",
        options={"memory_model": "weak"},
        why="WRITE_ONCE for 16/23's smp_store_release: lazy_mm is seen NULL, and the mm freed, before the lazy use's last walk",
        min_seconds=30.0,
        catch_runs=5,  # 6 of 10 runs of 30 s catch it
        det_expect=CLEAN,
    ),
    # X1 (83b0177a6c48, real and fixed): the lazy mask's switch against a flush, under x86's own memory model
    Cell(
        "refcount",
        "x86-lazy-mask",
        options={"memory_model": "tso"},
        why="83b0177a6c48: smp_mb() when the bit is already set: the switch sees the new tlb_gen or the flush sees the switch",
    ),
    Cell(
        "refcount",
        "x86-lazy-mask",
        "missed_flush",
        arch_mutant=X1,
        options={"memory_model": "tso"},
        why="X1 (real, fixed by 83b0177a6c48): the store of loaded_mm waits in the store buffer past the load of tlb_gen",
    ),
]


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
