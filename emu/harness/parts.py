"""The parts a run's kernel is built with: its architecture model, its scheme (or mutant) and
its workload driver, resolved from the configuration's names (a part named by spec is loaded
first, ``emu.harness.plugins``), each given its own options, not the run's configuration."""

from __future__ import annotations

import functools
from collections.abc import Callable

from emu.arch import resolve_arch
from emu.harness.config import RunConfig
from emu.harness.plugins import load_config
from emu.kernel.cpu import Parts
from emu.kernel.driver import TaskDriver
from emu.kernel.protocols import PartOptions
from emu.strategies import resolve
from emu.workload import Synthetic
from emu.workload.benchmarks import DRIVERS
from emu.workload.scripted import Scripted

# the counters every run carries besides the machine's own: the mm-line atomics that land on
# mm_cpumask lines (emu.machine.atomics.count_mask_atomics), compare's `mask atom` column
RUN_COUNTERS = ("mask_atomics",)
# the counters only a benchmark's run carries: its iterations and wake-ups of another CPU's task
BENCH_COUNTERS = ("bench_ops", "remote_wakeups")


def options_for(cfg: RunConfig, declared: tuple[str, ...]) -> PartOptions:
    fixes = frozenset(f for f in cfg.fix.split(",") if f)
    own = {name: getattr(cfg, name) for name in declared}
    return PartOptions(seed=cfg.seed, fixes=fixes, race_delay=cfg.race_delay, watchdog=cfg.watchdog, own=own)


def memory_model_for(cfg: RunConfig) -> str:
    """``--memory-model arch``: the model the architecture declares (an arch mutant's is its architecture's)."""
    return resolve_arch(cfg.arch, cfg.mutant).memory_model if cfg.memory_model == "arch" else cfg.memory_model


def parts_for(cfg: RunConfig) -> Parts:
    cfg = load_config(cfg)
    arch, strategy = resolve_arch(cfg.arch, cfg.mutant), resolve(cfg.scheme)
    driver: Callable[..., TaskDriver] = Synthetic
    if cfg.benchmark:
        driver = functools.partial(DRIVERS[cfg.benchmark], tasks=cfg.bench_tasks)
    elif cfg.script:  # the explorer's scenarios (emu.harness.explore): nothing drawn at random
        driver = functools.partial(Scripted, script=cfg.script)
    return Parts(
        arch=arch, strategy=strategy, driver=driver, scheme_options=options_for(cfg, strategy.options),
        arch_options=options_for(cfg, arch.options), memory_model=memory_model_for(cfg),
    )  # fmt: skip


def extra_counters(cfg: RunConfig) -> tuple[str, ...]:
    return RUN_COUNTERS + (BENCH_COUNTERS if cfg.benchmark else ())
