"""What an architecture model or a lazy-mm scheme may touch of the CPU it runs on: a narrow,
kernel-named surface of ``emu.kernel.cpu.Cpu``, not the whole CPU loop.

``emu/arch`` and ``emu/strategies`` import this type, never ``Cpu``; ``tests/kernel/test_surface.py``
checks that every attribute they use on their CPU is declared here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from emu.checks.oracle import Oracle
    from emu.kernel.mm import MmOps
    from emu.kernel.protocols import ArchHooks, PartOptions, SchemeHooks
    from emu.machine.atomics import Atomics
    from emu.machine.detsched import DetSched
    from emu.machine.irq import Irq
    from emu.machine.layout import Layout


class KernelCpu(Protocol):
    # this CPU and the machine it is part of
    cpu: int  # smp_processor_id()
    ncpus: int  # num_possible_cpus()
    layout: Layout  # where the per-CPU rq fields, the mms and their masks live
    w: memoryview  # the shared words, for the fields the scheme or arch owns
    scheme_options: PartOptions  # the scheme's own options (--fix, --race-delay, what it declares): not the run's configuration
    arch_options: PartOptions  # the arch model's own (--trim-timer, --x86-unlazy-on-flush, ...)
    CURR: int  # the word of rq->curr
    task_base: int  # the task table (task_struct's mm, kind)
    counter_words: dict[str, int]  # each counter's word in this CPU's block (``count``, inline)
    tlb_done_at: int  # an arch that tracks TLB generations: the loaded mm's TG_DONE word, for the oracle's every-quantum look
    # the primitives
    atomics: Atomics  # READ_ONCE, WRITE_ONCE, the RMWs, the barriers
    irq: Irq  # local_irq_save, smp_call_function_many, on_each_cpu_mask
    det: DetSched | None  # the deterministic scheduler, where one runs
    clock: Callable[[], float]
    clock_ns: Callable[[], int]
    trace: Callable[..., None]
    # the kernel beside the scheme: the oracle, the mm lifecycle, the arch model, the scheme
    oracle: Oracle
    mm: MmOps  # mmgrab, mmdrop, mmget, mmput
    arch: ArchHooks  # switch_mm_irqs_off, flushes, mm_cpumask
    strategy: SchemeHooks  # the scheme's hooks, for the arch code that calls them

    def active_mm(self) -> int: ...  # current->active_mm
    def set_active_mm(self, mm: int) -> None: ...
    def switch_mm(self, prev: int, next: int) -> None: ...
    def online_cpus(self) -> list[int]: ...  # for_each_online_cpu
    def set_cpu_online(self, online: bool) -> None: ...
    def cpuhp_teardown(self) -> None: ...
    def idle_task_exit(self) -> int: ...  # the hotplug path before the Nov 2024 fix: MMU to init_mm only
    def finish_cpu(self, mm: int) -> None: ...  # ... then the control CPU's mmdrop_lazy_tlb(mm)
    def sched_force_init_mm(self) -> None: ...
    def rq_field(self, cpu: int, k: int) -> int: ...  # the word of per_cpu(rq, cpu)'s scheme field k
    def count(self, name: str, n: int = 1) -> None: ...
    def count_lazy_ipi(self, mm: int) -> None: ...
    def cpu_relax(self) -> None: ...  # one iteration of a busy-wait
    def yield_point(self) -> None: ...  # a marked race window
