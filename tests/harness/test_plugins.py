"""Parts from outside the package (issue 23): a scheme or an arch model in a file outside the
repository, named by ``FILE.py:Class`` or ``module:Class`` or installed through an entry point,
runs, is listed, checked, given matrix rows and report labels exactly as a built-in one; its
mistakes are one line and status 2.

The runs are deterministic (``--sched pct``): their verdicts do not depend on the host."""

from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path

import pytest

from emu import arch as arches
from emu import strategies
from emu.harness import plugins
from emu.harness.config import ConfigError, RunConfig, validate
from emu.harness.matrix import all_cells
from emu.harness.report import metrics
from emu.harness.runner import run
from tests.procs import stress

REPO = Path(__file__).resolve().parents[2]
# refcount under another name, outside the repository; {drop} is the body of its mmdrop_lazy_tlb
SCHEME = """
from emu.kernel.protocols import CellDecl
from emu.strategies.base import Strategy


class MyRefcount(Strategy):
    name = "my-refcount"
    summary = "refcount, out of tree"
    source = "a test"
    counters = ("my_drops",)
    labels = {{"my_drops": "lazy references dropped"}}
    cells = (CellDecl("my-refcount", "*", why="a copy of refcount"),)

    def mmgrab_lazy_tlb(self, mm: int) -> None:
        self.count("lazy_refcount_atomics")
        self.mmgrab(mm)

    def mmdrop_lazy_tlb(self, mm: int) -> None:
{drop}
"""
DROPS = '        self.count("lazy_refcount_atomics")\n        self.count("my_drops")\n        self.mmdrop(mm)'
NO_DROP = "        pass  # the reference is never given back"
ARCH = """
from emu.arch.arm64 import Arm64


class MyArch(Arm64):
    name = "my-arch"
    summary = "arm64 under another name, on the TSO model"
    memory_model = "tso"
    options = ("x86_idle_leave_mm",)
    labels = {"my_arch_events": "events of my arch"}
"""
DET = ("--cpus", "3", "--sched", "pct", "--steps", "20000", "--seed", "5")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_an_out_of_tree_refcount_runs_clean_and_its_rerun_and_replay_load_it(tmp_path: Path) -> None:
    f = write(tmp_path, "mine.py", SCHEME.format(drop=DROPS))
    out = tmp_path / "r.json"
    r = stress("run", *DET, "--strategy", f"{f}:MyRefcount", "--json", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(out.read_text())
    assert report["verdict"] == "clean" and report["config"]["strategy"] == f"{f}:MyRefcount"
    assert f"--strategy {f}:MyRefcount" in report["command"] and report["metrics"]["my_drops"] > 0
    again = stress("run", "--replay", str(out), "--json", str(tmp_path / "again.json"), cwd=REPO)  # another directory
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "again.json").read_text())["metrics"] == report["metrics"]


