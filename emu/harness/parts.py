"""The parts a run's kernel is built with: its architecture model, its scheme (or mutant) and
its workload driver, resolved from the configuration's names."""

from __future__ import annotations

from emu.arch import resolve_arch
from emu.harness.config import RunConfig
from emu.kernel.cpu import Parts
from emu.strategies import resolve
from emu.workload import Synthetic


def parts_for(cfg: RunConfig) -> Parts:
    return Parts(arch=resolve_arch(cfg.arch, cfg.mutant), strategy=resolve(cfg.scheme), driver=Synthetic)
