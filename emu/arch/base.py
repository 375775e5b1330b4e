"""What every architecture model provides to the generic scheduler and mm code.

The hooks carry the kernel's names: ``switch_mm_irqs_off`` and ``enter_lazy_tlb`` (each arch's
asm/mmu_context.h), the final full-mm flush of ``exit_mmap`` and the flush after a munmap (the
arch's ``tlb_flush`` for an ``mmu_gather``, asm/tlb.h), ``leave_mm`` (the idle path; a no-op in
include/linux/mmu_context.h except on x86), the CPU-offline hook, and
``for_each_possible_lazymm_cpu`` (Lutomirski's 2022 series, 16/23: online CPUs unless the arch
knows better). The defaults are those of an architecture that keeps no ``mm_cpumask`` and
flushes by hardware broadcast.

A model may be patched by an *arch mutant* (``mutant_of`` names the model it patches): a
deliberately broken variant of the architecture's code, selected with ``--mutant`` together
with any scheme (``emu.arch.ARCH_MUTANTS``).

Every update of a mask bit that another CPU's flush depends on goes through ``cpumask_clear``
where it can leave a CPU running an mm outside the mask, so that the oracle looks at once;
flushes that go by the mask check that it holds every CPU
with the mm loaded (``Oracle.mask_covers_loaded``). Both only where ``flush_relies_on_mask``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from emu.checks.oracle import CPUMASK_MISSING, LOCKDEP, MASK_AT_CLEAR, SWITCH_MM_IRQS_ON
from emu.machine.layout import C_LOADED_MM, INIT_MM, M_STATE, MM_EXITED, MM_SLOT_MASK, MM_WORDS, T_MM
from emu.machine.trace import event

if TYPE_CHECKING:
    from emu.kernel.protocols import CellDecl
    from emu.kernel.surface import KernelCpu

EV_SWITCH_MM = event("switch_mm", "switch_mm {mm:a} -> {mm:b}")
EV_TLB_BROADCAST = event("tlb_broadcast", "flush of {mm:a} by hardware broadcast (no IPI)")


class Arch:
    """An architecture model. A subclass declares, in its one class: ``name``, ``summary`` and
    ``source`` (the kernel version and files it follows); its mask rules and flush routing (the
    ``maintains_mm_cpumask``/``flush_relies_on_mask``/``lazy_may_load_init_mm``/``tracks_tlb_gen``
    properties, and the hooks it overrides); the memory model it runs under with ``--memory-model
    arch`` (``memory_model``); the run options it reads (``options``, handed over in
    ``KernelCpu.arch_options``); the mm record's arch words it uses (``mm_words``, at most
    ``ARCH_MM_WORDS``); its per-CPU fields (``percpu``: name and size, at most ``ARCH_PERCPU_WORDS``
    in all); its counters and their labels; its mutants (subclasses that set
    ``mutant_of``); and its matrix cells (``cells``). ``emu.arch`` finds it by scanning its package."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    source: ClassVar[str] = ""  # the kernel version, files and commits it follows
    memory_model: ClassVar[str] = "sc"  # --memory-model arch: sc, tso or weak (emu.machine.memory_model)
    options: ClassVar[tuple[str, ...]] = ()  # the RunConfig fields of its own (--trim-timer), read from arch_options
    mm_words: ClassVar[int] = 0  # words of the mm record's M_ARCH it uses (mm->context)
    # its per-CPU fields (name, words), laid out by emu.machine.layout (Layout.arch_field gives each one's word)
    percpu: ClassVar[tuple[tuple[str, int], ...]] = ()
    counters: ClassVar[tuple[str, ...]] = ()
    labels: ClassVar[dict[str, str]] = {}  # counter -> what the report says it counts
    cells: ClassVar[tuple[CellDecl, ...]] = ()  # its matrix cells, its mutants' included
    # False for a kernel version with a defect of its own (x86 v6.14's X2): the rows every scheme declares
    # for every arch ("*", which would expect it clean) leave it out; it declares its own
    in_generic_cells: ClassVar[bool] = True
    mutant_of: ClassVar[str | None] = None  # an arch mutant: the name of the model it patches
    maintains_mm_cpumask: ClassVar[bool] = True  # False: every mask stays empty (arm64)
    # its flushes reach other CPUs through mm_cpumask (IPIs to the mask, or a local-only flush when the
    # mask says so): a CPU with an mm loaded outside the mask misses them, which the oracle reports
    flush_relies_on_mask: ClassVar[bool] = True
    lazy_may_load_init_mm: ClassVar[bool] = False  # a lazy CPU may run on init_mm's tables while active_mm stays
    # it keeps each mm's TLB generation and each CPU's (x86's tlb_gen), so the oracle checks for missed flushes
    tracks_tlb_gen: ClassVar[bool] = False

    def __init__(self, cpu: KernelCpu) -> None:
        self.c = cpu
        self.w = cpu.w
        self.atomics = cpu.atomics
        self.oracle = cpu.oracle
        self.cpu = cpu.cpu
        self.loaded = cpu.layout.cpu(cpu.cpu) + C_LOADED_MM
        self.irq = cpu.irq
        self.cpumask_base, self.cpumask_stride = cpu.layout.cpumask_base, cpu.layout.cpumask_stride
        self.mm_base = cpu.layout.mm_base
        self.my_cpumask_word, self.mask_bit = cpu.layout.cpumask_base + (cpu.cpu >> 5), cpu.cpu & 31
        if self.atomics.loads_stale:  # weak: test_bit is a plain load, which another CPU's clear may not have reached
            self.in_mm_cpumask = self.in_mm_cpumask_loaded  # type: ignore[method-assign]

    def loaded_mm(self, cpu: int | None = None) -> int:
        if cpu is None:
            return self.w[self.loaded]
        return self.w[self.c.layout.cpu(cpu) + C_LOADED_MM]

    def load_mm(self, mm: int) -> None:
        """Point the MMU at ``mm``'s page tables (write CR3 / the PID register)."""
        self.c.trace(EV_SWITCH_MM, self.w[self.loaded], mm)
        self.w[self.loaded] = mm

    def mm_cpumask(self, mm: int) -> int:
        return self.cpumask_base + (mm & MM_SLOT_MASK) * self.cpumask_stride  # layout.cpumask(mm), inline

    def mm_cpumask_cpus(self, mm: int) -> list[int]:
        return list(self.atomics.for_each_cpu(self.mm_cpumask(mm), self.c.ncpus))

    def in_mm_cpumask(self, mm: int) -> bool:
        """``cpumask_test_cpu(smp_processor_id(), mm_cpumask(mm))``, inline."""
        return bool((self.w[self.my_cpumask_word + (mm & MM_SLOT_MASK) * self.cpumask_stride] >> self.mask_bit) & 1)

    def in_mm_cpumask_loaded(self, mm: int) -> bool:
        """``in_mm_cpumask`` as a load through the memory model (a weak model's view): this CPU's bit is
        set and cleared by its own RMWs, which leave the line out of the view, and by another CPU's
        clear only where a model clears other CPUs' bits (powerpc's B8 mutant, s390's reset)."""
        return bool((self.atomics.view_load(self.my_cpumask_word + (mm & MM_SLOT_MASK) * self.cpumask_stride) >> self.mask_bit) & 1)

    def mm_record(self, mm: int) -> int:
        return self.mm_base + (mm & MM_SLOT_MASK) * MM_WORDS  # layout.mm(mm), inline

    def current_mm(self) -> int:
        """``current->mm``: the running task's own mm (0 for a kernel thread)."""
        w = self.w
        return w[self.c.task_base + w[self.c.CURR] * 8 + T_MM]

    @staticmethod
    def is_user_mm(mm: int) -> bool:
        return mm != INIT_MM and mm != 0

    def lockdep_assert_irqs_disabled(self, mm: int) -> None:
        irq = self.irq
        if not (irq.disabled or irq.in_irq):
            self.c.oracle.report(LOCKDEP, mm, SWITCH_MM_IRQS_ON)

    def cpumask_clear(self, mm: int, cpu: int) -> None:
        """``cpumask_clear_cpu(cpu, mm_cpumask(mm))``, and the oracle's look: a CPU that still has
        the mm loaded has just left the mask its flushes are sent by. The look is taken with the
        mask word's lock held, as the clear itself, so that the CPU cannot set its bit again
        meanwhile (every model sets a CPU's bit before loading the mm)."""
        i = self.mm_cpumask(mm) + (cpu >> 5)
        a, w = self.atomics, self.w
        k = a.lock_rmw(i)  # clear_bit: an RMW without return value, unordered (lock() is a full barrier under weak)
        w[i] &= ~(1 << (cpu & 31))
        missing = self.flush_relies_on_mask and w[self.c.layout.cpu(cpu) + C_LOADED_MM] == mm
        a.unlock(k)
        if missing:
            self.oracle.report(CPUMASK_MISSING, mm, MASK_AT_CLEAR, other=cpu)

    def count_flush_ipi(self, mm: int) -> None:
        """Classify a flush IPI as useful or wasted for a lazy CPU (``KernelCpu.count_lazy_ipi``) only when
        it is part of the mm's teardown (no users left): a flush of a live mm after munmap is
        neither."""
        if self.irq.in_irq and self.w[self.mm_record(mm) + M_STATE] == MM_EXITED:
            self.c.count_lazy_ipi(mm)

    # -- hooks ---------------------------------------------------------------------------------
    def switch_mm_irqs_off(self, prev: int, next: int) -> None:
        """Load ``next`` and keep the mask; every model starts with lockdep_assert_irqs_disabled()."""
        raise NotImplementedError

    def enter_lazy_tlb(self, mm: int) -> None:
        """A kernel thread goes on with ``mm`` loaded (a no-op on every arch but x86)."""

    def flush_tlb_mm_exit(self, mm: int) -> None:
        """The final full-mm flush in ``exit_mmap`` (``tlb->fullmm``, page tables freed)."""
        self.tlb_broadcast(mm)

    def flush_tlb_munmap(self, mm: int, freed_tables: bool) -> None:
        """The flush after a munmap of the running mm; ``freed_tables``: page-table pages were
        freed too (``tlb->freed_tables``)."""
        self.c.count("tlb_flushes")
        self.tlb_broadcast(mm)

    def tlb_broadcast(self, mm: int) -> None:
        """A flush every CPU's TLB obeys, sent by the hardware (TLBI IS, tlbie, IDTE): no IPI."""
        self.c.trace(EV_TLB_BROADCAST, mm)
        self.c.count("tlb_broadcasts")

    def destroy_context(self, mm: int) -> None:
        """At ``__mmdrop``, before the mm is freed: the arch's per-mm state goes (x86-invlpgb's global ASID)."""

    def leave_mm(self) -> None:
        """An idle state that loses the TLB (``CPUIDLE_FLAG_TLB_FLUSHED``): x86 only."""

    def for_each_possible_lazymm_cpu(self, mm: int) -> Iterable[int]:
        """The CPUs a scanning scheme must look at: every online CPU unless the arch knows better."""
        return self.c.online_cpus()

    def cpu_offline(self) -> None:
        """The arch's hook as a CPU goes down (powerpc clears it from mms' masks)."""
