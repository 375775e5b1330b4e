"""A scripted load: each CPU does what its script says, in order, and nothing is drawn at random.

The script is text, one part a CPU, ``CPU:ACTION,ACTION,...`` parts joined by ``;``
(``0:fork,clone=1,exit;1:run,exit``). The explorer's scenarios are written in it
(``emu.harness.explore``). The actions, each taken by the CPU's next context that can take it:

- ``fork``: the idle CPU's kernel context forks a process of one thread, which runs here;
- ``fork-exec``: the same, the thread starting in ``kernel_execve`` (a kernel thread that execs into
  the new mm: ``exec_mmap`` ends its lazy use of the mm the CPU was lazy on, preemptibly);
- ``clone=N``: the running user task starts a thread of its mm on CPU N (``kernel_clone``), and runs on;
- ``run``: the user task's quantum ends with a preemption: it stays on this CPU;
- ``sleep=US``: the user task sleeps ``US`` microseconds (its CPU goes lazy on its mm meanwhile);
- ``exit``: the user task exits (the last user of its mm frees it);
- ``exec``: the user task execs a new program (``exec_mmap`` onto a new mm), and runs on;
- ``munmap``, ``munmap-tables``: the user task unmaps (a flush of its mm; the second frees page tables), and runs on;
- ``use-mm=N``: a kernel thread of this CPU wakes and adopts, for a quantum (``kthread_use_mm``), the
  mm of CPU N's first fork (the first mm slot of CPU N), if it is live;
- ``preempt-migrate``: the CPU's next preemptible kernel path (the lazy drop at the end of
  ``kthread_use_mm`` or ``exec_mmap``) is preempted there, and the task moves to another online CPU,
  where it finishes the path (H1's situation);
- ``offline=N``, ``online=N``: the CPU's next context (a user task, which runs on, or the idle
  kernel context) asks CPU N (not cpu0, the boot CPU) to go down or come back, as a write to
  ``/sys/devices/system/cpu/cpuN/online`` does; CPU N carries it out itself (``emu.kernel.hotplug``).
  A CPU the script took down is brought back once the load ends;
- ``idle``: an idle CPU waits once (its idle wait, up to 2 ms or a wake-up) before its next action;
  a user task's quantum with it is a ``run``.

A user task at a ``fork``, ``fork-exec`` or ``use-mm`` exits (the CPU's idle or kernel-thread
context takes it); at ``preempt-migrate`` it runs on. A user task whose CPU's script is done
exits; an idle CPU whose script is done stays idle. Once the
load ends every task exits, as in the synthetic load.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Protocol

from emu.machine.layout import PHASE_RUN, Layout

if TYPE_CHECKING:
    from emu.kernel.driver import TaskKernel


class Sizes(Protocol):
    """What the driver reads of the run's workload settings: the machine's sizes (for the mm slots)."""

    threads: int
    kthreads: int

    def live_procs(self, cpus: int) -> int: ...


ACTIONS = (
    "fork", "fork-exec", "clone", "run", "sleep", "exit", "exec", "munmap", "munmap-tables", "use-mm", "preempt-migrate",
    "offline", "online", "idle",
)  # fmt: skip
NUMBERED = ("clone", "sleep", "use-mm", "offline", "online")
HOTPLUG = ("offline", "online")


def uses_hotplug(text: str) -> bool:
    """The script takes a CPU down: the CPUs poll for the request, as under ``--hotplug``."""
    return any(a.strip().startswith(HOTPLUG) for part in text.split(";") for a in part.partition(":")[2].split(","))


def parse_script(text: str, ncpus: int) -> dict[int, list[tuple[str, int]]]:
    """The script's actions by CPU, each with its argument (0 where it takes none); ValueError, one line, if it is not one."""
    script: dict[int, list[tuple[str, int]]] = {c: [] for c in range(ncpus)}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        cpu_s, sep, actions = part.partition(":")
        if not sep or not cpu_s.strip().isdigit() or not 0 <= int(cpu_s) < ncpus:
            raise ValueError(f"script part '{part}': expected CPU:ACTION,... with a CPU below {ncpus}")
        for item in filter(None, (a.strip() for a in actions.split(","))):
            name, _, arg = item.partition("=")
            if name not in ACTIONS:
                raise ValueError(f"script action '{item}': expected one of {', '.join(ACTIONS)}")
            if name in NUMBERED and not arg.isdigit():
                raise ValueError(f"script action '{item}': {name} takes a number ({name}=N)")
            if name not in NUMBERED and arg:
                raise ValueError(f"script action '{item}': {name} takes no argument")
            if name in ("clone", "use-mm") and not 0 <= int(arg) < ncpus:
                raise ValueError(f"script action '{item}': no CPU {arg}")
            if name in HOTPLUG and not 1 <= int(arg) < ncpus:
                raise ValueError(f"script action '{item}': CPU {arg} cannot go down or up (cpu0, the boot CPU, stays; CPUs below {ncpus})")
            script[int(cpu_s)].append((name, int(arg or 0)))
    return script


