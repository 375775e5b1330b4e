"""The parts a run's kernel is built with: its architecture model, its scheme (or mutant) and
its workload driver, resolved from the configuration's names."""

from __future__ import annotations

import functools

from emu.arch import resolve_arch
from emu.harness.config import RunConfig
from emu.kernel.cpu import Parts
from emu.strategies import resolve
from emu.workload import Synthetic
from emu.workload.benchmarks import DRIVERS
from emu.workload.scripted import Scripted

# the counters only a benchmark's run carries: its iterations, wake-ups of another CPU's task, and
# the mm-line atomics that land on mm_cpumask lines (emu.machine.atomics.count_mask_atomics)
BENCH_COUNTERS = ("bench_ops", "remote_wakeups", "mask_atomics")


def parts_for(cfg: RunConfig) -> Parts:
    if cfg.benchmark:
        driver = functools.partial(DRIVERS[cfg.benchmark], tasks=cfg.bench_tasks)
        return Parts(arch=resolve_arch(cfg.arch, cfg.mutant), strategy=resolve(cfg.scheme), driver=driver)
    if cfg.script:
        return Parts(
            arch=resolve_arch(cfg.arch, cfg.mutant), strategy=resolve(cfg.scheme), driver=functools.partial(Scripted, script=cfg.script)
        )
    return Parts(arch=resolve_arch(cfg.arch, cfg.mutant), strategy=resolve(cfg.scheme), driver=Synthetic)


def extra_counters(cfg: RunConfig) -> tuple[str, ...]:
    return BENCH_COUNTERS if cfg.benchmark else ()
