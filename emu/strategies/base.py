"""The interface between the generic machine and a lazy-TLB scheme.

The scheduler, the mm lifecycle and the oracle are written once and call these hooks; a
scheme overrides the ones it needs. The hooks are named after the kernel functions they
model, and a scheme only uses the machine's kernel-named primitives (atomics, IPIs, per-CPU
runqueue fields, ``mmgrab``/``mmdrop``): strategies depend on the machine, never the
other way round.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, ClassVar

from emu.checks.oracle import SCHEME_WARNING, site
from emu.machine.layout import C_SCHEME, INIT_MM
from emu.machine.trace import event

if TYPE_CHECKING:
    from emu.kernel.protocols import CellDecl
    from emu.kernel.surface import KernelCpu

# the hooks the kernel calls (emu.kernel.protocols.SchemeHooks) that a scheme must implement itself;
# the others have the mainline default below
REQUIRED_HOOKS = ("mmgrab_lazy_tlb", "mmdrop_lazy_tlb")
HOOKS = (
    "mmgrab_lazy_tlb", "mmdrop_lazy_tlb", "mmdrop_lazy_tlb_sched", "lazy_switch_to_kernel", "lazy_switch_to_user",
    "finish_task_switch", "mmput_lazy_fixup", "cleanup_lazy_tlbs", "takedown_cpu", "sched_force_init_mm", "unlazy_mm_irqs_off",
)  # fmt: skip

AT_SHOOT = site("do_shoot_lazy_tlb: WARN_ON_ONCE(current->mm)")
AT_UNLAZY = site("unlazy_mm_irqs_off: WARN_ON_ONCE(current->mm)")

EV_RACE_STALL = event("race_stall", "stalls in the race window (--race-delay), {n:a} yields")
# what a scheme does to a per-CPU field of its own, as the timeline says it: a is the mm, b the CPU whose field it is
SHOWN_OPS = {
    "read": "reads {cpu:b}'s %s: {mm:a}",
    "set": "sets {cpu:b}'s %s to {mm:a}",
    "clear": "clears {cpu:b}'s %s: the lazy use of {mm:a} ends",
    "park": "xchg: parks {mm:a} in {cpu:b}'s %s",
    "displace": "xchg: takes {mm:a} out of {cpu:b}'s %s",
    "take": "takes {mm:a} out of {cpu:b}'s %s",
}
# the scanning schemes' costs, which the report gives per mm exit (``Strategy.per_exit``)
SCAN_COUNTERS = ("cpus_scanned", "remote_slot_reads", "mm_line_atomics")
SCAN_LABELS = {
    "cpus_scanned": "CPUs the scheme scans",
    "remote_slot_reads": "other CPUs' slots read",
    "mm_line_atomics": "scheme atomics on the mm's line",
}
SHOWN: dict[tuple[str, str], int] = {}  # (op, field) -> event code, registered at import: before the CPUs fork


class Strategy:
    """A lazy-mm scheme. A subclass declares everything the rest of the emulator needs to know of
    it, here in its one class: ``name``, ``summary`` and ``source`` (the commit or message id it
    models); the hooks it implements (``hooks()``: those of ``HOOKS`` it overrides); its Kconfig-like
    properties (``MMU_LAZY_TLB_SHOOTDOWN``, which arch code asks about); its per-CPU fields in the
    shared segment (``percpu``, one word each, at most ``SCHEME_PERCPU_WORDS``); its counters and
    their report labels (``counters``, ``labels``; ``per_exit``: those the report also gives per mm
    exit); the run options it reads (``options``: RunConfig fields, handed over in
    ``KernelCpu.scheme_options``); its ``FIXES``; its mutants (subclasses that set ``mutant_of``);
    and its matrix cells (``cells``). ``emu.strategies`` finds it by scanning its package."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    source: ClassVar[str] = ""  # the commit or message id the scheme models
    # CONFIG_MMU_LAZY_TLB_SHOOTDOWN: arch code that tests IS_ENABLED(...) asks this (powerpc's exit flush)
    MMU_LAZY_TLB_SHOOTDOWN: ClassVar[bool] = False
    options: ClassVar[tuple[str, ...]] = ()  # the RunConfig fields of its own (--shoot-all), read from scheme_options
    labels: ClassVar[dict[str, str]] = {}  # counter -> what the report says it counts
    per_exit: ClassVar[tuple[str, ...]] = ()  # counters the report also divides by the mm exits (``NAME_per_exit``)
    cells: ClassVar[tuple[CellDecl, ...]] = ()  # its matrix cells, its mutants' included
    percpu: ClassVar[tuple[str, ...]] = ()  # per-runqueue fields, e.g. ("lazy_mm",)
    pins: ClassVar[tuple[str, ...]] = ()  # those that pin an mm (a hazard slot, a parked reference): never a freed one
    counters: ClassVar[tuple[str, ...]] = ()  # extra per-CPU counters
    mutant_of: ClassVar[str | None] = None  # set on a deliberately broken variant
    has_race_window: ClassVar[bool] = False  # it calls race_window(): --race-delay has somewhere to stall
    # per-CPU fields whose reads, writes and exchanges the timeline shows (``show``): those a story of
    # the scheme turns on, where they are not on every switch's path
    shown: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kw: object) -> None:
        super().__init_subclass__(**kw)
        for f in cls.shown:
            for op, fmt in SHOWN_OPS.items():
                SHOWN[(op, f)] = event(f"{op} {f}", fmt % f)

    # --fix NAME: later patches' fixes this scheme can apply, name -> what the fix is
    FIXES: ClassVar[dict[str, str]] = {}
    # where the generic kernel paths differ by series:
    exit_mm_grab_irqs_off: ClassVar[bool] = False  # exit_mm's mmgrab_lazy_tlb inside its irq-off section
    lazy_release_in_irqs_off: bool = False  # kthread_use_mm / exec_mmap drop the old lazy mm before irqs are on
    hotplug_idle_task_exit: bool = False  # hotplug as before the Nov 2024 fix: idle_task_exit + finish_cpu (takedown_cpu)

    def __init__(self, cpu: KernelCpu) -> None:
        self.c = cpu
        self.smp_processor_id = cpu.cpu
        a = cpu.atomics
        self.READ_ONCE, self.WRITE_ONCE = a.READ_ONCE, a.WRITE_ONCE
        self.smp_mb, self.smp_load_acquire, self.smp_store_release = a.smp_mb, a.smp_load_acquire, a.smp_store_release
        self.atomic_add, self.atomic_sub, self.xchg, self.cmpxchg = a.atomic_add, a.atomic_sub, a.xchg, a.cmpxchg
        self.atomic_long_read, self.atomic_long_xchg, self.atomic_long_xchg_relaxed = a.READ_ONCE, a.xchg, a.xchg_relaxed
        self.try_cmpxchg, self.try_cmpxchg_relaxed = a.try_cmpxchg, a.try_cmpxchg_relaxed
        self.cmpxchg_relaxed, self.smp_rmb, self.smp_wmb = a.cmpxchg_relaxed, a.smp_rmb, a.smp_wmb
        self.mmgrab, self.mmdrop = cpu.mm.mmgrab, cpu.mm.mmdrop
        self.num_possible_cpus = cpu.ncpus
        opts = cpu.scheme_options  # its own options, never the run's configuration
        self.fixes = opts.fixes
        self._counters, self._cnt = cpu.w, cpu.counter_words
        # its own generator, so that --race-delay leaves the workload's random stream alone
        self._delay_p = opts.race_delay
        self._delay_rand = random.Random(opts.seed * 1_000_003 + cpu.cpu + 0xDE1A).random
        # the scheduler skips the call on every switch for a scheme that does nothing there
        self.has_finish_task_switch = type(self).finish_task_switch is not Strategy.finish_task_switch
        self._trace = cpu.trace
        cpu.oracle.watch_pins([C_SCHEME + self.percpu.index(f) for f in self.pins])

    @classmethod
    def hooks(cls) -> tuple[str, ...]:
        """The kernel hooks this scheme implements itself (the rest keep the mainline default)."""
        return tuple(h for h in HOOKS if getattr(cls, h) is not getattr(Strategy, h))

    def rq(self, field: str, cpu: int | None = None) -> int:
        """The word offset of ``rq->field`` on ``cpu`` (this CPU by default)."""
        return self.c.rq_field(self.smp_processor_id if cpu is None else cpu, self.percpu.index(field))

    # -- the lazy reference: where the schemes differ ------------------------------------------
    def mmgrab_lazy_tlb(self, mm: int) -> None:
        """A lazy use of ``mm`` begins on this CPU."""

    def mmdrop_lazy_tlb(self, mm: int) -> None:
        """A lazy use of ``mm`` ended on this CPU."""

    def mmdrop_lazy_tlb_sched(self, mm: int) -> None:
        """The drop in ``finish_task_switch`` (interrupts enabled again)."""
        self.mmdrop_lazy_tlb(mm)

    # -- context-switch points ---------------------------------------------------------------
    def lazy_switch_to_kernel(self, mm: int) -> None:
        """``context_switch`` user -> kernel: the kernel calls ``mmgrab_lazy_tlb(prev->active_mm)``."""
        self.mmgrab_lazy_tlb(mm)

    def lazy_switch_to_user(self, mm: int) -> None:
        """``context_switch`` kernel -> user, after ``switch_mm``; ``mm`` is the lazy mm left."""

    def finish_task_switch(self) -> None:
        """Scheme work at the end of ``finish_task_switch``, interrupts enabled (see ``has_finish_task_switch``)."""

    # -- mm teardown ----------------------------------------------------------------------
    def mmput_lazy_fixup(self, mm: int) -> None:
        """Work in ``__mmput`` between ``exit_mmap`` and the final ``mmdrop`` (mm_users is 0)."""

    def cleanup_lazy_tlbs(self, mm: int) -> None:
        """In ``__mmdrop``, before the mm is freed."""

    # -- CPU hotplug ---------------------------------------------------------------------------
    def takedown_cpu(self) -> None:
        """The lazy-mm steps of taking this CPU down, in the order that "lazy tlb: fix hotplug exit
        race with MMU_LAZY_TLB_SHOOTDOWN" (Nov 2024, lkml 20241104142318.3295663-1-herton@redhat.com)
        established: leave the lazy mm for init_mm first, then go offline and let the arch drop the
        CPU from the masks, then the rest of the teardown. A scheme that predates that fix and sets
        ``hotplug_idle_task_exit`` gets the path of its base instead (``takedown_cpu_idle_task_exit``)."""
        c = self.c
        if self.hotplug_idle_task_exit:
            self.takedown_cpu_idle_task_exit()
            return
        c.sched_force_init_mm()
        c.set_cpu_online(False)
        c.arch.cpu_offline()
        c.cpuhp_teardown()

    def takedown_cpu_idle_task_exit(self) -> None:
        """Before the Nov 2024 fix (6.12-rc1): offline and out of the masks first, the teardown, then
        the dead CPU's ``idle_task_exit()`` (the MMU to init_mm, no scheme hook) and the control CPU's
        ``finish_cpu()``, whose ``mmdrop_lazy_tlb(mm)`` runs on the control CPU."""
        c = self.c
        c.set_cpu_online(False)
        c.arch.cpu_offline()
        c.cpuhp_teardown()
        c.finish_cpu(c.idle_task_exit())

    def sched_force_init_mm(self) -> None:
        """A CPU going offline leaves its lazy mm for init_mm (also when it already was there): a
        scheme drops what it deferred to this CPU's next switch, which an offline CPU never makes.
        Only the hotplug path runs it (mainline: ``sched_cpu_wait_empty``); the drain does not."""

    def do_shoot_lazy_tlb(self, mm: int) -> None:
        """kernel/fork.c's IPI handler: a CPU lazy on ``mm`` switches to init_mm."""
        c = self.c
        c.count_lazy_ipi(mm)
        if c.active_mm() == mm:
            if c.arch.current_mm():
                c.oracle.report(SCHEME_WARNING, mm, AT_SHOOT)  # WARN_ON_ONCE(current->mm)
            c.set_active_mm(INIT_MM)
            c.switch_mm(mm, INIT_MM)

    def unlazy_mm_irqs_off(self) -> None:
        """End this CPU's lazy use of its active mm, interrupts off: from Lutomirski's 2022 series
        (kernel/sched/core.c, added by 12/23 and reworked by 16/23), which x86's 20/23 and 21/23
        call from the idle path and from the TLB-flush IPI of a lazy CPU (``--x86-unlazy-on-flush``).
        The CPU switches to init_mm first, then the lazy use is released through the scheme's own
        hooks: ``mmdrop_lazy_tlb(mm)``, then ``mmgrab_lazy_tlb(&init_mm)`` for the lazy use of
        init_mm that follows. Interpretation: 12/23 took the init_mm reference before dropping the
        old mm (``mmgrab(&init_mm); ...; mmdrop(mm)``) and 16/23 took none (init_mm "is not about
        to go away"); the order here, release before the next grab, is the one every scheme's
        single lazy slot copes with."""
        c = self.c
        mm = c.active_mm()
        if mm == INIT_MM:
            return
        if c.arch.current_mm():
            c.oracle.report(SCHEME_WARNING, mm, AT_UNLAZY)
            return
        c.arch.switch_mm_irqs_off(mm, INIT_MM)
        # x86 has cleared this CPU from mm's mask while active_mm and the scheme's lazy slot still name mm: a
        # scan of the mask (22/23's for_each_possible_lazymm_cpu) misses this CPU here
        self.race_window()
        c.set_active_mm(INIT_MM)
        self.mmdrop_lazy_tlb(mm)
        self.mmgrab_lazy_tlb(INIT_MM)

    def count(self, name: str, n: int = 1) -> None:
        self._counters[self._cnt[name]] += n  # KernelCpu.count, without the second call: on every lazy switch

    def show(self, op: str, field: str, mm: int, cpu: int = -1) -> None:
        """Trace an access of the scheme to ``cpu``'s ``field`` (this CPU's by default): one of ``SHOWN_OPS``."""
        self._trace(SHOWN[(op, field)], mm, self.smp_processor_id if cpu < 0 else cpu)

    def race_window(self) -> None:
        """A marked race window in the scheme: with ``--race-delay``, stall here now and then so
        that another CPU can run through the window (targeted delay injection; no effect at 0)."""
        if self._delay_p and self._delay_rand() < self._delay_p:
            self.count("race_delays")
            n = 1 + int(self._delay_rand() * 4)
            self._trace(EV_RACE_STALL, n)
            for _ in range(n):
                self.c.yield_point()
