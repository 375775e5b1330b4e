"""The workloads: what tasks do, drawn from the seed, behind ``emu.kernel.driver.TaskDriver``.
A new load (exec-heavy, kthread-heavy, a fixed scenario) is a new driver here."""

from __future__ import annotations

from emu.workload.dolan import DolanReproducer  # registers the "dolan" load among the benchmark-shaped drivers
from emu.workload.synthetic import Synthetic

__all__ = ["DolanReproducer", "Synthetic"]
