"""What the kernel asks of the parts it is built from, declared here so that the kernel names no
layer above it (docs: /work/shared/reference/house.md): the hooks a lazy-mm scheme and an
architecture model implement, the run settings the CPU loop reads, the workload knobs a driver
reads, and the narrow options object a part is given instead of the run's whole configuration."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class PartOptions:
    """What a scheme or an arch model is told of the run: the seed, its fixes, the race delay and
    the watchdog, and the values of the options it declares (``Strategy.options``, ``Arch.options``)."""

    seed: int = 0
    fixes: frozenset[str] = frozenset()
    race_delay: float = 0.0
    watchdog: float = 10.0
    own: Mapping[str, object] = field(default_factory=dict)

    def flag(self, name: str) -> bool:
        return bool(self.own.get(name, False))

    def number(self, name: str, default: int = 0) -> int:
        v = self.own.get(name, default)
        return v if isinstance(v, int) else default


@dataclass(frozen=True)
class CellDecl:
    """A matrix cell a part declares (``emu.harness.matrix`` builds its table from them): the scheme
    (or one of its mutants) on an architecture (``"*"``: every architecture model), with ``options``
    and ``workload`` (RunConfig and Workload fields), the expected verdict (``clean`` or the
    violation kind the generic oracle must report, ``also`` further kinds that count) and why.
    The rest are ``emu.harness.matrix.Cell``'s, with the same meaning."""

    strategy: str
    arch: str
    expect: str = "clean"
    options: Mapping[str, object] = field(default_factory=dict)
    why: str = ""
    min_seconds: float = 0.0
    catch_runs: int = 3
    arch_mutant: str | None = None
    workload: Mapping[str, object] = field(default_factory=dict)
    also: tuple[str, ...] = ()
    det_workload: Mapping[str, object] = field(default_factory=dict)
    det_cpus: int = 0
    det_expect: str | None = None


class SchemeHooks(Protocol):
    """The hooks the kernel calls on a lazy-mm scheme (``emu.strategies.base.Strategy`` implements them)."""

    @property
    def MMU_LAZY_TLB_SHOOTDOWN(self) -> bool: ...  # the Kconfig property arch code asks about
    @property
    def exit_mm_grab_irqs_off(self) -> bool: ...
    @property
    def lazy_release_in_irqs_off(self) -> bool: ...
    @property
    def has_finish_task_switch(self) -> bool: ...

    def mmgrab_lazy_tlb(self, mm: int) -> None: ...
    def mmdrop_lazy_tlb(self, mm: int) -> None: ...
    def mmdrop_lazy_tlb_sched(self, mm: int) -> None: ...
    def lazy_switch_to_kernel(self, mm: int) -> None: ...
    def lazy_switch_to_user(self, mm: int) -> None: ...
    def finish_task_switch(self) -> None: ...
    def mmput_lazy_fixup(self, mm: int) -> None: ...
    def cleanup_lazy_tlbs(self, mm: int) -> None: ...
    def takedown_cpu(self) -> None: ...
    def sched_force_init_mm(self) -> None: ...
    def unlazy_mm_irqs_off(self) -> None: ...


class ArchHooks(Protocol):
    """The hooks the kernel and the schemes call on an architecture model (``emu.arch.base.Arch``)."""

    @property
    def tracks_tlb_gen(self) -> bool: ...
    @property
    def flush_relies_on_mask(self) -> bool: ...
    @property
    def lazy_may_load_init_mm(self) -> bool: ...

    def switch_mm_irqs_off(self, prev: int, next: int) -> None: ...
    def load_mm(self, mm: int) -> None: ...  # the CR3 write: a weak model walks the outgoing mm first (Cpu.route_mmu_walks)
    def enter_lazy_tlb(self, mm: int) -> None: ...
    def flush_tlb_mm_exit(self, mm: int) -> None: ...
    def flush_tlb_munmap(self, mm: int, freed_tables: bool) -> None: ...
    def leave_mm(self) -> None: ...
    def destroy_context(self, mm: int) -> None: ...
    def current_mm(self) -> int: ...
    def mm_cpumask_cpus(self, mm: int) -> list[int]: ...
    def for_each_possible_lazymm_cpu(self, mm: int) -> Iterable[int]: ...
    def cpu_offline(self) -> None: ...


class WorkloadKnobs(Protocol):
    """What a workload driver reads of the run's load settings (the harness's ``Workload`` has them)."""

    threads: int
    kthreads: int
    p_fork: float
    p_exit: float
    p_block: float
    p_migrate: float
    p_kthread: float
    p_use_mm: float
    sleep_us: int
    p_munmap: float
    p_free_tables: float
    p_exec: float
    p_kernel_exec: float
    p_preempt: float

    def live_procs(self, cpus: int) -> int: ...


class RunSettings(Protocol):
    """What the CPU loop reads of the run's configuration (the harness's ``RunConfig`` has it)."""

    seed: int
    sched: str  # a deterministic mode's policy (free: "free"), the one a --replay was recorded with
    ipi_timeout: float
    noise: float
    stutter: bool
    hotplug: bool

    @property
    def perturbed(self) -> bool: ...  # a perturbation may ask this CPU to pause or go offline

    @property
    def workload(self) -> WorkloadKnobs: ...
