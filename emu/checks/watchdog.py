"""The runner's stall detector, after the kernel's soft-lockup detector and RCU stall warnings.

A CPU's heartbeat is its ``page_walks`` counter: the main loop bumps it every iteration, busy or
idle, so a CPU whose count stands still for ``threshold`` seconds is not running its loop. It is
stopped (SIGSTOP), spinning somewhere with interrupts off, or blocked on a lock that a stopped CPU
holds. Several CPUs stall together when one does (its IPI senders spin in ``csd_lock_wait``), so
the report follows the wait chain to the CPU at its end and, like an RCU stall warning, says what
that CPU was doing and who was waiting on it.
"""

from __future__ import annotations

import psutil

from emu.machine.irq import ipi_name
from emu.machine.layout import (
    C_ACTIVE_MM,
    C_CSD_WAIT,
    C_CURR,
    C_LOADED_MM,
    C_LOST_IPI_FN,
    C_LOST_IPI_MS,
    C_LOST_IPI_TO,
    C_PID,
    C_STATE,
    KIND_RESUMING,
    KIND_USER,
    T_KIND,
    T_MM,
    Layout,
    mm_name,
)

CPU_STATES = ("booting", "running", "idle", "quiesced", "exited")
TASK_KINDS = ("idle", "kthread", "user")


def process_state(pid: int) -> str:
    """The OS's word for the CPU process: ``stopped`` (SIGSTOP), ``running``, ``sleeping``..."""
    try:
        return str(psutil.Process(pid).status()) if pid > 0 else "not started"
    except psutil.Error:
        return "gone"


def describe_cpu(layout: Layout, w: memoryview, c: int) -> str:
    """What cpu ``c`` was doing, from its record in the segment: for stall and lost-IPI reports."""
    base = layout.cpu(c)
    curr = w[base + C_CURR]
    tb = layout.task(curr)
    kind = w[tb + T_KIND] & ~KIND_RESUMING
    task = f"task {curr} ({TASK_KINDS[kind] if 0 <= kind < len(TASK_KINDS) else kind}"
    task += f", mm {mm_name(w[tb + T_MM])})" if kind == KIND_USER else ")"
    state = w[base + C_STATE]
    return (
        f"process {process_state(w[base + C_PID])}, running {task}, active_mm {mm_name(w[base + C_ACTIVE_MM])}, "
        f"loaded mm {mm_name(w[base + C_LOADED_MM])}, cpu state {CPU_STATES[state] if 0 <= state < len(CPU_STATES) else state}"
    )


def lost_ipi(layout: Layout, w: memoryview, c: int) -> str | None:
    """The IPI cpu ``c`` gave up waiting for (it exits with status 3 after the timeout), if any."""
    base = layout.cpu(c)
    if not w[base + C_LOST_IPI_TO]:
        return None
    target = w[base + C_LOST_IPI_TO] - 1
    return (
        f"cpu {c} lost an IPI: {ipi_name(w[base + C_LOST_IPI_FN])} to cpu {target} not acknowledged after "
        f"{w[base + C_LOST_IPI_MS] / 1000:.1f}s; cpu {target} stalled: {describe_cpu(layout, w, target)}"
    )


class Watchdog:
    """Call ``check(now)`` from the runner's supervision loop; it returns a report line per stall."""

    def __init__(self, layout: Layout, words: memoryview, threshold: float, now: float) -> None:
        self.layout = layout
        self.w = words
        self.threshold = threshold
        self._beat = [layout.counter(c, "page_walks") for c in range(layout.ncpus)]
        self._last = [words[b] for b in self._beat]
        self._since = [now] * layout.ncpus

    def touch(self, now: float) -> None:
        """Forget old silences (``touch_softlockup_watchdog``): after a phase change, say."""
        self._last = [self.w[b] for b in self._beat]
        self._since = [now] * self.layout.ncpus

    def stalled(self, now: float) -> list[int]:
        w = self.w
        out = []
        for c, b in enumerate(self._beat):
            beat = w[b]
            if beat != self._last[c]:
                self._last[c], self._since[c] = beat, now
            elif now - self._since[c] >= self.threshold:
                out.append(c)
        return out

    def _chain_end(self, c: int) -> int:
        """Follow 'waits for the IPI acknowledgement of' from ``c`` to the CPU at the end."""
        seen = set()
        while c not in seen:
            seen.add(c)
            target = self.w[self.layout.cpu(c) + C_CSD_WAIT] - 1
            if target < 0:
                return c
            c = target
        return c  # a cycle of CPUs waiting on each other: any of them

    def culprit(self, stalled: list[int]) -> int:
        """The CPU the others stall behind. A CPU blocked on a lock that a stopped CPU holds looks
        stalled too, so among the chain ends a stopped process comes first, then one spinning."""
        ends = list(dict.fromkeys(self._chain_end(c) for c in stalled))
        rank = {"stopped": 0, "tracing-stop": 0, "running": 1}
        return min(ends, key=lambda c: rank.get(process_state(self.w[self.layout.cpu(c) + C_PID]), 2))

    def check(self, now: float) -> str | None:
        stalled = self.stalled(now)
        if not stalled:
            return None
        c = self.culprit(stalled)
        waiters = [d for d in range(self.layout.ncpus) if self.w[self.layout.cpu(d) + C_CSD_WAIT] - 1 == c]
        line = f"watchdog: cpu {c} stalled for {now - self._since[c]:.1f}s (soft lockup): {describe_cpu(self.layout, self.w, c)}"
        if waiters:
            line += f"; cpus {', '.join(map(str, waiters))} waiting for its IPI acknowledgement"
        behind = [d for d in stalled if d != c and d not in waiters]
        if behind:
            line += f"; cpus {', '.join(map(str, behind))} stalled too"
        return line
