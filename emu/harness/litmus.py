"""Litmus tests on the emulated machine: run one function per CPU over named shared variables,
many times, and count the outcomes (a jcstress-style histogram).

Each thread is a function ``fn(atomics, v)``: ``atomics`` is the CPU's memory-model-aware
``Atomics`` (``READ_ONCE``, ``WRITE_ONCE``, ``smp_mb``...), ``v`` maps each variable name to its
word offset (every variable on its own cache line); it returns its observation: an int, or a
tuple of ints for a thread with several registers. An outcome is the tuple of every thread's
observations in one iteration, flattened; with ``final=True`` it is followed by the final value
of every variable once all stores have reached memory, in the order of ``variables`` (so a
pattern whose condition is on memory, such as R, S or CoWW, can be written).

A CPU that has finished its body waits (on a machine word, outside the memory model) until
every CPU has, and drains its store buffer after ``STALL_SPINS`` turns of waiting (as the
machine does before it idles, so that a thread spinning on another's buffered store, a lock,
makes progress): the model's time is counted in accesses, so a buffered store stays buffered
while the other threads run theirs unless a random commit moves it out. Then all meet at a
barrier and the variables are reset to 0, so every iteration starts from zeros in memory and
empty buffers. With ``orders``, each thread but the first starts half its bodies only once a randomly chosen
earlier thread has finished its own (a generator seeded by the seed and the thread; the wait is
on a machine word, outside the model), so that a body also runs after another, not only beside it.

    hist = litmus([t0, t1], ["x", "y"], iterations=2000, memory_model="tso")
    print(format_histogram(hist, ["r0", "r1", "x", "y"], forbidden={(0, 0, 1, 1)}))
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

from emu.harness.config import RunConfig
from emu.harness.testbed import Testbed
from emu.kernel.cpu import Cpu
from emu.machine.atomics import Atomics

Thread = Callable[[Atomics, Mapping[str, int]], "int | tuple[int, ...]"]
Outcome = tuple[int, ...]


class Histogram(Counter[Outcome]):
    """The outcomes, and in how many iterations the bodies overlapped: every CPU began its body
    before any had drained its stores. An outcome that needs the bodies to run together (store
    buffering under tso) can only come from those; a host too busy to run the processes together
    gives few, and a test can then say so instead of failing (``overlapped``)."""

    overlapped: int = 0


SPINS_BEFORE_YIELD = 200
STALL_SPINS = SPINS_BEFORE_YIELD  # a finished thread drains once it starts yielding while waiting for the others


def litmus(
    threads: Sequence[Thread],
    variables: Sequence[str],
    iterations: int = 1000,
    memory_model: str = "sc",
    seed: int = 0,
    final: bool = False,
    orders: bool = False,
) -> Histogram:
    """Run ``threads[i]`` on CPU ``i``, ``iterations`` times; the histogram of outcomes (with the
    variables' final values last if ``final``; with ``orders``, half the bodies of each thread but
    the first wait for an earlier thread's, see the module's docstring)."""
    n = len(threads)
    with Testbed(RunConfig(cpus=n, memory_model=memory_model, seed=seed)) as tb:
        v = {name: tb.scratch(i + 1) for i, name in enumerate(variables)}
        arrive = tb.scratch(0)  # barrier: arrivals so far, counted with a locked increment
        done = [tb.scratch(len(variables) + 1 + i) for i in range(n)]  # iterations finished, per CPU
        drained = [tb.scratch(len(variables) + 1 + n + i) for i in range(n)]  # ... and their stores all visible

        def wait(cpu: Cpu, ok: Callable[[], bool], stalled: Callable[[], None] | None = None) -> None:
            spins = 0
            while not ok():
                spins += 1
                if spins == STALL_SPINS and stalled is not None:
                    stalled()
                if spins > SPINS_BEFORE_YIELD:
                    os.sched_yield()

        def barrier(cpu: Cpu, k: int) -> None:
            cpu.atomics.atomic_inc_return(arrive)  # fully ordered: drains this CPU's buffer too
            w, target = cpu.w, n * k
            wait(cpu, lambda: w[arrive] >= target)
            cpu.atomics.smp_mb()  # the reset before every load of the next body (weak: refresh the view)

        def body(i: int, fn: Thread) -> Callable[[Cpu], list[tuple[int, ...]]]:
            def run(cpu: Cpu) -> list[tuple[int, ...]]:
                a, w = cpu.atomics, cpu.w
                seen: list[tuple[int, ...]] = []
                together: list[int] = []  # per iteration: this CPU began before any other had drained
                stagger = random.Random(seed * 7919 + i).random  # seeded: no host randomness
                for it in range(iterations):
                    barrier(cpu, 2 * it + 1)
                    # Half the iterations start this thread a little late, so that one thread's body
                    # can also run after another's (a reader after a writer), not only alongside it.
                    if orders and i and stagger() < 0.5:
                        # start after an earlier thread's body (never a later one's: no cycle), with its
                        # stores still buffered or all visible: schedules that a host running these
                        # processes on few cores would rarely give by itself
                        j = int(stagger() * i)
                        flag = done[j] if stagger() < 0.5 else drained[j]
                        wait(cpu, lambda: w[flag] > it)  # noqa: B023 (called at once)
                    together.append(all(w[drained[j]] <= it for j in range(n) if j != i))
                    r = fn(a, v)
                    seen.append(r if isinstance(r, tuple) else (r,))
                    w[done[i]] = it + 1  # machine bookkeeping: not buffered, drains nothing

                    # a CPU that waits long drains (as the machine does before idling): another may spin on its store (a lock)
                    def drain(it: int = it) -> None:
                        a.store_buffer_drain()
                        w[drained[i]] = it + 1

                    wait(cpu, lambda: all(w[d] > it for d in done), drain)  # noqa: B023 (called at once)
                    drain()
                    if i == 0:
                        wait(cpu, lambda: w[arrive] >= n * (2 * it + 2) - 1)  # noqa: B023 (called at once)
                        finals.append(tuple(w[off] for off in v.values()))  # every buffer is empty now
                        for off in v.values():
                            w[off] = 0
                    barrier(cpu, 2 * it + 2)
                if i == 0:
                    seen = [s + f for s, f in zip(seen, finals, strict=True)]
                return seen + [tuple(together)]

            return run

        finals: list[tuple[int, ...]] = []  # filled by CPU 0, in its own process
        per_cpu = tb.run([body(i, fn) for i, fn in enumerate(threads)], timeout=120.0)
    # CPU 0's entries end with the final values: put them last
    hist = Histogram(_outcome(row, len(variables), final) for row in zip(*(c[:-1] for c in per_cpu), strict=True))
    hist.overlapped = sum(all(flags) for flags in zip(*(c[-1] for c in per_cpu), strict=True))
    return hist


def _outcome(row: Sequence[tuple[int, ...]], nvars: int, final: bool) -> Outcome:
    first = row[0]
    cut = len(first) - nvars
    regs = first[:cut] + tuple(x for r in row[1:] for x in r)
    return regs + first[cut:] if final else regs


def format_histogram(hist: Mapping[Outcome, int], names: Sequence[str], forbidden: Iterable[Outcome] = ()) -> str:
    """The outcomes as a jcstress-style table: observation, count, and whether it is allowed."""
    bad = set(forbidden)
    head = ", ".join(names)
    lines = [f"  {'(' + head + ')':<20} {'count':>8}  expectation"]
    for outcome, count in sorted(hist.items()):
        label = "FORBIDDEN" if outcome in bad else "acceptable"
        lines.append(f"  {str(outcome):<20} {count:>8}  {label}")
    return "\n".join(lines)
