"""One emulated CPU: an OS process running the scheduler loop over the shared machine.

The loop runs the current task for one quantum, asks the workload's driver
(``emu.kernel.driver``) what happens next (fork, exit, sleep, be preempted or migrated; a kernel
thread may adopt an mm), carries it out, and calls ``schedule()``. Every quantum the MMU "walks"
the page tables of the loaded and the active mm, which is where the oracle sees a lazy CPU
touching a freed mm. An idle CPU blocks on its doorbell semaphore, so it burns no core until an
IPI or a wake-up arrives. The architecture model, the scheme and the driver are given to it
(``Parts``): the kernel imports none of them.

Everything random is drawn from this CPU's generator, derived from the run seed, the driver's
answers included.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import deque
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from emu.checks.oracle import CPUMASK_MISSING, INCONSISTENT_MM, IRQ_ENTRY, PAGE_WALK, USE_AFTER_FREE, Oracle, site
from emu.kernel.drain import Drain, drain_settled
from emu.kernel.driver import TaskDriver
from emu.kernel.hotplug import FINISH_CPU, Hotplug
from emu.kernel.mm import MmOps
from emu.kernel.protocols import ArchHooks, PartOptions, RunSettings, SchemeHooks, WorkloadKnobs
from emu.kernel.runqueue import RunQueue
from emu.kernel.sched import Scheduler
from emu.kernel.tasks import Tasks
from emu.machine.detsched import WAIT_SPIN, WALK, DetSched, install_points
from emu.machine.irq import IPI_SIGNAL, IpiTimeout, Irq, ipi_purpose
from emu.machine.layout import (
    C_ACTIVE_MM,
    C_CURR,
    C_DRAIN_PASS,
    C_HP_WANT,
    C_INBOX_HEAD,
    C_INBOX_TAIL,
    C_LOADED_MM,
    C_LOST_IPI_FN,
    C_LOST_IPI_MS,
    C_LOST_IPI_TO,
    C_ONLINE,
    C_PID,
    C_PREV_MM,
    C_SCHEME,
    C_STATE,
    CPU_EXITED,
    CPU_IDLE,
    CPU_QUIESCED,
    CPU_RUNNING,
    E2F_COUNTERS,
    H_KTHREAD_MMS,
    H_PHASE,
    H_READY,
    H_STUTTER,
    H_USE_MM_BURST,
    INIT_MM,
    KIND_IDLE,
    KIND_KTHREAD,
    KIND_RESUMING,
    KIND_USER,
    M_GEN,
    M_STATE,
    MM_FREED,
    MM_SLOT_BITS,
    MM_SLOT_MASK,
    MM_WORDS,
    PHASE_DRAIN,
    PHASE_EXIT,
    PHASE_RUN,
    T_KIND,
    T_STATE,
    TASK_RUNNABLE,
    TG_DONE,
    TG_FREED,
    TLB_GEN_FIELD,
    Layout,
    e2f_bucket,
)
from emu.machine.memory_model import TsoAtomics, WeakAtomics, make_atomics
from emu.machine.perturb import install_noise
from emu.machine.trace import Tracer

if TYPE_CHECKING:
    from collections.abc import Callable

    from emu.machine.shm import Segment


EXIT_HARNESS = 3  # a CPU process's exit status when the harness itself failed
# the walk of the tables of an mm this CPU was lazy on, up to the CR3 write that left it; a weak model
# performs it late (``WeakAtomics.mmu_walk``), so a freed mm found there was freed before the walk
SWITCH_WALK = site("page-table walk of the outgoing lazy mm, up to the CR3 write")


class Parts(NamedTuple):
    """What the kernel runs, chosen above it (``emu.harness.parts``): the architecture model, the
    lazy-mm scheme, each built on the CPU, and the workload's driver; the options each part is
    given (its own, not the run's configuration) and the memory model the run uses (``--memory-model
    arch`` already resolved to the one the arch model declares)."""

    arch: Callable[[Cpu], ArchHooks]
    strategy: Callable[[Cpu], SchemeHooks]
    driver: Callable[[WorkloadKnobs, int, random.Random], TaskDriver]
    scheme_options: PartOptions = PartOptions()
    arch_options: PartOptions = PartOptions()
    memory_model: str = "sc"


FREED_AFTER_DONE = TG_FREED - TG_DONE  # a TG_FREED's distance from its TG_DONE


class Cpu(Scheduler, RunQueue, Tasks, Hotplug, Drain):
    def __init__(
        self, cpu: int, cfg: RunSettings, layout: Layout, seg: Segment, locks: list, doorbells: list,  # type: ignore[type-arg]
        parts: Parts, det: DetSched | None = None,
    ) -> None:  # fmt: skip
        self.cpu = cpu
        self.cfg = cfg
        self.layout = layout
        self.ncpus = layout.ncpus
        self.w = seg.words
        self.arr = np.frombuffer(seg.buf, dtype=np.int64)
        self.irq = Irq(self.w, layout, cpu, doorbells, ack_timeout=cfg.ipi_timeout)
        self.atomics = make_atomics(parts.memory_model, self.w, locks, self.irq, cfg.seed * 1_000_003 + cpu + 0x5B)
        self.atomics.count_costs(
            layout.mm_base, layout.ran_base, layout.counter(cpu, "mm_atomics"),
            layout.counter(cpu, "lock_contended"), layout.counter(cpu, "lock_wait_ns"),
        )  # fmt: skip
        if "mask_atomics" in layout.counters:  # a run laid out by the harness: the mm_cpumask lines apart from the mm records
            self.atomics.count_mask_atomics(layout.cpumask_base, layout.counter(cpu, "mask_atomics"))
        # the machine's clock: the host's, or a deterministic mode's step count (emu.machine.detsched)
        self.det = det
        self.clock: Callable[[], float] = time.monotonic if det is None else det.clock
        self.clock_ns: Callable[[], int] = time.monotonic_ns if det is None else det.clock_ns
        self.trace = Tracer(self.w, layout, cpu, time.monotonic_ns if det is None else det.stamp).emit
        self.irq.trace = self.trace
        self.oracle = Oracle(self.w, self.arr, layout, self.atomics, cpu, self.trace)
        self.oracle.clock_ns = self.clock_ns
        self.rng = random.Random(cfg.seed * 1_000_003 + cpu)
        self.driver: TaskDriver = parts.driver(cfg.workload, layout.ncpus, self.rng)  # what the tasks do: the same generator
        self.user_quantum = self.driver.user_quantum  # bound once: every user quantum

        base = layout.cpu(cpu)
        self.CURR, self.ACTIVE, self.LOADED = base + C_CURR, base + C_ACTIVE_MM, base + C_LOADED_MM
        self.PREV_MM, self.STATE, self.DRAIN_PASS = base + C_PREV_MM, base + C_STATE, base + C_DRAIN_PASS
        self.INBOX_HEAD, self.INBOX_TAIL = base + C_INBOX_HEAD, base + C_INBOX_TAIL
        self.task_base = layout.task_base
        self.counter_words = {name: layout.counter(cpu, name) for name in layout.counters}
        self.c_switches = self.counter_words["context_switches"]
        self.c_lazy_switches = self.counter_words["lazy_switches"]
        self.c_walks = self.counter_words["page_walks"]
        self.c_migrations = self.counter_words["migrations"]
        self.irq.on_send = self._count_ipi
        self.irq.handlers[FINISH_CPU] = self.do_finish_cpu
        self.irq.on_receive = self._received_ipi
        self.irq.on_entry = self.irq_entry
        self.irq.fence = self.atomics.store_buffer_drain

        self.online = True
        self.going_down = False
        self.perturbed = cfg.perturbed  # the runner may ask this CPU to pause or go down
        self.HP_WANT = base + C_HP_WANT
        noise_rng = random.Random((cfg.seed * 1_000_003 + cpu) ^ 0x6E6F697365)
        self.noise = install_noise(self.atomics, cfg.noise, noise_rng, self.counter_words["noise_delays"])
        if det is not None:
            det.atomics, det.irq = self.atomics, self.irq
            if not det.tso_early_commits and isinstance(self.atomics, TsoAtomics):
                self.atomics.commit_only_when_forced()  # the policy enumerates schedules, not TSO's early commits
                det.track_store_buffer(self.atomics)  # early commits are the schedule's decisions (explore --tso-commits)
            install_points(self.atomics, det)  # before the scheme and the arch bind the primitives
            self.irq.use_det(det)
            walk = self.page_walk

            def page_walk() -> None:
                det.point(False, WALK)  # it reads (the mms, the masks): for the explorer, it conflicts with writes only
                walk()

            self.page_walk = page_walk  # type: ignore[method-assign]

        self.mask_word, self.mask_bit = cpu >> 5, cpu & 31  # this CPU's place in an mm_cpumask
        self.mm_base, self.cpumask_stride = layout.mm_base, layout.cpumask_stride
        self.my_cpumask_word = layout.cpumask_base + self.mask_word  # in the first mm's mask
        self.mm = MmOps(self)
        self.scheme_options, self.arch_options = parts.scheme_options, parts.arch_options
        self.arch = parts.arch(self)
        self.tracks_tlb_gen = self.arch.tracks_tlb_gen
        # the oracle reads the TLB generation from the arch's per-CPU field (kept here: read on every user quantum)
        # the loaded mm's TG_DONE word (its TG_FREED follows), kept by an arch that tracks TLB generations; read
        # every quantum, so a plain attribute: elsewhere init_mm's, never flushed (0, as this CPU's TLB_GEN)
        self.tlb_done_at = layout.tlbgen(INIT_MM) + TG_DONE
        # the TLB generation, in the arch's per-CPU field; an arch that keeps none: init_mm's TG_DONE, 0 for good
        self.TLB_GEN = base + layout.arch_field(TLB_GEN_FIELD) if self.tracks_tlb_gen else self.tlb_done_at
        self.strategy = parts.strategy(self)
        if self.atomics.walks_late:  # a model that may perform the MMU's walk of an outgoing mm late
            self.route_mmu_walks()
        self.flush_relies_on_mask = self.arch.flush_relies_on_mask
        self.idle_leave_mm = parts.arch_options.flag("x86_idle_leave_mm")  # an x86 model's option (X86.options)

        # local scheduler state: this CPU's runqueue, its per-CPU kthreads, sleeping tasks
        self.runqueue: deque[int] = deque()
        self.kthreads = list(layout.kthread_tasks_of(cpu))
        self.kthread_queued: set[int] = set()
        self.kthread_mm: dict[int, list[int]] = {}  # kthread -> [mm, quanta left]
        self.sleepers: list[tuple[float, int]] = []

    # -- per-CPU fields and counters ----------------------------------------------------------
    def rq_field(self, cpu: int, k: int) -> int:
        return self.layout.cpu(cpu) + C_SCHEME + k

    def count(self, name: str, n: int = 1) -> None:
        self.w[self.counter_words[name]] += n

    def count_if(self, name: str, n: int = 1) -> None:
        """A counter that only some runs carry (a benchmark's): counted where the layout has it."""
        word = self.counter_words.get(name)
        if word is not None:
            self.w[word] += n

    def _received_ipi(self, fid: int) -> None:
        self.count("ipis_received")
        if self.det is not None:
            self.det.progress()  # its acknowledgement is what the sender waits for

    def cpu_relax(self) -> None:
        """One iteration of a busy-wait whose condition is not met yet: give the core (or, in a
        deterministic mode, the turn) to another CPU."""
        if self.det is None:
            os.sched_yield()
        else:
            self.det.wait(WAIT_SPIN)

    def yield_point(self) -> None:
        """A place where another CPU should get a chance to run (a marked race window)."""
        if self.det is None:
            os.sched_yield()
        else:
            self.det.preempt()

    def _count_ipi(self, fid: int, target: int, arg: int) -> None:
        self.count("ipis_sent")
        if self.mm.tearing_down:
            self.count("ipis_exit")
        purpose = ipi_purpose(fid)
        if purpose:
            self.count(purpose)

    def record_exit_to_free(self, ns: int) -> None:
        self.count(E2F_COUNTERS[e2f_bucket(ns)])

    def count_lazy_ipi(self, mm: int) -> None:
        """Classify an IPI that exists to get lazy CPUs off ``mm``: was this CPU lazy on it?"""
        if not self.irq.in_irq:
            return  # run locally by on_each_cpu_mask: not an interrupt
        lazy = self.w[self.ACTIVE] == mm and self.arch.current_mm() != mm
        self.count("ipis_useful" if lazy else "ipis_wasted")

    def irq_entry(self) -> None:
        """Interrupt entry serializes: the store buffer drains before the handler runs."""
        self.atomics.store_buffer_drain()
        self.irq_entry_check()

    def irq_entry_check(self) -> None:
        """An interrupt sees the CPU between instructions: active_mm and the loaded mm must agree
        (or, where the arch allows, a lazy CPU runs on init_mm's tables)."""
        w = self.w
        active, loaded = w[self.ACTIVE], w[self.LOADED]
        if active != loaded and not (loaded == INIT_MM and self.arch.lazy_may_load_init_mm):
            self.oracle.report(INCONSISTENT_MM, active, IRQ_ENTRY, aux=loaded)

    # -- the current task's mm, as the scheme code sees it ------------------------------------
    def active_mm(self) -> int:
        return self.w[self.ACTIVE]

    def set_active_mm(self, mm: int) -> None:
        self.w[self.ACTIVE] = mm

    def switch_mm(self, prev: int, next: int) -> None:
        """``switch_mm``: ``switch_mm_irqs_off`` with interrupts masked around it."""
        flags = self.irq.local_irq_save()
        self.arch.switch_mm_irqs_off(prev, next)
        self.irq.local_irq_restore(flags)

    def online_cpus(self) -> list[int]:
        w, lay = self.w, self.layout
        return [c for c in range(self.ncpus) if w[lay.cpu(c) + C_ONLINE]]

    # -- process entry ----------------------------------------------------------------------
    def main(self) -> int:
        """Boot, run until the runner says exit, and return the process exit status."""
        self.install_interrupts()
        self.boot()
        try:
            self.run()
            if self.det is not None:
                self.det.exit()
        except IpiTimeout as e:
            # the runner turns this record into the report's "lost IPI" line: no stderr from a CPU
            base = self.layout.cpu(self.cpu)
            self.w[base + C_LOST_IPI_FN] = e.fid
            self.w[base + C_LOST_IPI_MS] = int(e.waited * 1000)
            self.w[base + C_LOST_IPI_TO] = e.target + 1
            return EXIT_HARNESS
        finally:
            self.w[self.STATE] = CPU_EXITED
        return 0

    def install_interrupts(self) -> None:
        """The IPI doorbell handler (it runs in the idle wait too: a signal interrupts it)."""
        signal.signal(IPI_SIGNAL, self.irq.doorbell)

    def boot(self) -> None:
        w, lay = self.w, self.layout
        idle = self.cpu  # task id of this CPU's idle task
        w[self.task_base + idle * 8 + T_KIND] = KIND_IDLE
        w[self.task_base + idle * 8 + T_STATE] = TASK_RUNNABLE
        for k in self.kthreads:
            w[self.task_base + k * 8 + T_KIND] = KIND_KTHREAD
            w[self.task_base + k * 8 + T_STATE] = TASK_RUNNABLE
        w[self.CURR] = idle
        w[self.ACTIVE] = INIT_MM
        w[self.LOADED] = INIT_MM
        self.tlb_done_at = lay.tlbgen(INIT_MM) + TG_DONE
        self.strategy.mmgrab_lazy_tlb(INIT_MM)  # the idle task starts lazy on init_mm
        w[lay.cpu(self.cpu) + C_PID] = os.getpid()
        w[self.HP_WANT] = 1
        self.set_cpu_online(True)
        self.atomics.atomic_inc(H_READY)

    def run(self) -> None:
        w = self.w
        while w[H_PHASE] < PHASE_RUN:
            self.idle_wait(0.005)
        while True:
            phase = w[H_PHASE]
            if phase == PHASE_EXIT:
                return
            if self.perturbed:
                if (self.online != bool(w[self.HP_WANT]) or self.going_down) and self.hotplug_step():
                    self.idle_wait(0.002)  # offline: parked, reachable by nobody, walking nothing
                    continue
                if w[H_STUTTER] and phase == PHASE_RUN:
                    self.idle_wait(0.001)  # stutter: every CPU pauses together
                    continue
            self.page_walk()
            curr = w[self.CURR]
            kind = w[self.task_base + curr * 8 + T_KIND]
            if kind == KIND_USER:  # run_user, inline: the commonest quantum
                if curr == self.drain_task:
                    self.run_drain_task(curr)
                    continue
                # Oracle.check_tlb_gen, its test inline, every user quantum: false on an arch that keeps no TLB
                # generations (tlb_done_at stays at init_mm's TG_DONE, never flushed: 0, as its TLB_GEN)
                if w[self.TLB_GEN] < w[self.tlb_done_at]:
                    self.oracle.check_tlb_gen(w[self.LOADED], self.TLB_GEN)
                self.user_quantum(self, curr, phase)
            else:
                # a kernel thread or the idle task: the loaded mm (lazy) may still be walked (walk_freed_tables, inline)
                if w[self.TLB_GEN] < w[self.tlb_done_at + FREED_AFTER_DONE]:
                    self.walk_freed_tables()
                if kind == KIND_KTHREAD:
                    self.run_kthread(curr, phase)
                elif kind == KIND_IDLE:
                    self.run_idle(phase)
                else:
                    self.run_resuming(curr, kind & ~KIND_RESUMING, phase)

    def walk_freed_tables(self) -> None:
        """A kernel thread or the idle task has the quantum, the loaded mm (lazy, on x86) still in the MMU,
        whose page walks may use its paging-structure cache: no flush that freed the mm's page tables
        and is newer than this CPU's TLB may have completed (``Oracle.check_freed_tables``; a user
        quantum's check, against every completed flush, covers these)."""
        w = self.w
        if w[self.LOADED] != INIT_MM:
            self.oracle.check_freed_tables(w[self.LOADED], self.TLB_GEN)

    def page_walk(self) -> None:
        """The MMU may walk the loaded page tables at any time, and an active_mm is dereferenced:
        both must be live (``Oracle.touch``), and where the arch's flushes rely on ``mm_cpumask``
        the loaded mm's mask must hold this CPU. One walk sees one state: an IPI landing mid-check would make
        the oracle read a stale mm. This runs every quantum, so the common checks are inline."""
        w, irq = self.w, self.irq
        flags = irq.disabled  # local_irq_save
        irq.disabled = True
        w[self.c_walks] += 1
        active, loaded = w[self.ACTIVE], w[self.LOADED]
        if active != INIT_MM:
            m = self.mm_base + (active & MM_SLOT_MASK) * MM_WORDS  # layout.mm(active)
            if w[m + M_GEN] != active >> MM_SLOT_BITS or w[m + M_STATE] == MM_FREED:
                self.oracle.report(USE_AFTER_FREE, active, PAGE_WALK)
        if loaded != INIT_MM:
            if loaded != active:
                self.oracle.touch(loaded)
            if self.flush_relies_on_mask:
                word = self.my_cpumask_word + (loaded & MM_SLOT_MASK) * self.cpumask_stride  # in layout.cpumask(loaded)
                if not (w[word] >> self.mask_bit) & 1:
                    self.oracle.report(CPUMASK_MISSING, loaded, PAGE_WALK)
        irq.disabled = flags
        if not flags and irq.pending:
            irq.replay()

    def route_mmu_walks(self) -> None:
        """Up to the CR3 write (``Arch.load_mm``) the MMU may walk the outgoing tables: that walk is a
        load of the old mm through the memory model (``Atomics.mmu_walk``), which a weak model may
        perform late, at the latest at the next barrier that orders it: the model's own, csd_unlock's
        RELEASE before an IPI's acknowledgement, and ``__schedule``'s ``smp_mb__after_spinlock``. The
        loaded mm itself stays the machine's truth, written at once (the oracle reads it). Installed
        only under such a model: under ``sc`` and ``tso`` the walk is performed at once, while the mm
        is loaded, where the oracle has nothing to find that ``check_free`` did not (an mm freed while
        loaded), so those models pay nothing for it."""
        atomics, arch = self.atomics, self.arch
        atomics.walk_check = self.walk_outgoing
        atomics.walk_late = self.lazy_outgoing
        self.irq.csd_unlock = atomics.perform_walks
        if self.det is not None and isinstance(atomics, WeakAtomics):  # the turn may be lost where the late walk is visible
            atomics.window_stall = self.det.preempt
        load_mm, walk, loaded = arch.load_mm, atomics.mmu_walk, self.LOADED
        w = self.w

        def load_mm_walked(mm: int) -> None:
            walk(w[loaded])
            load_mm(mm)

        arch.load_mm = load_mm_walked  # type: ignore[method-assign]
        schedule, perform = self.schedule, atomics.perform_walks

        def schedule_ordered() -> None:
            perform()  # __schedule's smp_mb__after_spinlock
            schedule()

        self.schedule = schedule_ordered  # type: ignore[method-assign]

    def walk_outgoing(self, mm: int) -> None:
        """The MMU's walk of an mm this CPU switched away from, performed (``Atomics.mmu_walk``): it must be live."""
        self.oracle.touch(mm, SWITCH_WALK)

    def lazy_outgoing(self, mm: int) -> bool:
        """At the CR3 write: the outgoing ``mm`` is not the current task's own (``current->mm``), so
        this CPU was lazy on it (or a kernel thread's ``kthread_use_mm`` / ``exec_mmap`` leaves it), and
        only the scheme orders the walk before the mm's free; a task's own mm is kept by the task, whose
        next CPU the scheduler orders after this one (``prev->on_cpu``)."""
        return mm != INIT_MM and mm != self.arch.current_mm()

    # -- what a task does with its quantum ------------------------------------------------------
    def run_resuming(self, task: int, kind: int, phase: int) -> None:
        """The task is in the middle of a kernel path (preempted in it, or a new thread starting
        in ``kernel_execve``): finish that first, here, then its quantum."""
        self.w[self.task_base + task * 8 + T_KIND] = kind
        if self.resume_kernel_path(task):
            self.preempt(task)  # preempted again on the way
        elif kind == KIND_USER:
            self.run_user(task, phase)
        else:
            self.run_kthread(task, phase)

    def run_user(self, task: int, phase: int) -> None:
        if self.tracks_tlb_gen:  # user code runs on the loaded mm: with every completed flush applied
            self.oracle.check_tlb_gen(self.w[self.LOADED], self.TLB_GEN)
        self.user_quantum(self, task, phase)  # the driver's: what the task does with it

    def run_kthread(self, k: int, phase: int) -> None:
        use = self.kthread_mm.get(k)
        if use is not None:
            use[1] -= 1
            if use[1] <= 0 or phase != PHASE_RUN:
                del self.kthread_mm[k]
                self.kthread_unuse_mm(k, use[0])
                self.mm.mmput(use[0])
                self.atomics.atomic_dec(H_KTHREAD_MMS)
        elif phase == PHASE_RUN and not self.going_down and self.driver.kthread_adopts_mm(self.w[H_USE_MM_BURST]):
            mm = self.pick_live_mm()
            if mm and self.mm.mmget_not_zero(mm):
                self.atomics.atomic_inc(H_KTHREAD_MMS)
                self.kthread_mm[k] = [mm, self.driver.adopt_quanta()]
                self.count("kthread_use_mm")
                self.kthread_use_mm(k, mm)  # preempted or not, it schedules below
        if k in self.kthread_mm:
            self.runqueue.append(k)
        else:
            self.kthread_queued.discard(k)
        self.schedule()

    def run_idle(self, phase: int) -> None:
        self.wake_sleepers(phase)
        if self.driver.forks(self, phase):
            self.do_fork(from_kernel=True)  # kernel_clone from a kernel context (init, kthreadd) keeps the load up
        if self.has_work(phase):
            self.w[self.STATE] = CPU_RUNNING
            self.schedule()
            return
        if phase == PHASE_DRAIN:
            if not self.drain_forked:
                if self.load_ended():  # every CPU switches into one user mm of its own and out (emu.kernel.drain)
                    self.fork_drain_task()
                    if self.runqueue:
                        self.w[self.STATE] = CPU_RUNNING
                        self.schedule()
                        return
                else:
                    self.idle_wait(0.002)
                    return
            self.w[self.DRAIN_PASS] += 1  # only this CPU writes it
            self.w[self.STATE] = CPU_QUIESCED
            if self.det is not None and drain_settled(self.w, self.layout, self.det.drain_seen):
                self.w[H_PHASE] = PHASE_EXIT  # in a deterministic mode the CPUs tell when the machine has drained
            self.idle_wait(0.005)
            return
        timeout = 0.002
        if self.sleepers:
            timeout = max(0.0, min(timeout, self.sleepers[0][0] - self.clock()))
        self.w[self.STATE] = CPU_IDLE
        if not self.inbox_pending():  # re-check after publishing IDLE: a waker reads it after queueing
            self.count("idle_waits")
            if self.idle_leave_mm:
                self.arch.leave_mm()  # cpuidle_enter_state: an idle state with CPUIDLE_FLAG_TLB_FLUSHED
            self.idle_wait(timeout)
        self.w[self.STATE] = CPU_RUNNING

    def has_work(self, phase: int) -> bool:
        if self.runqueue or self.inbox_pending():
            return True
        return phase == PHASE_RUN and self.kthreads != [] and self.driver.kthread_wakes()

    def idle_wait(self, timeout: float) -> None:
        """Block until a wake-up or the timeout; IPIs are handled meanwhile."""
        self.atomics.store_buffer_drain()  # no store lingers in the buffer of a sleeping CPU
        self.irq.idle_poll(timeout)
        # the wake-up (a timer's or an IPI's interrupt entry) serializes too: no later load is
        # answered from a view filled before the sleep (a reference parked in drop_mm meanwhile)
        self.atomics.store_buffer_drain()
