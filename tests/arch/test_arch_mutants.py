"""Arch mutants and the architecture options: selection, validation, the rerun command, the matrix,
and the runs that must catch them under more than one scheme."""

from __future__ import annotations

from dataclasses import replace

import pytest

from emu.arch import ARCH_MUTANTS, ARCHES, resolve_arch
from emu.arch.powerpc import Powerpc, PowerpcExitIrqsEnabled
from emu.harness.config import ConfigError, RunConfig, Workload, validate
from emu.harness.matrix import CELLS, Cell, find
from emu.harness.report import command_for
from emu.harness.runner import run
from emu.harness.testbed import Testbed
from emu.strategies import MUTANTS, STRATEGIES
from stress.cli import build_parser
from stress.options import config_from
from tests.procs import stress

SCHEME_MUTANTS = {m: c.mutant_of or "" for m, c in MUTANTS.items()}


def check(cfg: RunConfig) -> None:
    validate(cfg, sorted(STRATEGIES), SCHEME_MUTANTS, sorted(ARCHES))


def test_an_arch_mutant_patches_the_model_and_leaves_the_scheme_alone() -> None:
    cfg = RunConfig(strategy="refcount", mutant="powerpc-exit-irqs-enabled", arch="powerpc")
    check(cfg)
    assert cfg.scheme == "refcount" and cfg.arch_mutant == "powerpc-exit-irqs-enabled"
    assert resolve_arch(cfg.arch, cfg.mutant) is PowerpcExitIrqsEnabled
    with Testbed(cfg) as tb:
        cpu = tb.local_cpu(0)
        assert type(cpu.arch) is PowerpcExitIrqsEnabled and type(cpu.strategy) is STRATEGIES["refcount"]
    scheme = RunConfig(strategy="refcount", mutant="refcount-no-grab", arch="powerpc")
    assert scheme.scheme == "refcount-no-grab" and scheme.arch_mutant is None
    assert resolve_arch("powerpc", scheme.mutant) is Powerpc


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mutant": "powerpc-exit-irqs-enabled", "arch": "x86"}, "patches architecture 'powerpc', not 'x86'"),
        ({"mutant": "powerpc-trim-vs-kthred"}, "did you mean 'powerpc-trim-vs-kthread'"),
        ({"trim_timer": 3}, "--trim-timer applies to --arch powerpc"),
        ({"trim_timer": 0, "arch": "powerpc"}, "--trim-timer must be between 1"),
        ({"x86_unlazy_on_flush": True, "arch": "powerpc"}, "--x86-unlazy-on-flush applies to --arch x86 or "),
        ({"x86_idle_leave_mm": True, "arch": "s390"}, "--x86-idle-leave-mm applies"),
        ({"workload": Workload(p_free_tables=1.5)}, "--p-free-tables must be a probability"),
    ],
)
def test_bad_architecture_settings_are_one_readable_error(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check(replace(RunConfig(), **changes))


def test_any_scheme_takes_an_arch_mutant() -> None:
    for strategy in STRATEGIES:
        for mutant, model in ARCH_MUTANTS.items():
            check(RunConfig(strategy=strategy, mutant=mutant, arch=model.mutant_of or ""))


def test_the_command_line_picks_the_arch_of_an_arch_mutant_and_reruns_every_setting() -> None:
    cfg = config_from(build_parser().parse_args(["run", "--mutant", "powerpc-trim-vs-kthread", "--seed", "1"]))
    assert (cfg.strategy, cfg.arch, cfg.mutant) == ("refcount", "powerpc", "powerpc-trim-vs-kthread")
    wl = Workload(p_free_tables=0.5)
    want = RunConfig(strategy="shoot-lazies", mutant="powerpc-exit-irqs-enabled", arch="powerpc", seed=5, workload=wl, trim_timer=3)
    assert config_from(build_parser().parse_args(command_for(want).split()[3:])) == want
    x86 = replace(RunConfig(arch="x86-lazy-mask", seed=5), x86_unlazy_on_flush=True, x86_idle_leave_mm=True)
    assert config_from(build_parser().parse_args(command_for(x86).split()[3:])) == x86


def test_list_names_the_arch_mutants_and_what_they_patch() -> None:
    r = stress("list")
    assert r.returncode == 0
    lines = [line for line in r.stdout.splitlines() if "powerpc-exit-irqs-enabled" in line or "powerpc-trim-vs-kthread" in line]
    assert len(lines) == 2 and all("[arch powerpc, any scheme]" in line for line in lines)


def test_matrix_cells_of_arch_mutants_run_their_scheme_with_the_mutant() -> None:
    cell = find("refcount", "powerpc", {"trim_timer": 3}, arch_mutant="powerpc-exit-irqs-enabled")
    assert cell is not None and cell.expect == "lockdep"
    assert (cell.base, cell.mutant, cell.id) == ("refcount", "powerpc-exit-irqs-enabled", "refcount@powerpc-exit-irqs-enabled+trim-timer=3")
    cfg = cell.config(7)
    assert (cfg.strategy, cfg.mutant, cfg.arch, cfg.trim_timer) == ("refcount", "powerpc-exit-irqs-enabled", "powerpc", 3)
    check(cfg)
    plain = Cell("refcount-no-grab", "x86", "use_after_free")
    assert (plain.base, plain.mutant) == ("refcount", "refcount-no-grab")  # scheme mutants as before
    assert find("refcount", "powerpc", {"trim_timer": 3}) is None  # the arch mutant is part of the cell
    with_workload = [c for c in CELLS if c.workload]
    assert with_workload and all(c.config(1).workload.p_free_tables == c.workload.get("p_free_tables", 0.1) for c in with_workload)
    for c in with_workload:
        assert find(c.strategy, c.arch, c.options, c.arch_mutant, c.workload) is c
        assert c.config(1, workload=Workload(threads=2)).workload.threads == c.workload.get("threads", 2)  # the cell on top of the run


def test_every_matrix_cell_is_a_valid_configuration() -> None:
    for cell in CELLS:
        check(cell.config(1))


@pytest.mark.race  # a free-running hunt on one seed: whether it catches in time is the host's interleaving
@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("strategy", "mutant", "options", "kind"),
    [
        ("refcount", "powerpc-exit-irqs-enabled", {"trim_timer": 3}, "lockdep"),
        ("shoot-lazies", "powerpc-exit-irqs-enabled", {"trim_timer": 3}, "lockdep"),
        ("refcount", "powerpc-trim-vs-kthread", {"use_mm_bursts": True}, "cpumask_missing"),
        ("shoot-lazies", "powerpc-trim-vs-kthread", {"use_mm_bursts": True}, "cpumask_missing"),
    ],
)
def test_powerpc_arch_mutants_are_caught_under_refcount_and_shoot_lazies(
    strategy: str, mutant: str, options: dict[str, object], kind: str
) -> None:
    cfg = RunConfig(cpus=8, strategy=strategy, mutant=mutant, arch="powerpc", duration=30.0, seed=11, fail_fast=True)
    cfg = replace(cfg, **options)
    report = run(cfg)
    assert report.harness["error"] is None, report.harness
    assert kind in report.violation_counts, (report.violation_counts, report.command)


@pytest.mark.race  # free-running with hotplug: the takedown's timing is the host's
@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", [1, 2])
def test_offline_before_leaving_the_lazy_mm_is_caught_in_a_short_hotplug_run(seed: int) -> None:
    """The state B2 leads to (powerpc's cpu_offline while the CPU is still lazy) arises in most
    takedowns; the mask check at the clear sees it at once, not only a free that follows."""
    cfg = RunConfig(cpus=8, strategy="shoot-lazies", mutant="shoot-hotplug-race", arch="powerpc", duration=3.0, seed=seed, hotplug=True)
    report = run(cfg)
    assert report.harness["error"] is None, report.harness
    assert {"cpumask_missing", "freed_while_lazy"} & set(report.violation_counts), report.command