class Scripted:
    """``emu.kernel.driver.TaskDriver`` for a script: the CPU is known from the first question that names it."""

    threads = 1

    def __init__(self, wl: Sizes, ncpus: int, rng: random.Random, script: str = "") -> None:
        self.script = parse_script(script, ncpus)
        self.cpu = -1
        self.pos = 0
        # the first mm slot of each CPU (mm_alloc takes a CPU's own slots in order), for use-mm
        lay = Layout.for_run(ncpus, wl.live_procs(ncpus), wl.threads, wl.kthreads, ())
        self.first_slot = [lay.mm_slots_of(c)[0] for c in range(ncpus)]
        self.adopt = 0
        self.execve = False  # the fork just taken starts in kernel_execve
        self.migrate = False  # the task preempted in its kernel path moves
        self.downed: set[int] = set()  # CPUs this CPU's script took down, brought back at the load's end

    def _head(self, kernel: TaskKernel | None = None) -> str:
        if kernel is not None:
            self.cpu = kernel.cpu
        if self.cpu < 0 or self.pos >= len(self.script[self.cpu]):
            return ""
        return self.script[self.cpu][self.pos][0]

    def _take(self) -> int:
        arg = self.script[self.cpu][self.pos][1]
        self.pos += 1
        return arg

    def forks(self, kernel: TaskKernel, phase: int) -> bool:
        head = self._head(kernel)
        if phase != PHASE_RUN:
            self._lift(kernel)
            return False
        if head in HOTPLUG:
            self._hotplug(kernel, head)
        elif head == "idle":
            self._take()  # the idle CPU waits once (until its idle timeout or a wake-up), then goes on
        elif head in ("fork", "fork-exec"):
            self._take()
            self.execve = head == "fork-exec"
            return True
        return False

    def _hotplug(self, kernel: TaskKernel, head: str) -> None:
        cpu = self._take()
        kernel.cpu_hotplug_request(cpu, head == "online")
        if head == "offline":
            self.downed.add(cpu)
        else:
            self.downed.discard(cpu)

    def _lift(self, kernel: TaskKernel) -> None:
        """The load ended: every CPU this script took down comes back, for the drain."""
        for cpu in sorted(self.downed):
            kernel.cpu_hotplug_request(cpu, True)
        self.downed.clear()

    def fork_execs(self) -> bool:
        execve, self.execve = self.execve, False
        return execve

    def user_quantum(self, kernel: TaskKernel, task: int, phase: int) -> None:
        head = self._head(kernel)
        if phase == PHASE_RUN and head == "preempt-migrate":
            kernel.preempt(task)  # a kernel path's: the task runs on until one comes
            return
        if phase != PHASE_RUN or head in ("", "exit", "fork", "fork-exec", "use-mm"):
            if head == "exit" and phase == PHASE_RUN:
                self._take()
            if phase != PHASE_RUN:
                self._lift(kernel)
            kernel.do_exit(task)
            return
        if head in HOTPLUG:
            self._hotplug(kernel, head)
            kernel.preempt(task)
            return
        arg = self._take()
        if head == "clone":
            kernel.kernel_clone(task, arg, True)
        elif head == "sleep":
            kernel.schedule_timeout(task, arg / 1e6)
            return
        elif head == "exec":
            kernel.do_exec(task)
        elif head in ("munmap", "munmap-tables"):
            kernel.munmap(task, head == "munmap-tables")
        kernel.preempt(task)

    def kthread_adopts_mm(self, burst: int) -> bool:
        if self._head() == "use-mm":
            self.adopt = self.first_slot[self._take()]
            return True
        return False

    def mm_slot_to_adopt(self, nmm: int) -> int:
        return self.adopt

    def adopt_quanta(self) -> int:
        return 1

    def kthread_wakes(self, burst: int = 0) -> bool:
        return self._head() == "use-mm"

    def kthread_to_wake(self, kthreads: list[int]) -> int:
        return kthreads[0]

    def migrates(self) -> bool:
        migrate, self.migrate = self.migrate, False
        return migrate

    def preempted_in_kernel_path(self) -> bool:
        if self._head() == "preempt-migrate":
            self._take()
            self.migrate = True  # asked next, where the preempted task goes
            return True
        return False
