"""IPIs: delivered through mailbox + signal, deferred while masked, waited for when asked."""

from __future__ import annotations

import signal

from emu.harness.testbed import Testbed
from emu.kernel.cpu import Cpu
from emu.machine.irq import IPI_SIGNAL, Irq, ipi_function

RECORD = ipi_function("test_record")  # registered before the CPUs fork


def test_ipi_sent_while_masked_runs_at_unmask_never_inside() -> None:
    with Testbed(cpus=2) as tb:
        masked, ran, ran_while_masked, sent = tb.scratch(0), tb.scratch(1), tb.scratch(2), tb.scratch(3)

        def target(cpu: Cpu) -> dict[str, int]:
            w = cpu.w

            def record(arg: int) -> None:
                w[ran] += 1
                if w[masked]:
                    w[ran_while_masked] += 1

            cpu.irq.handlers[RECORD] = record
            cpu.irq.local_irq_disable()
            w[masked] = 1
            while not cpu.irq.pending:  # spin until the doorbell arrived and was deferred
                pass
            runs_inside = w[ran]
            w[masked] = 0
            cpu.irq.local_irq_enable()  # the pending IPI replays here
            return {"inside": runs_inside, "after": w[ran]}

        def sender(cpu: Cpu) -> int:
            while not cpu.w[masked]:
                pass
            cpu.irq.smp_call_function_single(0, RECORD, 7, wait=True)
            cpu.w[sent] = 1
            return 0

        res = tb.run([target, sender])
        assert res[0] == {"inside": 0, "after": 1}
        assert tb.words[ran_while_masked] == 0
        assert tb.words[sent] == 1


def test_smp_call_function_many_waits_for_every_target() -> None:
    n = 4
    with Testbed(cpus=n) as tb:
        base, go = tb.scratch(0), tb.scratch(20)

        def receiver(cpu: Cpu) -> int:
            cpu.irq.handlers[RECORD] = lambda arg: cpu.atomics.atomic_add(base + cpu.cpu * 8, arg)
            cpu.atomics.atomic_inc(go)
            while cpu.w[go] < n + 1:  # wait for the sender to finish; IPIs run meanwhile
                cpu.idle_wait(0.01)
            return 0

        def sender(cpu: Cpu) -> list[int]:
            cpu.irq.handlers[RECORD] = lambda arg: cpu.atomics.atomic_add(base + cpu.cpu * 8, arg)
            cpu.atomics.atomic_inc(go)
            while cpu.w[go] < n:
                pass
            cpu.irq.smp_call_function_many(range(n), RECORD, 5, wait=True)  # excludes the caller
            seen = [cpu.w[base + c * 8] for c in range(n)]
            cpu.irq.on_each_cpu_mask(range(n), RECORD, 1, wait=True)  # includes the caller
            seen += [cpu.w[base + c * 8] for c in range(n)]
            cpu.atomics.atomic_inc(go)
            return seen

        res = tb.run([sender] + [receiver] * (n - 1))
        assert res[0] == [0, 5, 5, 5, 1, 6, 6, 6]


def test_atomics_mask_interrupts_while_holding_their_lock() -> None:
    with Testbed(cpus=1) as tb:
        cpu = tb.local_cpu()
        calls: list[int] = []
        cpu.irq.handlers[RECORD] = calls.append
        k = cpu.atomics.lock(tb.scratch(0))
        cpu.irq.doorbell(0, None)  # a signal arriving while the lock is held
        assert calls == [] and cpu.irq.pending
        cpu.atomics.unlock(k)
        assert not cpu.irq.pending  # replayed (the mailbox was empty: nothing to run)


def test_a_reschedule_wakes_an_idle_cpu_without_an_interrupt() -> None:
    """smp_send_reschedule posts the idle CPU's doorbell: its wait ends, and no signal (no IPI
    handler run) was needed. An IPI is still handled while the CPU waits there (and, as on an idle
    kernel CPU that finds no need_resched after the interrupt, the wait goes on)."""
    with Testbed(cpus=2) as tb:
        waiting, woke = tb.scratch(0), tb.scratch(1)

        def idle(cpu: Cpu) -> dict[str, int]:
            doorbells = []
            cpu.irq.doorbell = lambda signum, frame: doorbells.append(signum)  # type: ignore[method-assign]
            signal.signal(IPI_SIGNAL, cpu.irq.doorbell)
            cpu.w[waiting] = 1
            cpu.idle_wait(120.0)  # a wake-up that never came fails the test at the Testbed timeout (60 s)
            cpu.w[woke] = 1
            got_signal_first = len(doorbells)
            cpu.irq.doorbell = Irq.doorbell.__get__(cpu.irq)  # type: ignore[method-assign]
            signal.signal(IPI_SIGNAL, cpu.irq.doorbell)
            cpu.irq.handlers[RECORD] = lambda arg: cpu.atomics.atomic_add(woke, arg)
            cpu.w[waiting] = 2
            while cpu.w[woke] < 8:  # the IPI's handler runs inside the idle wait
                cpu.idle_wait(0.05)
            return {"signals while waking": got_signal_first}

        def waker(cpu: Cpu) -> int:
            while cpu.w[waiting] != 1:
                pass
            cpu.irq.smp_send_reschedule(1)
            while cpu.w[waiting] != 2:
                pass
            cpu.irq.smp_call_function_single(1, RECORD, 7, wait=True)
            return 0

        res = tb.run([waker, idle])
        assert res[1] == {"signals while waking": 0}
        assert tb.words[woke] == 8
