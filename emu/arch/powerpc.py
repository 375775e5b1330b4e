"""powerpc book3s64 radix: ``mm_cpumask`` records the CPUs that used the mm, trimmed by IPIs.

Models the code as in mainline from v6.3 (the shoot-lazies series, 2655421ae69f, with the powerpc
commits merged with it), a665eec0a22e (B8's fix, v5.10) and dfaed3e1fa70 (B7's fix, June 2023,
"Fixes: a665eec0a22e", stable v5.10+) included:

- arch/powerpc/mm/mmu_context.c ``switch_mm_irqs_off``: on the first switch to the mm on this
  CPU, set its bit and ``inc_mm_active_cpus`` (``mm->context.active_cpus``, kept in the mm
  record's arch word); switching away clears nothing.
- arch/powerpc/mm/book3s64/radix_tlb.c, the radix MMU's flushes; this is **arch code that runs
  under every scheme**:

  - ``radix__tlb_flush`` with ``tlb->fullmm`` (the exit flush): with
    ``IS_ENABLED(CONFIG_MMU_LAZY_TLB_SHOOTDOWN)`` (the scheme's class attribute
    ``MMU_LAZY_TLB_SHOOTDOWN``), ``exit_flush_lazy_tlbs`` first, then ``__flush_all_mm(mm, true)``;
    otherwise only ``__flush_all_mm``.
  - ``exit_flush_lazy_tlbs``: ``smp_call_function_many(mm_cpumask(mm), do_exit_flush_lazy_tlb)``
    (not the sender). ``exit_lazy_flush_tlb``: nothing if ``current->mm`` is the mm (a
    ``kthread_use_mm`` that raced with the flush runs it for real); if lazy on it, switch to
    init_mm with interrupts saved off (``mmgrab_lazy_tlb(&init_mm)``, ``active_mm = &init_mm``,
    ``switch_mm_irqs_off``, ``mmdrop_lazy_tlb(mm)``: the scheme's own hooks); then, if its bit is
    set, ``dec_mm_active_cpus`` and clear it. Each CPU trims only itself.
  - ``flush_type_needed``: no flush if ``active_cpus`` is 0; a local one if this CPU is the only
    one (trimming itself on the trim clock when it does not run the mm); a tlbie broadcast
    (``FLUSH_TYPE_GLOBAL``, no IPI) for fullmm; for a single-threaded mm flushed by its own
    thread, ``exit_flush_lazy_tlbs`` and a local flush; on the trim clock,
    ``exit_flush_lazy_tlbs`` and then a local flush or none; else the broadcast.
  - ``tick_and_test_trim_clock``: a per-CPU counter, true once every
    ``tlb_mm_cpumask_trim_timer`` (1073) calls. ``--trim-timer N`` sets it (Piggin's note to B7's
    fix: "This path can be stressed by reducing tlb_mm_cpumask_trim_timer (e.g., to 3)"; 1 trims
    on every flush).
  - a munmap flush (``radix__flush_tlb_mm``, or ``radix__flush_all_mm`` when page tables were
    freed) is ``flush_type_needed(mm, false)``; the two differ only in what the TLB invalidation
    clears, which the emulator does not model.
- ``cpu_offline`` is ``cleanup_cpu_mmu_context`` -> ``clear_tasks_mm_cpumask`` (kernel/cpu.c)
  -> ``arch_clear_mm_cpumask_cpu``: the CPU leaves the masks of the mms that still have a task
  (``find_lock_task_mm``), i.e. live mms only, with ``dec_mm_active_cpus``.

Interpretations (each marked; the literal reading in brackets):

- ``mm_users``/``current->mm`` and the task table stand for the kernel's; coprocessors
  (``context.copros``) are not modelled, so their ``FLUSH_TYPE_GLOBAL`` never applies.
- ``cputlb_use_tlbie()`` is taken as true (the default): ``FLUSH_TYPE_GLOBAL`` is a hardware
  broadcast, counted in ``tlb_broadcasts`` [with tlbie disabled, ``_tlbiel_pid_multicast`` IPIs
  the mask instead; not modelled]. ``FLUSH_TYPE_LOCAL`` flushes this CPU only: nothing to model.
- "an mm that still has a task" at offline is an mm in the live state (``mm_users`` > 0).
- The preempt-disabled regions are not modelled (the emulator does not preempt kernel code).
- The hash MMU (also book3s64, also ``MMU_LAZY_TLB_SHOOTDOWN``) has neither the trimming nor
  the exit-flush shootdown; it is not modelled.

Arch mutants (``--mutant NAME --arch powerpc``, with any scheme):

- ``powerpc-exit-irqs-enabled`` (B7, fixed by dfaed3e1fa70 "powerpc/64s/radix: Fix exit lazy tlb
  mm switch with irqs enabled", which names a665eec0a22e as the commit it fixes):
  ``exit_lazy_flush_tlb`` switches ``active_mm`` and the loaded mm without ``local_irq_save``.
  From an IPI that is harmless; from ``flush_type_needed`` (``exit_lazy_flush_tlb`` <-
  ``flush_type_needed`` <- ``__flush_all_mm`` <- ``tlb_finish_mmu`` <- ``exit_mmap``, the trim
  clock's local trim) it runs with interrupts on, and ``switch_mm_irqs_off``'s
  ``lockdep_assert_irqs_disabled`` fires.
- ``powerpc-trim-vs-kthread`` (B8, fixed by a665eec0a22e "powerpc/64s/radix: Fix mm_cpumask
  trimming race vs kthread_use_mm"): the single-threaded trim is the sender's
  ``mm_reset_thread_local`` after the IPIs (clear the mask, set only itself, ``active_cpus =
  1``), assuming nobody else can start using the mm; a kernel thread that took
  ``mmget_not_zero`` and ran ``kthread_use_mm`` meanwhile loses its bit and runs the mm
  outside its mask. Interpretation: the IPI handler stays the fixed one (targets also trim
  themselves), since the sender's reset overrides whatever the targets did [literally, the old
  handler did not touch the mask]; the other flush paths stay as merged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emu.arch.base import Arch
from emu.checks.oracle import CPUMASK_MISSING, MASK_AT_SWITCH_NEXT, MASK_AT_SWITCH_PREV, SCHEME_WARNING, site
from emu.kernel.protocols import CellDecl
from emu.machine.irq import ipi_function
from emu.machine.layout import INIT_MM, M_ARCH, M_GEN, M_STATE, M_USERS, MM_LIVE, MM_SLOT_BITS, MM_WORDS

if TYPE_CHECKING:
    from emu.kernel.surface import KernelCpu

DO_EXIT_FLUSH_LAZY_TLB = ipi_function("do_exit_flush_lazy_tlb", purpose="ipis_flush")

FLUSH_TYPE_NONE, FLUSH_TYPE_LOCAL, FLUSH_TYPE_GLOBAL = range(3)

AT_EXIT_FLUSH = site("exit_lazy_flush_tlb: WARN_ON_ONCE(current->mm)")
AT_ACTIVE_CPUS = site("powerpc: mm->context.active_cpus")
AT_RESET = site("mm_reset_thread_local: WARN_ON(current->mm != mm)")


class Powerpc(Arch):
    name = "powerpc"
    source = "arch/powerpc/mm/book3s64/radix_tlb.c and mmu_context.c as of v6.13"
    # the matrix rows of this model and its arch mutants (emu.harness.matrix), under the schemes named
    cells = (
        CellDecl(
            "refcount",
            "powerpc",
            "lockdep",
            options={"trim_timer": 3},
            arch_mutant="powerpc-exit-irqs-enabled",
            why="B7: a local trim, interrupts on",
        ),
        CellDecl(
            "shoot-lazies",
            "powerpc",
            "lockdep",
            options={"trim_timer": 3},
            arch_mutant="powerpc-exit-irqs-enabled",
            why="B7: a local trim, interrupts on",
        ),
        CellDecl(
            "refcount",
            "powerpc",
            "cpumask_missing",
            options={"use_mm_bursts": True},
            arch_mutant="powerpc-trim-vs-kthread",
            why="B8: trim vs kthread_use_mm",
        ),
        CellDecl(
            "shoot-lazies",
            "powerpc",
            "cpumask_missing",
            options={"use_mm_bursts": True},
            arch_mutant="powerpc-trim-vs-kthread",
            why="B8: trim vs kthread_use_mm",
        ),
    )
    memory_model = "weak"
    options = ("trim_timer",)
    mm_words = 1  # M_ARCH: mm->context.active_cpus
    summary = "mask set on first use; trimmed by exit_lazy_flush_tlb IPIs and CPU offline; tlbie broadcast flushes"

    def __init__(self, cpu: KernelCpu) -> None:
        super().__init__(cpu)
        cpu.irq.handlers[DO_EXIT_FLUSH_LAZY_TLB] = self.do_exit_flush_lazy_tlb
        self.trim_timer = cpu.arch_options.number("trim_timer", 1)
        self.trim_clock = 0  # DEFINE_PER_CPU(unsigned int, mm_cpumask_trim_clock)

    # -- arch/powerpc/mm/mmu_context.c ---------------------------------------------------------
    def switch_mm_irqs_off(self, prev: int, next: int) -> None:
        self.lockdep_assert_irqs_disabled(next)
        user_next = next != INIT_MM and next != 0
        if user_next and not self.in_mm_cpumask(next):  # "Mark this context has been used on the new CPU"
            self.atomics.cpumask_set_cpu(self.mm_cpumask(next), self.cpu)
            self.inc_mm_active_cpus(next)
            # "This full barrier orders the store to the cpumask above vs a subsequent load which
            # allows this CPU/MMU to begin loading translations for 'next'" (set_bit is unordered)
            self.atomics.smp_mb()
        if prev != next and prev != INIT_MM and prev != 0 and not self.in_mm_cpumask(prev):
            self.oracle.report(CPUMASK_MISSING, prev, MASK_AT_SWITCH_PREV, other=self.cpu)  # it ran prev outside the mask
        if self.loaded_mm() != next:
            self.load_mm(next)
            if user_next and not self.in_mm_cpumask(next):
                self.oracle.report(CPUMASK_MISSING, next, MASK_AT_SWITCH_NEXT, other=self.cpu)

    def inc_mm_active_cpus(self, mm: int) -> None:
        self.c.mm.mm_count_add(mm, M_ARCH, 1, AT_ACTIVE_CPUS)

    def dec_mm_active_cpus(self, mm: int) -> None:
        self.c.mm.mm_count_add(mm, M_ARCH, -1, AT_ACTIVE_CPUS)

    # -- arch/powerpc/mm/book3s64/radix_tlb.c --------------------------------------------------
    def flush_tlb_mm_exit(self, mm: int) -> None:
        """``radix__tlb_flush`` with ``tlb->fullmm``."""
        if self.c.strategy.MMU_LAZY_TLB_SHOOTDOWN:  # IS_ENABLED(CONFIG_MMU_LAZY_TLB_SHOOTDOWN): the scheme declares it
            self.atomics.smp_mb()  # "see radix__flush_tlb_mm"
            self.exit_flush_lazy_tlbs(mm)
        self.flush_all_mm(mm, fullmm=True)

    def flush_tlb_munmap(self, mm: int, freed_tables: bool) -> None:
        """``radix__flush_tlb_mm`` (or ``radix__flush_all_mm`` when page tables were freed)."""
        self.c.count("tlb_flushes")
        self.flush_all_mm(mm, fullmm=False)

    def flush_all_mm(self, mm: int, fullmm: bool) -> None:
        """``__flush_all_mm``: the flush ``flush_type_needed`` chooses."""
        self.atomics.smp_mb()  # "Order loads of mm_cpumask (in flush_type_needed) vs previous stores to clear ptes"
        self.oracle.mask_covers_loaded(mm, self.mm_cpumask(mm))
        if self.flush_type_needed(mm, fullmm) == FLUSH_TYPE_GLOBAL:
            self.tlb_broadcast(mm)  # _tlbie_pid: every CPU's TLB, by the hardware

    def flush_type_needed(self, mm: int, fullmm: bool) -> int:
        active_cpus = self.atomics.atomic_read(self.mm_record(mm) + M_ARCH)
        if active_cpus == 0:
            return FLUSH_TYPE_NONE
        if active_cpus == 1 and self.in_mm_cpumask(mm):
            if self.current_mm() != mm and self.tick_and_test_trim_clock():
                # "Asynchronous flush sources may trim down to nothing if the process is not running"
                self.exit_lazy_flush_tlb(mm)
                return FLUSH_TYPE_NONE
            return FLUSH_TYPE_LOCAL
        if fullmm:
            return FLUSH_TYPE_GLOBAL  # "a TLBIE tends to be faster than an IPI+TLBIEL"
        if self.atomics.atomic_read(self.mm_record(mm) + M_USERS) <= 1 and self.current_mm() == mm:
            self.trim_single_threaded(mm)
            return FLUSH_TYPE_LOCAL
        if self.tick_and_test_trim_clock():  # "Occasionally try to trim down the cpumask"
            self.exit_flush_lazy_tlbs(mm)
            if self.current_mm() == mm:
                return FLUSH_TYPE_LOCAL
            if self.in_mm_cpumask(mm):
                self.exit_lazy_flush_tlb(mm)
            return FLUSH_TYPE_NONE
        return FLUSH_TYPE_GLOBAL

    def tick_and_test_trim_clock(self) -> bool:
        self.trim_clock += 1
        if self.trim_clock == self.trim_timer:
            self.trim_clock = 0
            return True
        return False

    def trim_single_threaded(self, mm: int) -> None:
        """ "If we are running the only thread of a single-threaded process, then we should almost
        always be able to trim off the rest of the CPU mask": every other CPU trims itself."""
        self.exit_flush_lazy_tlbs(mm)

    def exit_flush_lazy_tlbs(self, mm: int) -> None:
        self.c.irq.smp_call_function_many(self.mm_cpumask_cpus(mm), DO_EXIT_FLUSH_LAZY_TLB, mm, wait=True)

    def do_exit_flush_lazy_tlb(self, mm: int) -> None:
        self.count_flush_ipi(mm)
        self.exit_lazy_flush_tlb(mm)

    def exit_lazy_flush_tlb(self, mm: int) -> None:
        c = self.c
        if self.current_mm() == mm:
            return  # a kthread_use_mm that raced with the flush: it runs the mm for real
        if c.active_mm() == mm:
            flags = c.irq.local_irq_save()  # "This is not always called from IPI (e.g., flush_type_needed)"
            self.switch_lazy_to_init_mm(mm)
            c.irq.local_irq_restore(flags)
        if self.in_mm_cpumask(mm):  # a racing IPI may have found the mask already clear
            self.dec_mm_active_cpus(mm)
            self.cpumask_clear(mm, self.cpu)

    def switch_lazy_to_init_mm(self, mm: int) -> None:
        c = self.c
        if self.current_mm():
            c.oracle.report(SCHEME_WARNING, mm, AT_EXIT_FLUSH)  # WARN_ON_ONCE(current->mm)
        s = c.strategy
        s.mmgrab_lazy_tlb(INIT_MM)
        c.set_active_mm(INIT_MM)
        self.switch_mm_irqs_off(mm, INIT_MM)
        s.mmdrop_lazy_tlb(mm)

    # -- kernel/cpu.c clear_tasks_mm_cpumask ---------------------------------------------------
    def cpu_offline(self) -> None:
        """``cleanup_cpu_mmu_context``: this CPU leaves the mask of every mm that still has users."""
        lay, w, a = self.c.layout, self.w, self.atomics
        for slot in range(1, lay.nmm):
            b = lay.mm_base + slot * MM_WORDS
            if w[b + M_STATE] != MM_LIVE:
                continue
            mm = (w[b + M_GEN] << MM_SLOT_BITS) | slot
            if self.in_mm_cpumask(mm):  # arch_clear_mm_cpumask_cpu
                # dec_mm_active_cpus, unless the slot was freed and reused meanwhile (no report: the
                # kernel holds task_lock, which this walk does not model)
                k = a.lock(b)
                if w[b + M_GEN] == mm >> MM_SLOT_BITS and w[b + M_STATE] == MM_LIVE:
                    w[b + M_ARCH] -= 1
                a.unlock(k)
                self.cpumask_clear(mm, self.cpu)


