"""Interrupts: a soft interrupt mask per CPU, and IPIs made of a mailbox plus a doorbell signal.

The mask works like powerpc's soft-masking: ``local_irq_disable`` only sets a flag; an IPI
that arrives while the flag is set (or while the CPU is inside an emulated atomic) is recorded
as pending and replayed when the mask is lifted. It never runs inside the masked region.

An IPI is a request written into the target's per-sender mailbox slot (the kernel's per-CPU
``call_single_data``) and a SIGUSR1 to the target's process. Signals merge, so the signal says
only "look at your mailbox"; the handler drains every slot whose request count is ahead of its
acknowledgement. A sender reuses its slot only after the previous request was acknowledged
(``csd_lock_wait``), and waits for the acknowledgement itself when ``wait`` is set.

A wake-up is not an IPI. An idle CPU waits on its own doorbell semaphore, as the kernel's idle
loop polls ``need_resched`` (``TIF_POLLING_NRFLAG``): ``smp_send_reschedule`` to an idle CPU
only posts that semaphore, where a signal would cost a handler run and a mailbox scan.
A signal still interrupts the wait, so an IPI reaches an idle CPU as it does a busy one.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.synchronize import Semaphore
from typing import TYPE_CHECKING

from emu.machine.detsched import WAIT_CSD
from emu.machine.layout import C_CSD_WAIT, C_ONLINE, C_PID, X_ACK, X_ARG, X_FUNC, X_REQ, XSLOT_WORDS, Layout
from emu.machine.trace import event

if TYPE_CHECKING:
    from emu.machine.detsched import DetSched
    from emu.machine.trace import Trace

IPI_SIGNAL = signal.SIGUSR1

# IPI functions by name, registered at import time so every process agrees on the ids.
_IPI_NAMES: list[str] = []
_IPI_PURPOSE: list[str] = []


def make_doorbells(ctx, ncpus: int) -> list[Semaphore]:  # type: ignore[no-untyped-def]
    """One wake-up semaphore per CPU, created by the runner before the CPUs fork."""
    return [ctx.Semaphore(0) for _ in range(ncpus)]


def ipi_function(name: str, purpose: str = "") -> int:
    """Register an IPI function name; ``purpose`` names the per-CPU counter of sends."""
    if name not in _IPI_NAMES:
        _IPI_NAMES.append(name)
        _IPI_PURPOSE.append(purpose)
    return _IPI_NAMES.index(name)


def ipi_name(fid: int) -> str:
    return _IPI_NAMES[fid] if 0 <= fid < len(_IPI_NAMES) else f"ipi#{fid}"


def ipi_purpose(fid: int) -> str:
    return _IPI_PURPOSE[fid]


EV_IPI_SEND = event("ipi_send", "IPI {ipi:a} -> {cpu:b}")
EV_IPI_RECV = event("ipi_recv", "IPI {ipi:a} from {cpu:b}")


class IpiTimeout(RuntimeError):
    """A target never acknowledged an IPI: it is stopped, stuck, or dead."""

    def __init__(self, target: int, fid: int, waited: float) -> None:
        super().__init__(f"IPI {ipi_name(fid)} to cpu{target} not acknowledged after {waited:.1f}s")
        self.target = target
        self.fid = fid
        self.waited = waited


class Irq:
    """One CPU's interrupt state and its side of the IPI protocol."""

    def __init__(self, words: memoryview, layout: Layout, cpu: int, doorbells: Sequence[Semaphore], ack_timeout: float = 10.0) -> None:
        self.w = words
        self.layout = layout
        self.cpu = cpu
        self.disabled = False  # local_irq_disable()d
        self.in_atomic = 0  # inside an emulated atomic (holds a lock)
        self.in_irq = False  # running the handler
        self.pending = False
        self.handlers: dict[int, Callable[[int], None]] = {}
        self.ack_timeout = ack_timeout
        self.trace: Trace | None = None
        self.on_send: Callable[[int, int, int], None] | None = None  # (fid, target, arg): metrics
        self.on_receive: Callable[[int], None] | None = None
        self.on_entry: Callable[[], None] | None = None  # the oracle's look at the interrupted state
        self.fence: Callable[[], None] | None = None  # the memory model's full barrier (llist_add is a cmpxchg)
        # csd_unlock's RELEASE, where the model needs one: the handler's loads performed before its ack
        self.csd_unlock: Callable[[], None] | None = None
        self._mine = layout.xslot(cpu, 0)
        self._stride = XSLOT_WORDS
        self._ring = [d._semlock.release for d in doorbells]  # type: ignore[attr-defined]
        self._doorbell_wait = doorbells[cpu]._semlock.acquire  # type: ignore[attr-defined]
        self.det: DetSched | None = None  # a deterministic mode: no signals, the scheduler's flags

    def use_det(self, det: DetSched) -> None:
        """Deterministic mode: the doorbell is a flag the target sees at its next scheduling point,
        a wake-up ends its idle sleep, and waiting for an acknowledgement is a scheduler wait."""
        self.det = det
        self._ring = [lambda c=c: det.wake(c) for c in range(self.layout.ncpus)]

    # -- the mask ----------------------------------------------------------------------
    def local_irq_disable(self) -> None:
        self.disabled = True

    def local_irq_enable(self) -> None:
        self.disabled = False
        if self.pending:
            self.replay()

    def local_irq_save(self) -> bool:
        flags = self.disabled
        self.disabled = True
        return flags

    def local_irq_restore(self, flags: bool) -> None:
        self.disabled = flags
        if not flags and self.pending:
            self.replay()

    def irqs_disabled(self) -> bool:
        return self.disabled

    # -- the receiving side ----------------------------------------------------------------
    def doorbell(self, signum: int, frame: object) -> None:
        """The SIGUSR1 handler: mark pending, and run now unless masked."""
        self.pending = True
        self.replay()

    def replay(self) -> None:
        if self.disabled or self.in_atomic or self.in_irq:
            return
        self.in_irq = True
        try:
            if self.on_entry:
                self.on_entry()
            while self.pending:
                self.pending = False
                self.generic_smp_call_function_interrupt()
        finally:
            self.in_irq = False

    def generic_smp_call_function_interrupt(self) -> None:
        w = self.w
        base = self._mine
        for sender in range(self.layout.ncpus):
            x = base + sender * self._stride
            req = w[x + X_REQ]
            if req != w[x + X_ACK]:
                fid = w[x + X_FUNC]
                if self.trace:
                    self.trace(EV_IPI_RECV, fid, sender)
                if self.on_receive:
                    self.on_receive(fid)
                self.handlers[fid](w[x + X_ARG])
                if self.csd_unlock:
                    self.csd_unlock()
                w[x + X_ACK] = req

    # -- the sending side ------------------------------------------------------------------
    def cpu_online(self, cpu: int) -> bool:
        return bool(self.w[self.layout.cpu(cpu) + C_ONLINE])

    def csd_lock_wait(self, target: int) -> None:
        """Spin until our slot in ``target``'s mailbox is free (its last request handled)."""
        w = self.w
        x = self.layout.xslot(target, self.cpu)
        if w[x + X_REQ] == w[x + X_ACK]:
            return
        if self.det is not None:
            self._csd_lock_wait_det(target, x)
            return
        start = time.monotonic()
        spins = 0
        waiting = self.layout.cpu(self.cpu) + C_CSD_WAIT
        outer = w[waiting]  # an IPI handler may send (and wait) while we wait: restore, do not clear
        w[waiting] = target + 1  # the watchdog tells a stalled CPU from the ones stuck waiting on it
        try:
            while w[x + X_REQ] != w[x + X_ACK]:
                os.sched_yield()  # IPIs sent to us are handled here: the signal runs between bytecodes
                spins += 1
                if spins & 255 == 0:
                    if not self.cpu_online(target):
                        return  # went offline: it will not answer, and no longer needs to
                    waited = time.monotonic() - start
                    if waited > self.ack_timeout:
                        raise IpiTimeout(target, w[x + X_FUNC], waited)
        finally:
            w[waiting] = outer

    def _csd_lock_wait_det(self, target: int, x: int) -> None:
        w, det = self.w, self.det
        assert det is not None
        waiting = self.layout.cpu(self.cpu) + C_CSD_WAIT
        outer = w[waiting]
        w[waiting] = target + 1
        try:
            while w[x + X_REQ] != w[x + X_ACK] and self.cpu_online(target):
                det.wait(WAIT_CSD, target)  # IPIs sent to us are handled at the wait's scheduling point
        finally:
            w[waiting] = outer

    def _send(self, target: int, fid: int, arg: int) -> bool:
        if not self.cpu_online(target):
            return False
        self.csd_lock_wait(target)
        if self.fence:
            self.fence()
        w = self.w
        x = self.layout.xslot(target, self.cpu)
        w[x + X_FUNC] = fid
        w[x + X_ARG] = arg
        w[x + X_REQ] += 1  # only this CPU writes its request count: published after the payload
        if self.trace:
            self.trace(EV_IPI_SEND, fid, target)
        if self.on_send:
            self.on_send(fid, target, arg)
        if self.det is not None:
            self.det.raise_ipi(target)
            return True
        try:
            os.kill(w[self.layout.cpu(target) + C_PID], IPI_SIGNAL)
        except ProcessLookupError:
            pass  # the runner notices a dead CPU and stops the run
        return True

    def _run_local(self, fid: int, arg: int) -> None:
        flags = self.local_irq_save()
        self.handlers[fid](arg)
        self.local_irq_restore(flags)

    def _check_can_wait(self) -> None:
        # the kernel WARNs here: waiting with interrupts off deadlocks two CPUs calling each other
        if self.disabled or self.in_irq:
            raise RuntimeError("smp_call_function with wait while interrupts are disabled")

    def smp_call_function_single(self, cpu: int, fid: int, arg: int, wait: bool = True) -> None:
        if cpu == self.cpu:
            self._run_local(fid, arg)
            return
        if wait:
            self._check_can_wait()
        if self._send(cpu, fid, arg) and wait:
            self.csd_lock_wait(cpu)

    def smp_call_function_many(self, cpus: Iterable[int], fid: int, arg: int, wait: bool = True, run_local: bool = False) -> None:
        """IPI every CPU in ``cpus`` except this one (run here too if ``run_local``)."""
        if wait:
            self._check_can_wait()
        sent = []
        local = False
        for c in cpus:
            if c == self.cpu:
                local = True
            elif self._send(c, fid, arg):
                sent.append(c)
        if local and run_local:
            self._run_local(fid, arg)
        if wait:
            for c in sent:
                self.csd_lock_wait(c)

    def on_each_cpu_mask(self, cpus: Iterable[int], fid: int, arg: int, wait: bool = True) -> None:
        self.smp_call_function_many(cpus, fid, arg, wait, run_local=True)

    def smp_send_reschedule(self, cpu: int) -> None:
        """Wake an idle CPU: it polls, so no interrupt, only its doorbell (see the module doc)."""
        self._ring[cpu]()

    def idle_poll(self, timeout: float) -> None:
        """The idle CPU's wait: until a wake-up, or the timeout; IPI handlers run meanwhile."""
        if self.det is not None:
            self.det.sleep(int((self.det.clock() + timeout) * 1e6))
            return
        if self._doorbell_wait(True, timeout):
            while self._doorbell_wait(False):  # wake-ups posted meanwhile: one wake serves them all
                pass
