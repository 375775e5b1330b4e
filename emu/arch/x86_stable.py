"""x86 in the stable trees 6.1.y, 6.6.y and 6.12.y after the 2025 backports: the trim filter without the lazy mask, and X3.

What those trees took (reference section 4.1), checked against the stable review posts:

- 6db2526c1d69 "x86/mm/tlb: Only trim the mm_cpumask once a second" was backported (Feb 2025)
  without 209954cbc7d0 "x86/mm/tlb: Update mm_cpumask lazily" (a reviewer on the stable list:
  "commit 209954cbc7d0 isn't merged into stable 6.6, it seems merely merging commit 6db2526c1d69
  into stable 6.6 is meaningless"): ``native_flush_tlb_multi`` uses ``should_flush_tlb`` (skip a
  lazy CPU; flush a CPU whose ``cpu_tlbstate.loaded_mm`` is the mm; any CPU when the
  once-a-second trim is due) while ``switch_mm_irqs_off`` still clears the bit of the mm it
  leaves and sets next's every time, as up to v6.13 (``emu.arch.x86``).
- fea4e317f9e7's backport (May 2025; 6.12.29 among them; the 5.15 review post
  20250512172016.578668469@linuxfoundation.org shows the same hunks): ``should_flush_tlb`` reads
  ``loaded_mm`` first, ``smp_rmb()``, and flushes a CPU in ``LOADED_MM_SWITCHING``; but in those
  trees ``switch_mm_irqs_off`` writes ``LOADED_MM_SWITCHING`` only after ``choose_new_asid()``, that
  is after the ``tlb_gen`` read. Between the read and that store a flush that bumps ``tlb_gen``
  sees the old ``loaded_mm`` (the previous mm, not lazy) and skips the CPU, which then loads CR3
  with the old generation (``choose_new_asid``'s read of the ASID slot's generation lies in
  between, a scheduling point of a deterministic mode: ``X86.choose_new_asid``): X3, X2's
  window left open (Stephen Dolan, "[PATCH] x86/mm: Fix check/use ordering in switch_mm_irqs_off()",
  CAHDw0oE0334gEJ=ga1PAnZ3Av8+tFkKF-MJCF7Jj3i6pBVJvFQ@mail.gmail.com). A window: caught under ``sc``.
- ``x86-stable-dolan-fix``: Dolan's patch as posted, the ``LOADED_MM_SWITCHING`` store moved before
  the bit is set and ``tlb_gen`` read (the locked ``cpumask_set_cpu``, done every time in these trees,
  orders the two). Interpretation: which stable release took it, if any, is not confirmed here.

Everything else (the mask, the freed-tables flush to every CPU in it, the lazy CPU's switch to
init_mm, the TLB generations and the oracle's records) is ``emu.arch.x86``'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from emu.arch.x86 import FLUSH_TLB_FUNC, X86
from emu.checks.oracle import CPUMASK_MISSING, MASK_AT_SWITCH_PREV
from emu.kernel.protocols import CellDecl
from emu.machine.layout import CPU_WORDS, INIT_MM, LOADED_MM_SWITCHING, MM_SLOT_MASK, TG_DONE, TG_GEN

if TYPE_CHECKING:
    from emu.kernel.surface import KernelCpu


class X86Stable(X86):
    name = "x86-stable-6.12.29"
    # cpu_tlbstate.loaded_mm: the kernel's per-CPU copy of the loaded mm, a plain store through the memory model
    percpu = X86.percpu + (("tlbstate_loaded", 1),)
    summary = "stable 6.1.y/6.6.y/6.12.y: trim filter, no lazy mask; X2's backport stores SWITCHING after the tlb_gen read (X3)"
    source = "arch/x86/mm/tlb.c in the 6.1.y, 6.6.y and 6.12.y stable trees (6.12.29): 6db2526c1d69 and X2's backport"
    in_generic_cells = False  # X3 is its own
    cells: ClassVar[tuple[CellDecl, ...]] = (
        CellDecl(
            "refcount",
            "x86-stable-6.12.29",
            "missed_flush",
            det_workload={"p_munmap": 0.05},  # the 3-CPU machine: more flushes to meet the window
            why="X3 (Dolan): the backport stores LOADED_MM_SWITCHING after the tlb_gen read; a flush between them skips the CPU",
        ),
    )
    switching_first: ClassVar[bool] = False  # Dolan's fix: LOADED_MM_SWITCHING stored before the tlb_gen read
    is_lazy_buffered = True

    def __init__(self, cpu: KernelCpu) -> None:
        super().__init__(cpu)
        tlbstate = cpu.layout.arch_field("tlbstate_loaded")  # cpu_tlbstate.loaded_mm
        self.tlbstate = cpu.layout.cpu(cpu.cpu) + tlbstate
        self.tlbstate_base = cpu.layout.cpu_base + tlbstate

    def enter_lazy_tlb(self, mm: int) -> None:
        if self.w[self.loaded] != INIT_MM:
            self.atomics.WRITE_ONCE(self.is_lazy, 1)

    def switch_mm_irqs_off(self, prev: int, next: int) -> None:
        irq = self.irq
        if not (irq.disabled or irq.in_irq):
            self.lockdep_assert_irqs_disabled(next)
        w, a = self.w, self.atomics
        real_prev = w[self.loaded]
        was_lazy = a.READ_ONCE(self.is_lazy)  # this CPU sees its own buffered store of is_lazy
        if was_lazy:
            a.WRITE_ONCE(self.is_lazy, 0)
        user_next = next != INIT_MM and next != 0
        if real_prev == next:
            if user_next and not self.in_mm_cpumask(next):
                self.oracle.report(CPUMASK_MISSING, next, MASK_AT_SWITCH_PREV, other=self.cpu)
                a.cpumask_set_cpu(self.mm_cpumask(next), self.cpu)
            if was_lazy and user_next:
                self.lazy_tlb_gen_check(next)
            return
        if self.switching_first:
            a.WRITE_ONCE(self.tlbstate, LOADED_MM_SWITCHING)
        if user_next:
            a.cpumask_set_cpu(self.mm_cpumask(next), self.cpu)  # "Start remote flushes and then read tlb_gen."
            a.smp_mb__after_atomic()  # x86's set_bit is a locked op, a full barrier: so under every memory model
        gen = a.atomic_read(self.tg(next) + TG_GEN) if user_next else 0  # next_tlb_gen
        self.choose_new_asid()
        if not self.switching_first:
            a.WRITE_ONCE(self.tlbstate, LOADED_MM_SWITCHING)  # the backport's place: after choose_new_asid()
        self.c.tlb_done_at = self.tg(next) + TG_DONE
        self.load_new_mm_cr3(next, gen)
        a.WRITE_ONCE(self.tlbstate, next)
        if real_prev != INIT_MM and real_prev != 0:
            prev_mask = self.cpumask_base + (real_prev & MM_SLOT_MASK) * self.cpumask_stride
            if not self.in_mm_cpumask(real_prev):
                self.oracle.report(CPUMASK_MISSING, real_prev, MASK_AT_SWITCH_PREV, other=self.cpu)
            a.cpumask_clear_cpu(prev_mask, self.cpu)

    def flush_tlb_multi(self, mm: int, cpus: list[int], freed_tables: bool) -> None:
        trim = self.should_trim_cpumask(mm)
        if not freed_tables:
            cpus = [c for c in cpus if self.should_flush_tlb(c, mm, trim)]
        self.c.irq.on_each_cpu_mask(cpus, FLUSH_TLB_FUNC, mm, wait=True)

    def should_flush_tlb(self, cpu: int, mm: int, trim: bool = False) -> bool:
        """The backport of fea4e317f9e7 on top of 6db2526c1d69's."""
        a = self.atomics
        loaded = a.READ_ONCE(self.tlbstate_base + cpu * CPU_WORDS)
        a.smp_rmb()
        if a.READ_ONCE(self.is_lazy_base + cpu * CPU_WORDS):
            return False
        return loaded in (LOADED_MM_SWITCHING, mm) or trim


class X86StableDolanFix(X86Stable):
    name = "x86-stable-dolan-fix"
    summary = "the stable trees with Stephen Dolan's fix: LOADED_MM_SWITCHING stored before the bit and the tlb_gen read"
    source = "the stable trees' arch/x86/mm/tlb.c with Stephen Dolan's fix to X2's backport"
    cells: ClassVar[tuple[CellDecl, ...]] = (
        CellDecl("refcount", "x86-stable-dolan-fix", why="Dolan's fix: LOADED_MM_SWITCHING stored before the bit and the tlb_gen read"),
        *(
            CellDecl(
                "refcount", "x86-stable-dolan-fix", options={"memory_model": m}, why=f"every flush reaches the CPUs it must, under {m} too"
            )
            for m in ("tso", "weak")
        ),
    )
    switching_first = True
