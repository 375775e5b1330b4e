"""CPU hotplug, as kernel/cpu.c takes a CPU down and brings it back.

The runner asks (``C_HP_WANT``); the CPU itself carries it out, as the dying CPU runs
``take_cpu_down`` in the kernel:

- going down: the CPU stops taking work; its tasks migrate to online CPUs as they are
  preempted or woken, per-CPU kernel threads let go of adopted mms (``kthread_park``); once
  it idles with nothing queued, the scheme's ``takedown_cpu`` runs the lazy-mm steps (leave the
  lazy mm for init_mm, ``set_cpu_online(false)``, the arch offline hook: powerpc clears the CPU
  from every ``mm_cpumask``) and the rest of the hotplug state machine, during which the CPU is
  unreachable. Offline, it receives no IPIs and its MMU walks nothing.
- coming up: the CPU is online again, idle and lazy on init_mm, and takes work.

Two eras of the lazy-mm steps (``Strategy.takedown_cpu``). From Nov 2024 on ("lazy tlb: fix
hotplug exit race with MMU_LAZY_TLB_SHOOTDOWN", Piggin and Krzesinski,
lkml 20241104142318.3295663-1-herton@redhat.com) the dying CPU leaves its lazy mm itself in
``sched_cpu_wait_empty`` through ``sched_force_init_mm``. Before it (the 6.12-rc1 base of the
hazptr RFC) the dying CPU ran ``idle_task_exit()``, which only switches the MMU to init_mm and
leaves ``active_mm`` set, and ``finish_cpu()`` on the control CPU (kernel/cpu.c) then set the idle
task's ``active_mm`` to init_mm and called ``mmdrop_lazy_tlb(mm)`` there: on the control CPU.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from emu.machine.irq import ipi_function
from emu.machine.layout import C_HP_WANT, C_ONLINE, C_STATE, CPU_OFFLINE, CPU_RUNNING, INIT_MM
from emu.machine.trace import event

if TYPE_CHECKING:
    from emu.kernel.core import CpuCore

EV_CPU_DOWN = event("cpu_down", "cpu going down (takedown_cpu)")
EV_CPU_DEAD = event("cpu_dead", "cpu offline")
EV_CPU_UP = event("cpu_up", "cpu online again, lazy on init_mm")

FINISH_CPU = ipi_function("finish_cpu")  # the control CPU's step of the teardown, before the Nov 2024 fix
CONTROL_CPU = 0  # the CPU that runs the hotplug state machine's control side: the boot CPU, which never goes down here
TEARDOWN_US = (1000, 5000)  # the teardown state machine: milliseconds on real machines, CPU unreachable


class Hotplug:
    """Mixed into ``Cpu``."""

    def hotplug_step(self: CpuCore) -> bool:
        """Make progress on a requested transition; True while this CPU is offline."""
        want_online = bool(self.w[self.HP_WANT])
        if want_online:
            if not self.online:
                self.bringup_cpu()
            self.going_down = False
            return False
        if not self.online:
            return True
        self.going_down = True
        if self.ready_to_die():
            self.trace(EV_CPU_DOWN)
            self.strategy.takedown_cpu()
            self.trace(EV_CPU_DEAD)
            self.count("hotplug_offline")
            return True
        return False

    def cpu_hotplug_request(self: CpuCore, cpu: int, online: bool) -> None:
        """``cpu_device_down``/``cpu_device_up`` from this CPU (a write to ``cpuN/online``: a scripted
        load's): the request the runner's hotplug perturbation makes; CPU ``cpu`` carries it out."""
        self.w[self.layout.cpu(cpu) + C_HP_WANT] = int(online)

    def ready_to_die(self: CpuCore) -> bool:
        """Idle, nothing queued here, no kernel thread holding an mm: push what is left away."""
        if self.w[self.CURR] != self.cpu or self.kthread_mm:
            return False
        self.drain_inbox()
        tasks = list(self.runqueue) + [t for _, t in self.sleepers]
        targets = [self.other_online_cpu() for _ in tasks]
        if -1 in targets:
            return False  # nowhere to go: stay up
        self.runqueue.clear()
        self.sleepers.clear()
        self.kthread_queued.clear()
        for task, target in zip(tasks, targets, strict=True):
            self.ttwu_queue(target, task)
        return True

    def set_cpu_online(self: CpuCore, online: bool) -> None:
        self.online = online
        self.w[self.layout.cpu(self.cpu) + C_ONLINE] = int(online)
        self.w[self.layout.cpu(self.cpu) + C_STATE] = CPU_RUNNING if online else CPU_OFFLINE

    def cpuhp_teardown(self: CpuCore) -> None:
        """The remaining teardown states: interrupts off, the CPU busy and unreachable."""
        flags = self.irq.local_irq_save()
        end = self.clock() + self.rng.uniform(*TEARDOWN_US) / 1e6
        if self.det is not None:
            self.det.sleep(math.ceil(end * 1e6), wakeable=False)  # busy, unreachable: only the clock ends it
        else:
            while self.clock() < end:
                pass
        self.irq.local_irq_restore(flags)

    def bringup_cpu(self: CpuCore) -> None:
        self.set_cpu_online(True)
        self.trace(EV_CPU_UP)
        self.count("hotplug_online")

    def idle_task_exit(self: CpuCore) -> int:
        """kernel/sched/core.c ``idle_task_exit()`` before the Nov 2024 fix (6.12-rc1): the dead
        CPU's idle task switches the MMU to init_mm and leaves ``active_mm`` for ``finish_cpu``; no
        scheme hook runs. Returns the mm it was lazy on."""
        mm = self.w[self.ACTIVE]
        if mm != INIT_MM:
            flags = self.irq.local_irq_save()
            self.arch.switch_mm_irqs_off(mm, INIT_MM)
            self.irq.local_irq_restore(flags)
        return mm

    def finish_cpu(self: CpuCore, mm: int) -> None:
        """kernel/cpu.c ``finish_cpu()`` before the Nov 2024 fix, run by the control CPU once this
        one is dead: ``idle->active_mm = &init_mm`` (written here: nothing runs on a dead CPU in
        between), then ``mmdrop_lazy_tlb(mm)`` on the control CPU, unconditionally (init_mm too)."""
        self.w[self.ACTIVE] = INIT_MM
        self.irq.smp_call_function_single(CONTROL_CPU, FINISH_CPU, mm, wait=True)

    def do_finish_cpu(self: CpuCore, mm: int) -> None:
        """``finish_cpu``'s drop, on the control CPU (an IPI here; a cpuhp thread in the kernel)."""
        self.strategy.mmdrop_lazy_tlb(mm)
