"""Where every field of the emulated machine lives in the shared int64 segment.

The segment is one flat array of int64 words. Regions are laid out from the run's
configuration and aligned to 8 words (one 64-byte cache line), because the atomics hash
their locks on the cache line: two fields on one line share a lock, as they would share a
line in a real machine. An mm's counters and its generation live on one line, so a checked
read-modify-write on ``mm_count`` is atomic with ``__mmdrop`` poisoning the record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

LINE = 8  # int64 words per cache line

MAGIC = 0x4C415A59544C4231  # "LAZYTLB1"

# mm handles: generation in the high bits, slot in the low bits; 0 is NULL.
MM_SLOT_BITS = 20
MM_SLOT_MASK = (1 << MM_SLOT_BITS) - 1
INIT_MM = 1 << MM_SLOT_BITS  # slot 0, generation 1: never freed

# -- header ------------------------------------------------------------------------------
# line 0 is read-mostly (every CPU reads the phase each quantum); the counts the CPUs update live on
# line 1, so that a fork or an exit does not take line 0 from every other CPU's cache
H_MAGIC, H_RUN_ID, H_NCPUS, H_NMM, H_NTASK, H_PHASE = range(6)
H_STUTTER, H_USE_MM_BURST = 6, 7  # set by the runner's perturbation
H_LIVE_USERS, H_KTHREAD_MMS, H_NVIOL, H_READY = range(8, 12)
H_DRAIN_TASKS = 12  # drain: the drain tasks alive (emu.kernel.drain), counted in H_LIVE_USERS too
H_VIOL_KINDS = 16  # 16 words: a histogram of violation kinds
HEADER_WORDS = 32

# run phases, written by the runner only
PHASE_BOOT, PHASE_RUN, PHASE_DRAIN, PHASE_EXIT = range(4)

# -- per-CPU record ------------------------------------------------------------------------
(C_CURR, C_ACTIVE_MM, C_LOADED_MM, C_PREV_MM, C_ONLINE, C_STATE, C_PID) = range(7)
C_DRAIN_MM = 7  # drain: the mm of this CPU's drain task (emu.kernel.drain), 0 before it forks
C_SCHEME = 8  # words 8-15: the scheme's per-CPU fields (rq.lazy_mm, rq.drop_mm, hazard slot...)
C_INBOX_HEAD, C_INBOX_TAIL = 16, 17  # on their own line: senders lock it
# For the runner's watchdog, written off the hot path only: the CPU an IPI sender is spinning on in
# csd_lock_wait (target + 1, 0 when not waiting), and the IPI it gave up on (target + 1, function, ms).
C_CSD_WAIT, C_LOST_IPI_TO, C_LOST_IPI_FN, C_LOST_IPI_MS = 18, 19, 20, 21
C_HP_WANT = 22  # hotplug: the runner asks for online (1) or offline (0)
C_DRAIN_PASS = 23  # drain: passes of the idle task through its settling step (the runner waits for one more)
# words 24-31: the arch model's per-CPU fields (Arch.percpu: name and size in words), placed in the order
# declared by Layout.arch_offsets (x86's cpu_tlbstate_shared.is_lazy, cpu_tlbstate.loaded_mm, its tlb_gen...)
C_ARCH = 24
CPU_WORDS = 32
SCHEME_PERCPU_WORDS = C_INBOX_HEAD - C_SCHEME  # what a scheme may declare (Strategy.percpu): one word each
ARCH_PERCPU_WORDS = CPU_WORDS - C_ARCH  # what an arch model may declare (Arch.percpu), all sizes together
# the per-CPU field in which an arch that tracks TLB generations (Arch.tracks_tlb_gen) keeps the generation this
# CPU's TLB holds for its loaded mm (x86's cpu_tlbstate.ctxs[asid].tlb_gen): the oracle reads it
TLB_GEN_FIELD = "tlb_gen"


class LayoutError(ValueError):
    """A part declares more of the segment than its region holds: refused when the machine is built."""


def check_fits(what: str, used: int, room: int) -> None:
    """Refuse, with one line, a region asked to hold more than it has: never a silent overwrite."""
    if used > room:
        raise LayoutError(f"{what}: {used} words declared, the region holds {room}")


LOADED_MM_SWITCHING = -1  # x86's LOADED_MM_SWITCHING: no mm handle has this value

# CPU states (C_STATE), for the runner's progress and the reschedule doorbell
CPU_BOOT, CPU_RUNNING, CPU_IDLE, CPU_QUIESCED, CPU_EXITED, CPU_OFFLINE = range(6)

# -- IPI mailbox: one slot per (target, sender), like the kernel's per-CPU csd ------------------
X_FUNC, X_ARG, X_REQ, X_ACK = range(4)
XSLOT_WORDS = 4

# -- mm record: one cache line ------------------------------------------------------------------
M_GEN, M_STATE, M_USERS, M_COUNT, M_FREED_BY, M_T_MMPUT, M_SERIAL, M_ARCH = range(8)  # M_ARCH: one word the arch model may use
MM_WORDS = LINE
ARCH_MM_WORDS = MM_WORDS - M_ARCH  # what an arch model may declare (Arch.mm_words)
MM_UNUSED, MM_LIVE, MM_EXITED, MM_FREED = range(4)  # EXITED: mm_users hit 0, mm_count still held
# per mm slot, a line of its own: mm->context.tlb_gen (x86, an atomic64), and the newest generation whose
# flush has completed (the oracle's: no CPU may run the mm with an older TLB). Never reset: a reused slot's
# generations go on growing, so a new mm starts where the old one stopped.
# TG_FREED: the newest generation whose flush freed page tables (``freed_tables``) and has completed: no CPU
# may keep the mm in CR3 with an older TLB and paging-structure cache, lazy or not (it may walk freed tables).
# TG_ASID, TG_ASID_TRANSITION: x86-invlpgb's mm->context.global_asid (0: none) and asid_transition.
TG_GEN, TG_DONE, TG_FREED, TG_ASID, TG_ASID_TRANSITION = 0, 1, 2, 3, 4
POISON = -0x6B6B6B6B  # the slab poison pattern: a freed record's counters read as this

# -- task table -----------------------------------------------------------------------------
T_STATE, T_MM, T_KIND = range(3)
# A kernel path the task is in the middle of (``T_RESUME``, one of the RESUME_* codes) and its
# argument: the rest of a path preempted at a preemption point, or the ``kernel_execve`` a new
# thread starts with. It runs on whichever CPU the task runs on next.
T_RESUME, T_RESUME_ARG = 3, 4
RESUME_NONE, RESUME_MMDROP_LAZY_TLB, RESUME_KERNEL_EXECVE = 0, 1, 2
# A task asleep until try_to_wake_up (TASK_INTERRUPTIBLE): the CPU it sleeps on (task_cpu, where the
# wake-up queues it) and the wake-ups posted while it was not asleep (a pipe's unread bytes).
T_CPU, T_WAKEUPS = 5, 6
TASK_WORDS = 8
TASK_FREE, TASK_RUNNABLE, TASK_DEAD, TASK_INTERRUPTIBLE = range(4)
KIND_IDLE, KIND_KTHREAD, KIND_USER = range(3)
KIND_RESUMING = 8  # a flag on T_KIND while T_RESUME holds a kernel path: the run loop's dispatch sees it for free

# -- violations and event rings ---------------------------------------------------------------
V_KIND, V_CPU, V_MM, V_SITE, V_AUX, V_CLOCK, V_SNAP, V_OTHER = range(8)
VIOL_WORDS = 8
VIOL_CAP = 256
SNAP_CAP = 4
EV_WORDS = 4  # clock_ns, code, a, b
EV_CAP = 256  # events kept per CPU
SCRATCH_WORDS = 512
SCHED_HEADER_WORDS, SCHED_CPU_WORDS = 32, 16  # emu.machine.detsched names the words

# exit-to-free latency histogram: 4 buckets per octave from 1 us
E2F_BUCKETS = 96
E2F_COUNTERS = tuple(f"e2f_{i}" for i in range(E2F_BUCKETS))


def e2f_bucket(ns: int) -> int:
    return 0 if ns < 1000 else min(E2F_BUCKETS - 1, int(4 * math.log2(ns / 1000)))


def e2f_value_ns(bucket: int) -> float:
    return 1000 * 2 ** ((bucket + 0.5) / 4)


# Per-CPU counters: the base set; strategies and arches append their own names.
BASE_COUNTERS = (
    "context_switches",
    "lazy_switches",
    "ipis_sent",
    "ipis_shootdown",
    "ipis_flush",
    "ipis_check",
    "ipis_exit",
    "ipis_received",
    "ipis_useful",
    "ipis_wasted",
    "tlb_broadcasts",
    "mm_exits",
    "footprint_cpus",
    "lazy_refcount_atomics",
    "mm_created",
    "mm_freed",
    "forks",
    "forks_no_mm",
    "exits",
    "kthread_use_mm",
    "execs",
    "preemptions",
    "tlb_flushes",
    "migrations",
    "hotplug_offline",
    "hotplug_online",
    "noise_delays",
    "page_walks",
    "idle_waits",
    "race_delays",
    "exit_to_free_ns_sum",
    "mm_atomics",
    "lock_contended",
    "lock_wait_ns",
) + E2F_COUNTERS


def _align(n: int) -> int:
    return (n + LINE - 1) // LINE * LINE


@dataclass(frozen=True)
class Layout:
    """Region sizes and bases, computed once per process (they sit on every hot path)."""

    ncpus: int
    mm_per_cpu: int
    kthreads: int
    user_tasks_per_cpu: int
    counters: tuple[str, ...]
    sched_log: int = 0  # the deterministic scheduler's log of hand-overs (entries; 0: free mode, no region)
    policy_area: int = 0  # words past the log for the scheduling policy (emu.machine.policy.Policy.area_words)
    arch_percpu: tuple[tuple[str, int], ...] = ()  # the arch model's per-CPU fields (name, words), as it declares them

    def __post_init__(self) -> None:
        check_fits(f"per-CPU fields {', '.join(f'{n}[{k}]' for n, k in self.arch_percpu)}", self.arch_words, ARCH_PERCPU_WORDS)
        bad = [n for n, k in self.arch_percpu if k < 1]
        if bad or len({n for n, _ in self.arch_percpu}) != len(self.arch_percpu):
            raise LayoutError(
                f"per-CPU fields: each needs a size of at least one word and its own name ({', '.join(bad) or 'a name twice'})"
            )

    @classmethod
    def for_run(
        cls,
        ncpus: int,
        procs: int,
        threads: int,
        kthreads: int,
        counters: tuple[str, ...],
        sched_log: int = 0,
        policy_area: int = 0,
        arch_percpu: tuple[tuple[str, int], ...] = (),
    ) -> Layout:
        mm_per_cpu = max(8, math.ceil(4 * procs / ncpus) + 4)
        user_per_cpu = max(16, math.ceil(3 * procs * threads / ncpus) + 8)
        names = tuple(dict.fromkeys(BASE_COUNTERS + counters))
        return cls(ncpus, mm_per_cpu, kthreads, user_per_cpu, names, sched_log, policy_area, tuple(arch_percpu))

    # -- the arch model's per-CPU fields ---------------------------------------------------
    @cached_property
    def arch_words(self) -> int:
        return sum(k for _, k in self.arch_percpu)

    @cached_property
    def arch_offsets(self) -> dict[str, int]:
        """Each declared per-CPU field's word in a CPU record, packed from ``C_ARCH`` in declaration order."""
        offsets, at = {}, C_ARCH
        for name, size in self.arch_percpu:
            offsets[name] = at
            at += size
        return offsets

    def arch_field(self, name: str) -> int:
        """The word of the arch's per-CPU field ``name`` in a CPU record (``cpu(c) + arch_field(name)``); read at
        init and kept in an attribute, never on a hot path."""
        try:
            return self.arch_offsets[name]
        except KeyError:
            raise LayoutError(f"no per-CPU field '{name}': the arch model declares {', '.join(self.arch_offsets) or 'none'}") from None

    # -- sizes -------------------------------------------------------------------------
    @cached_property
    def nmm(self) -> int:
        return 1 + self.ncpus * self.mm_per_cpu  # slot 0 is init_mm

    @cached_property
    def ntask(self) -> int:
        return self.ncpus * (1 + self.kthreads + self.user_tasks_per_cpu)

    @cached_property
    def inbox_cap(self) -> int:
        return min(self.ntask, 1024)

    @cached_property
    def cpumask_words(self) -> int:
        return (self.ncpus + 31) // 32

    @cached_property
    def cpumask_stride(self) -> int:
        """Words from one mm's cpumask to the next: whole cache lines, since the mask lives in its own
        ``mm_struct``. Packed, eight mms' masks would share a line, and with it a lock."""
        return _align(self.cpumask_words)

    @cached_property
    def counter_words(self) -> int:
        return _align(len(self.counters))

    # -- region bases (word offsets) -----------------------------------------------------
    @cached_property
    def cpu_base(self) -> int:
        return HEADER_WORDS

    @cached_property
    def counters_base(self) -> int:
        return self.cpu_base + self.ncpus * CPU_WORDS

    @cached_property
    def mailbox_base(self) -> int:
        return self.counters_base + self.ncpus * self.counter_words

    @cached_property
    def inbox_base(self) -> int:
        return self.mailbox_base + _align(self.ncpus * self.ncpus * XSLOT_WORDS)

    @cached_property
    def mm_base(self) -> int:
        return self.inbox_base + _align(self.ncpus * self.inbox_cap)

    @cached_property
    def cpumask_base(self) -> int:
        return self.mm_base + self.nmm * MM_WORDS

    @cached_property
    def ran_base(self) -> int:
        """Per mm: every CPU that ever ran it (the mm's real footprint, whatever the arch keeps)."""
        return self.cpumask_base + self.nmm * self.cpumask_stride

    @cached_property
    def tlbgen_base(self) -> int:
        """Per mm slot, one line: ``TG_GEN``, ``TG_DONE``, ``TG_FREED``."""
        return self.ran_base + self.nmm * self.cpumask_stride

    @cached_property
    def task_base(self) -> int:
        return self.tlbgen_base + self.nmm * LINE

    @cached_property
    def viol_base(self) -> int:
        return self.task_base + self.ntask * TASK_WORDS

    @cached_property
    def events_base(self) -> int:
        return self.viol_base + VIOL_CAP * VIOL_WORDS

    @cached_property
    def events_words(self) -> int:
        return self.ncpus * EV_CAP * EV_WORDS

    @cached_property
    def snap_base(self) -> int:
        return self.events_base + self.events_words

    @cached_property
    def scratch_base(self) -> int:
        """Free words for tests and litmus patterns: named shared variables."""
        return self.snap_base + SNAP_CAP * self.events_words

    @cached_property
    def sched_base(self) -> int:
        """The deterministic scheduler's state (``emu.machine.detsched``): a header, a record per CPU, the log."""
        return self.scratch_base + SCRATCH_WORDS

    @cached_property
    def sched_words(self) -> int:
        return SCHED_HEADER_WORDS + self.ncpus * SCHED_CPU_WORDS + 2 * self.sched_log + self.policy_area if self.sched_log else 0

    @cached_property
    def policy_area_base(self) -> int:
        """The scheduling policy's own words, after the hand-over's log."""
        return self.sched_base + SCHED_HEADER_WORDS + self.ncpus * SCHED_CPU_WORDS + 2 * self.sched_log

    @cached_property
    def words(self) -> int:
        return self.sched_base + self.sched_words

    @cached_property
    def nbytes(self) -> int:
        return self.words * 8

    # -- addresses -----------------------------------------------------------------------
    def cpu(self, c: int) -> int:
        return self.cpu_base + c * CPU_WORDS

    def counter(self, c: int, name: str) -> int:
        return self.counters_base + c * self.counter_words + self.counters.index(name)

    def xslot(self, target: int, sender: int) -> int:
        return self.mailbox_base + (target * self.ncpus + sender) * XSLOT_WORDS

    def inbox(self, c: int) -> int:
        return self.inbox_base + c * self.inbox_cap

    def mm(self, handle: int) -> int:
        return self.mm_base + (handle & MM_SLOT_MASK) * MM_WORDS

    def cpumask(self, handle: int) -> int:
        return self.cpumask_base + (handle & MM_SLOT_MASK) * self.cpumask_stride

    def tlbgen(self, handle: int) -> int:
        return self.tlbgen_base + (handle & MM_SLOT_MASK) * LINE

    def ran_mask(self, handle: int) -> int:
        return self.ran_base + (handle & MM_SLOT_MASK) * self.cpumask_stride

    def task(self, t: int) -> int:
        return self.task_base + t * TASK_WORDS

    def events(self, c: int) -> int:
        return self.events_base + c * EV_CAP * EV_WORDS

    def mm_slots_of(self, c: int) -> range:
        first = 1 + c * self.mm_per_cpu
        return range(first, first + self.mm_per_cpu)

    def kthread_tasks_of(self, c: int) -> range:
        first = self.ncpus + c * self.kthreads
        return range(first, first + self.kthreads)

    def user_tasks_of(self, c: int) -> range:
        first = self.ncpus * (1 + self.kthreads) + c * self.user_tasks_per_cpu
        return range(first, first + self.user_tasks_per_cpu)


def mm_gen(handle: int) -> int:
    return handle >> MM_SLOT_BITS


def mm_slot(handle: int) -> int:
    return handle & MM_SLOT_MASK


def mm_name(handle: int) -> str:
    """How reports name an mm: slot and generation, e.g. ``mm12#4``; init_mm by name."""
    if handle == 0:
        return "NULL"
    if handle == INIT_MM:
        return "init_mm"
    return f"mm{mm_slot(handle)}#{mm_gen(handle)}"
