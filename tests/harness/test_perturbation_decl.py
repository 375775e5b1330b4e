"""A perturbation is one module (issue 23): declared in one file outside the package, it has its
flag on the command line, its place in the configuration and its checks, its events in a free and
a deterministic run, and its name in the report and the rerun command; the built-in four are
declared the same way."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from emu import arch as arches
from emu import strategies
from emu.harness import perturbations
from emu.harness.config import ConfigError, RunConfig, validate
from emu.harness.report import command_for
from emu.harness.runner import run

# cpu1 naps: every event takes it offline or brings it back (the kernel's own hotplug path), never with --hotplug's draws
NAP = """
from emu.harness.perturbations.base import PerturbationKind
from emu.machine.layout import C_HP_WANT


class Cpu1Nap(PerturbationKind):
    name = "cpu1-nap"
    help = "cpu1 goes offline and comes back, again and again"
    event = "cpu1-nap"
    every_s = 0.01
    min_cpus, min_cpus_why = 2, "cpu1 must exist"
    pauses_cpus = True

    def fire(self, ev, count):
        ev.w[ev.layout.cpu(1) + C_HP_WANT] = count % 2

    def lift(self, ev):
        ev.w[ev.layout.cpu(1) + C_HP_WANT] = 1
"""


NAMES = (sorted(strategies.STRATEGIES), {}, sorted(arches.ARCHES))


@pytest.fixture
def nap(tmp_path: Path) -> Iterator[str]:
    saved = dict(perturbations.KINDS)
    path = tmp_path / "nap.py"
    path.write_text(textwrap.dedent(NAP))
    perturbations.load(str(path))
    yield "cpu1-nap"
    perturbations.KINDS.clear()
    perturbations.KINDS.update(saved)


def test_the_built_in_perturbations_are_declared_in_their_modules() -> None:
    kinds = {k.name: k for k in perturbations.kinds()}
    assert list(kinds) == ["stutter", "hotplug", "use-mm-bursts", "shuffle"]  # the events' order at one moment
    assert {k.field for k in kinds.values()} == {"stutter", "hotplug", "use_mm_bursts", "shuffle"}
    assert kinds["shuffle"].free_only and not kinds["shuffle"].event and kinds["hotplug"].min_cpus == 2
    from stress.hunt import matrix_perturbations

    assert matrix_perturbations() == {
        "none": {},
        "hotplug": {"hotplug": True},
        "stutter": {"stutter": True},
        "bursts": {"use_mm_bursts": True},
    }


def test_a_perturbation_from_one_module_is_a_flag_a_setting_and_runs_in_both_modes(nap: str) -> None:
    from stress.cli import build_parser
    from stress.hunt import matrix_perturbations
    from stress.options import config_from

    parser = build_parser()
    ns = parser.parse_args(["run", "--cpus", "3", f"--{nap}", "--sched", "pct", "--steps", "20000", "--seed", "5"])
    cfg = config_from(ns)
    assert cfg.perturb == (nap,) and not cfg.hotplug and cfg.perturbed
    assert matrix_perturbations()[nap] == {"perturb": (nap,)}  # a column of hunt --matrix --strategy's verdict table
    with pytest.raises(ConfigError, match=f"--{nap} needs at least 2 CPUs \\(cpu1 must exist\\)"):
        validate(RunConfig(cpus=1, perturb=(nap,)), *NAMES)
    with pytest.raises(ConfigError, match="unknown perturbation 'cpu2-nap'"):
        validate(RunConfig(cpus=2, perturb=("cpu2-nap",)), *NAMES)
    check_ran(cfg, nap)
    plain = run(RunConfig(cpus=3, sched="pct", steps=20000, seed=5))
    assert plain.metrics["hotplug_offline"] == 0 and "perturb" not in plain.config


@pytest.mark.race  # the free mode: its events come on the host's clock
def test_a_perturbation_from_one_module_runs_in_the_free_mode(nap: str) -> None:
    check_ran(RunConfig(cpus=3, perturb=(nap,), duration=1.0, seed=5), nap)


def check_ran(cfg: RunConfig, nap: str) -> None:
    """Its events happened (cpu1 went offline and came back), and the report and rerun command name it."""
    report = run(cfg)
    assert report.metrics["hotplug_offline"] > 0 and report.metrics["hotplug_online"] > 0, cfg.sched
    assert report.config["perturb"] == [nap] and f"--{nap}" in command_for(cfg) and "--hotplug" not in command_for(cfg)
    assert RunConfig.from_dict(report.config).perturb == (nap,)