class PowerpcExitIrqsEnabled(Powerpc):
    name = "powerpc-exit-irqs-enabled"
    summary = "B7 (before dfaed3e1fa70): exit_lazy_flush_tlb switches mm with interrupts on"
    mutant_of = "powerpc"

    def exit_lazy_flush_tlb(self, mm: int) -> None:
        c = self.c
        if self.current_mm() == mm:
            return
        if c.active_mm() == mm:
            self.switch_lazy_to_init_mm(mm)  # no local_irq_save: from flush_type_needed, interrupts are on
        if self.in_mm_cpumask(mm):
            self.dec_mm_active_cpus(mm)
            self.cpumask_clear(mm, self.cpu)


class PowerpcTrimVsKthread(Powerpc):
    name = "powerpc-trim-vs-kthread"
    summary = "B8 (before a665eec0a22e): the sender trims a single-threaded mm's mask vs kthread_use_mm"
    mutant_of = "powerpc"

    def trim_single_threaded(self, mm: int) -> None:
        self.exit_flush_lazy_tlbs(mm)
        self.mm_reset_thread_local(mm)

    def mm_reset_thread_local(self, mm: int) -> None:
        """ "It's possible for mm_access to take a reference on mm_users to access the remote mm
        from another thread, but it's not allowed to set mm_cpumask": the assumption
        kthread_use_mm broke."""
        if self.current_mm() != mm:
            self.oracle.report(SCHEME_WARNING, mm, AT_RESET)
        self.atomics.atomic_set(self.mm_record(mm) + M_ARCH, 1)
        for cpu in self.mm_cpumask_cpus(mm):  # cpumask_clear(mm_cpumask(mm))
            if cpu != self.cpu:
                self.cpumask_clear(mm, cpu)
        self.atomics.cpumask_set_cpu(self.mm_cpumask(mm), self.cpu)
