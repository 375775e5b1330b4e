"""Litmus tests on the emulated machine: run one function per CPU over named shared variables,
many times, and count the outcomes (a jcstress-style histogram).

Each thread is a function ``fn(atomics, v)``: ``atomics`` is the CPU's memory-model-aware
``Atomics`` (``READ_ONCE``, ``WRITE_ONCE``, ``smp_mb``...), ``v`` maps each variable name to its
word offset (every variable on its own cache line); it returns its observation (an int). An
outcome is the tuple of every thread's observation in one iteration. A CPU that has finished its
body waits (on a machine word, outside the memory model) until every CPU has, and only then
drains its store buffer: the model's time is counted in accesses, so a buffered store stays
buffered while the other threads run theirs unless a random commit moves it out. Then all meet
at a barrier and the variables are reset to 0, so every iteration starts from zeros in memory
and empty buffers.

    hist = litmus([t0, t1], ["x", "y"], iterations=2000, memory_model="tso")
    print(format_histogram(hist, ["r0", "r1"], forbidden={(0, 0)}))
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

from emu.atomics import Atomics
from emu.config import RunConfig
from emu.cpu import Cpu
from emu.testbed import Testbed

Thread = Callable[[Atomics, Mapping[str, int]], int]
Outcome = tuple[int, ...]
SPINS_BEFORE_YIELD = 200


def litmus(
    threads: Sequence[Thread], variables: Sequence[str], iterations: int = 1000, memory_model: str = "sc", seed: int = 0
) -> Counter[Outcome]:
    """Run ``threads[i]`` on CPU ``i``, ``iterations`` times; the histogram of outcomes."""
    n = len(threads)
    with Testbed(RunConfig(cpus=n, memory_model=memory_model, seed=seed)) as tb:
        v = {name: tb.scratch(i + 1) for i, name in enumerate(variables)}
        arrive = tb.scratch(0)  # barrier: arrivals so far, counted with a locked increment
        done = [tb.scratch(len(variables) + 1 + i) for i in range(n)]  # iterations finished, per CPU

        def wait(cpu: Cpu, ok: Callable[[], bool]) -> None:
            spins = 0
            while not ok():
                spins += 1
                if spins > SPINS_BEFORE_YIELD:
                    os.sched_yield()

        def barrier(cpu: Cpu, k: int) -> None:
            cpu.atomics.atomic_inc(arrive)  # a locked atomic: drains this CPU's buffer too
            w, target = cpu.w, n * k
            wait(cpu, lambda: w[arrive] >= target)

        def body(i: int, fn: Thread) -> Callable[[Cpu], list[int]]:
            def run(cpu: Cpu) -> list[int]:
                a, w = cpu.atomics, cpu.w
                seen = []
                for it in range(iterations):
                    barrier(cpu, 2 * it + 1)
                    seen.append(fn(a, v))
                    w[done[i]] = it + 1  # machine bookkeeping: not buffered, drains nothing
                    wait(cpu, lambda: all(w[d] > it for d in done))  # noqa: B023 (called at once)
                    a.store_buffer_drain()
                    if i == 0:
                        wait(cpu, lambda: w[arrive] >= n * (2 * it + 2) - 1)  # noqa: B023 (called at once)
                        for off in v.values():
                            w[off] = 0
                    barrier(cpu, 2 * it + 2)
                return seen

            return run

        per_cpu = tb.run([body(i, fn) for i, fn in enumerate(threads)], timeout=120.0)
    return Counter(zip(*per_cpu, strict=True))


def format_histogram(hist: Mapping[Outcome, int], names: Sequence[str], forbidden: Iterable[Outcome] = ()) -> str:
    """The outcomes as a jcstress-style table: observation, count, and whether it is allowed."""
    bad = set(forbidden)
    head = ", ".join(names)
    lines = [f"  {'(' + head + ')':<20} {'count':>8}  expectation"]
    for outcome, count in sorted(hist.items()):
        label = "FORBIDDEN" if outcome in bad else "acceptable"
        lines.append(f"  {str(outcome):<20} {count:>8}  {label}")
    return "\n".join(lines)