def test_the_same_scheme_without_its_drop_is_caught_as_a_leak(tmp_path: Path) -> None:
    f = write(tmp_path, "leaky.py", SCHEME.format(drop=NO_DROP))
    out = tmp_path / "r.json"
    r = stress("run", *DET, "--strategy", f"{f}:MyRefcount", "--json", str(out), cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "leak" in json.loads(out.read_text())["violation_counts"]


def test_a_module_spec_and_the_entry_points_add_parts_by_name(tmp_path: Path) -> None:
    write(tmp_path, "mine.py", SCHEME.format(drop=DROPS))
    write(tmp_path, "leaky.py", SCHEME.format(drop=NO_DROP))
    write(tmp_path, "myarch.py", ARCH)
    dist = tmp_path / "my_parts-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-parts\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[lazytlb.schemes]\nmy-refcount = mine:MyRefcount\nmy-leaky = leaky:MyRefcount\n\n[lazytlb.arches]\nmy-arch = myarch:MyArch\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)])}
    names = stress("list", "--quiet", env=env, cwd=tmp_path)
    assert names.returncode == 0, names.stderr
    assert {"my-refcount", "my-leaky", "my-arch"} <= set(names.stdout.split()), names.stdout
    r = stress("run", *DET, "--strategy", "my-refcount", "--arch", "my-arch", "--quiet", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    r = stress("run", *DET, "--strategy", "my-leaky", "--quiet", env=env, cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    r = stress("run", *DET, "--strategy", "mine:MyRefcount", "--quiet", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize(
    ("body", "spec", "expect"),
    [
        (SCHEME.format(drop=DROPS), "nowhere.py:MyRefcount", "no such file"),
        (SCHEME.format(drop=DROPS), "{f}:Missing", "no class 'Missing'"),
        ("import no_such_module_here\n", "{f}:MyRefcount", "ModuleNotFoundError"),
        ("from emu.strategies.base import Strategy\nclass MyRefcount(Strategy):\n    name = 'x'\n", "{f}:MyRefcount", "does not implement"),
        (
            SCHEME.format(drop=DROPS).replace('counters = ("my_drops",)', "percpu = tuple(f'f{i}' for i in range(9))"),
            "{f}:MyRefcount",
            "per-CPU fields",
        ),
        ("class MyRefcount:\n    pass\n", "{f}:MyRefcount", "not a subclass"),
        ("", "emu.strategies.refcount:Refcount", "a module of lazytlb itself"),
    ],
    ids=["no-file", "no-class", "import-error", "missing-hook", "too-many-fields", "not-a-scheme", "own-module"],
)
def test_a_bad_part_is_one_line_with_status_2(tmp_path: Path, body: str, spec: str, expect: str) -> None:
    f = write(tmp_path, "part.py", body)
    r = stress("run", *DET, "--strategy", spec.format(f=f), cwd=tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("stress: error: ") and expect in lines[0], r.stderr


def test_a_new_scheme_and_arch_from_files_are_seen_everywhere(tmp_path: Path, registries: None) -> None:
    scheme = plugins.load_scheme(f"{write(tmp_path, 'mine.py', SCHEME.format(drop=DROPS))}:MyRefcount")
    arch = plugins.load_arch(f"{write(tmp_path, 'myarch.py', ARCH)}:MyArch")
    # the tables list and every command check against
    assert scheme in strategies.STRATEGIES and arch in arches.ARCHES
    # the matrix: its own "*" row on every arch, the new arch included, and the built-in "*" rows on the new arch
    cells = {(c.strategy, c.arch) for c in all_cells()}
    assert {(scheme, "x86"), (scheme, arch), ("refcount", arch), ("luto-hazard", arch)} <= cells
    # the configuration checks: its declared option applies there, and is refused elsewhere naming it
    validate(RunConfig(strategy=scheme, arch=arch, x86_idle_leave_mm=True), sorted(strategies.STRATEGIES), {}, sorted(arches.ARCHES))
    names = sorted(a for a, c in arches.ARCHES.items() if "x86_idle_leave_mm" in c.options)
    assert arch in names and "x86-lazy-mask" in names
    declaring = " or ".join(map(re.escape, names))
    with pytest.raises(ConfigError, match=f"--x86-idle-leave-mm applies to --arch {declaring}, not 'arm64'"):
        validate(RunConfig(arch="arm64", x86_idle_leave_mm=True), sorted(strategies.STRATEGIES), {}, sorted(arches.ARCHES))
    # the report's labels, and the memory model --memory-model arch gives it
    labels = metrics()
    assert labels["my_drops"].meaning == "lazy references dropped" and labels["my_arch_events"].meaning == "events of my arch"
    report = run(RunConfig(cpus=3, strategy=scheme, arch=arch, sched="pct", steps=5000, seed=2, memory_model="arch"))
    assert report.verdict == "clean" and report.config["arch"] == arch and report.metrics["my_drops"] > 0


def test_a_declared_capacity_overflow_is_refused_when_the_machine_is_built(tmp_path: Path, registries: None) -> None:
    """A declaration that grew past its region after loading (the check at load is not the only one)."""
    scheme = plugins.load_scheme(f"{write(tmp_path, 'mine.py', SCHEME.format(drop=DROPS))}:MyRefcount")
    strategies.STRATEGIES[scheme].percpu = tuple(f"f{i}" for i in range(9))
    with pytest.raises(ConfigError, match="per-CPU fields: 9 words declared, the region holds 8"):
        run(RunConfig(cpus=2, strategy=scheme, sched="pct", steps=1000))


def test_check_scheme_targets_every_arch_and_perturbation_in_both_modes(registries: None) -> None:
    """``hunt --matrix --strategy S``: the grid the verdict table is drawn from, expectations from S's cells."""
    from stress.hunt import matrix_perturbations, scheme_targets, verdict_table

    scheme = plugins.load_scheme(str(REPO / "examples" / "remote_active_mm.py") + ":RemoteActiveMm")
    targets = scheme_targets(RunConfig(strategy=scheme, duration=1.0))
    grid = [t for t in targets if t.name.endswith((" free", " pct"))]
    assert len(grid) == len(arches.ARCHES) * len(matrix_perturbations()) * 2
    by_name = {t.name: t for t in targets}
    assert by_name["arm64 none free"].expect == "violation" and by_name["powerpc hotplug pct"].expect == "clean"
    assert by_name["powerpc hotplug pct"].cfg.sched == "pct" and by_name["powerpc hotplug pct"].cfg.hotplug
    assert by_name["remote-active-mm-no-publish@s390"].cfg.mutant == "remote-active-mm-no-publish"
    by_name["arm64 none free"].runs, by_name["arm64 none free"].violating = 1, 1
    by_name["arm64 none free"].kinds["use_after_free"] += 1
    by_name["s390 none pct"].runs = 1
    table = verdict_table(targets).splitlines()
    assert table[0].split()[0] == "arch" and any(r.startswith("arm64") and "use_after_free/-" in r for r in table)
    assert any(r.startswith("s390") and "-/clean" in r for r in table)


# an x86 variant with per-CPU fields of its own, beside x86's is_lazy: {fields}
WIDE_ARCH = """
from emu.arch.x86 import X86


class Wide(X86):
    name = "wide-x86"
    summary = "x86 with per-CPU words of its own"
    source = "a test"
    percpu = X86.percpu + {fields}

    def __init__(self, cpu):
        super().__init__(cpu)
        self.ctxs = cpu.layout.cpu(cpu.cpu) + cpu.layout.arch_field("ctxs")
"""


def test_an_arch_declares_its_per_cpu_fields_and_the_layout_places_them(tmp_path: Path, registries: None) -> None:
    """Arch per-CPU words are laid out from the declaration, packed after one another in the arch region,
    and every model's accessor finds its own: the built-in ones and one from a file."""
    from emu.harness.runner import layout_for
    from emu.machine.layout import ARCH_PERCPU_WORDS, C_ARCH, CPU_WORDS

    for name, cls in arches.ARCHES.items():
        lay = layout_for(RunConfig(cpus=2, arch=name))
        assert lay.arch_words == sum(k for _, k in cls.percpu) <= ARCH_PERCPU_WORDS
        assert sorted(lay.arch_offsets.values()) == list(lay.arch_offsets.values())  # declaration order
    lay = layout_for(RunConfig(cpus=2, arch="x86-lazy-mask"))
    assert lay.arch_offsets == {"is_lazy": C_ARCH, "tlb_gen": C_ARCH + 1, "tlbstate_loaded": C_ARCH + 2}
    wide = write(tmp_path, "wide.py", WIDE_ARCH.format(fields='(("ctxs", 5), ("flag", 1))'))
    arch = plugins.load_arch(f"{wide}:Wide")
    lay = layout_for(RunConfig(cpus=2, arch=arch))
    assert (
        lay.arch_offsets == {"is_lazy": C_ARCH, "tlb_gen": C_ARCH + 1, "ctxs": C_ARCH + 2, "flag": C_ARCH + 7} and C_ARCH + 8 == CPU_WORDS
    )
    report = run(RunConfig(cpus=2, arch=arch, sched="pct", steps=3000, seed=3))
    assert report.verdict == "clean"


def test_an_arch_whose_per_cpu_fields_overflow_is_one_line_and_status_2(tmp_path: Path) -> None:
    too_big = write(tmp_path, "big.py", WIDE_ARCH.format(fields='(("ctxs", 8),)'))
    r = stress("run", "--arch", f"{too_big}:Wide", "--cpus", "2", "--sched", "pct", "--steps", "1000")
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"stress: error: architecture '{too_big}:Wide': per-CPU fields is_lazy[1], tlb_gen[1], ctxs[8]: "
        "10 words declared, the region holds 8"
    ]
    twice = write(tmp_path, "twice.py", WIDE_ARCH.format(fields='(("is_lazy", 1),)'))
    r = stress("run", "--arch", f"{twice}:Wide", "--cpus", "2", "--sched", "pct", "--steps", "1000")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "its own name" in r.stderr
