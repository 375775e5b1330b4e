"""``stress compare``: one row per scheme x arch x CPU count, per-exit figures that follow from the
raw counters, a readable plot, one-line errors; and the projection model's arithmetic."""

from __future__ import annotations

import json
import math
import signal
import subprocess
from pathlib import Path

import pytest

from emu.harness.projection import DEFAULT_COSTS, CostError, Costs, costs_with, grow, line_throughput, parse_cost, project, slope_of
from stress.compare import PANELS, VIOLATION_MARKER, figure, plot
from tests.procs import CMD, stress, stress_given_its_time

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.race  # compare runs the free mode only: a row's counts (an mm exit within the run) and its harness verdict are the host's
def test_compare_prints_one_row_per_combination_and_writes_them_as_json(tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    args = ["compare", "--strategies", "refcount,luto-hazard", "--arches", "powerpc", "--cpus", "2,4", "--duration", "0.5"]
    args += ["--seed", "11", "--project", "64", "--json", str(out), "--plot", str(tmp_path / "c.png")]
    r = stress_given_its_time(*args, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "run 4/4" in r.stderr and "Traceback" not in r.stderr
    blocks = {b.splitlines()[0]: b.splitlines()[1:] for b in r.stdout.split("\n\n")}  # a block per scheme: its name, then its rows
    for scheme in ("refcount", "luto-hazard"):
        assert sum(1 for line in blocks[scheme] if line.split()[:1] == ["powerpc"]) == 2, r.stdout
    assert "MODEL" in r.stdout and "measured by the emulator" in r.stdout

    doc = json.loads(out.read_text())
    rows = doc["rows"]
    assert sorted((x["strategy"], x["arch"], x["cpus"]) for x in rows) == [
        ("luto-hazard", "powerpc", 2),
        ("luto-hazard", "powerpc", 4),
        ("refcount", "powerpc", 2),
        ("refcount", "powerpc", 4),
    ]
    assert doc["projection"]["cpus"] == 64 and doc["projection"]["costs_ns"] == {n: getattr(DEFAULT_COSTS, n) for n in Costs.names()}
    for x in rows:
        assert x["verdict"] == "clean" and x["seed"] == 11
        for key in ("mm_atomics_per_switch", "lazy_refcount_atomics_per_switch", "lock_wait_ns_per_switch", "switches_per_second"):
            assert key in x
        exits, switches = x["mm_exits"], x["context_switches"]
        assert exits > 0 and switches > 0
        # the per-exit and per-switch figures follow from the raw counters of the same run
        assert x["ipis_per_exit"] == pytest.approx(x["ipis_exit"] / exits, abs=1e-3)
        assert x["ipis_useful_per_exit"] == pytest.approx(x["ipis_useful"] / exits, abs=1e-3)
        assert x["ipis_wasted_per_exit"] == pytest.approx(x["ipis_wasted"] / exits, abs=1e-3)
        assert x["mm_atomics_per_switch"] == pytest.approx(x["mm_atomics"] / switches, abs=1e-4)
        assert x["lazy_refcount_atomics_per_switch"] == pytest.approx(x["lazy_refcount_atomics"] / switches, abs=1e-4)
        assert x["proj_cpus"] == 64 and x["proj_switches_per_second"] > 0
    hazard = [x for x in rows if x["strategy"] == "luto-hazard"]
    refcount = [x for x in rows if x["strategy"] == "refcount"]
    # the scan visits every CPU; refcount keeps no slots and takes a count for every lazy use
    assert all(x["cpus_scanned_per_exit"] == pytest.approx(x["cpus_scanned"] / x["mm_exits"], abs=1e-3) for x in hazard)
    assert all("cpus_scanned" not in x and x["lazy_refcount_atomics"] > 0 for x in refcount)
    assert all(x["lazy_refcount_atomics"] == 0 for x in hazard)
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG_MAGIC


@pytest.mark.race  # compare runs the free mode only: whether the run it draws is refused is the host's
def test_plot_alone_is_a_png(tmp_path: Path) -> None:
    png = tmp_path / "p.png"
    r = stress_given_its_time(
        "compare", "--strategies", "hazptr", "--arches", "arm64", "--cpus", "2", "--duration", "0.3", "--plot", str(png)
    )
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == PNG_MAGIC


def _row(strategy: str, arch: str, cpus: int, verdict: str) -> dict[str, object]:
    return {"strategy": strategy, "arch": arch, "cpus": cpus, "verdict": verdict, "shoot_all": False,
            **{key: float(cpus) + 0.5 * (verdict == "violation") for key, _ in PANELS}}  # fmt: skip


def test_the_plot_marks_violating_runs_with_their_own_marker(tmp_path: Path) -> None:
    from matplotlib.colors import to_rgba
    from matplotlib.markers import MarkerStyle

    rows = [_row("refcount", "x86", 2, "clean"), _row("refcount", "x86", 8, "violation"), _row("hazptr", "arm64", 2, "clean"),
            _row("hazptr", "arm64", 8, "clean")]  # fmt: skip
    fig = figure(rows, seed=1, duration=2.0)
    x = MarkerStyle(VIOLATION_MARKER)
    want = x.get_path().transformed(x.get_transform()).vertices
    assert len(fig.axes) == len(PANELS) * 2  # a column per arch, a row per measure
    x86 = fig.axes[0::2]
    for ax in x86:
        (marks,) = ax.collections  # one scatter: the violating point, and only it
        assert marks.get_offsets().tolist() == [[8.0, 8.5]]
        assert marks.get_paths()[0].vertices.ravel().tolist() == pytest.approx(want.ravel().tolist())
        assert tuple(marks.get_facecolor()[0]) == to_rgba("red")
        assert VIOLATION_MARKER not in {line.get_marker() for line in ax.lines}  # the lines keep their own markers
        assert len(ax.lines) == 1
    assert all(not ax.collections for ax in fig.axes[1::2])  # arm64's runs were clean
    legend = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    assert "violation or starved" in legend and "refcount" in legend and "hazptr" in legend
    plot(rows, str(tmp_path / "v.png"), 1, 2.0)
    assert (tmp_path / "v.png").read_bytes()[:8] == PNG_MAGIC
    clean = figure([r for r in rows if r["verdict"] == "clean"], seed=1, duration=2.0)
    assert all(not ax.collections for ax in clean.axes)
    assert "violation or starved" not in [t.get_text() for lg in clean.legends for t in lg.get_texts()]


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--cpus", "2,x"], "expected a whole number"),
        (["--cpus", "2,0"], "--cpus must be at least 1"),
        (["--strategies", "refcount,hazprt"], "did you mean 'hazptr'"),
        (["--arches", "x86,powerpcc"], "did you mean 'powerpc'"),
        (["--project", "0"], "--project must be between"),
        (["--project", "8", "--cost", "ipi_rtt=3000"], "did you mean 'ipi_rtt_ns=3000'"),
        (["--project", "8", "--cost", "ipi_rtt_ns=-5"], "must be between 0"),
        (["--project", "8", "--cost", "ipi_rtt_ns=fast"], "expected a number of nanoseconds"),
        (["--cost", "ipi_rtt_ns=3000"], "--cost prices the projection: add --project"),
        (["--plot", "out.svg"], "name it PATH.png"),
        (["--duration", "0"], "--duration must be a positive number"),
    ],
)
def test_bad_compare_input_is_one_line_with_status_2(args: list[str], expect: str) -> None:
    r = stress("compare", *args)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and expect in lines[0], r.stderr


@pytest.mark.race  # the signal lands in the second 0.5 s run only if the host runs this test in time: the host's
def test_ctrl_c_stops_and_prints_the_rows_done(tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    args = [*CMD, "compare", "--strategies", "refcount", "--arches", "x86", "--cpus", "2,2,2,2", "--duration", "0.5", "--json", str(out)]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    for line in p.stderr:  # the second run has started: the first row is done
        if "run 2/4" in line:
            break
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, stderr
    doc = json.loads(out.read_text())
    # the signal lands in run 2 (dropped: it was cut short) or just before it starts (kept: it ran whole)
    done = len(doc["rows"])
    assert doc["interrupted"] is True and done in (1, 2)
    assert f"interrupted after {done} of 4 runs" in stdout and "Traceback" not in stderr


# -- the model's arithmetic on fixed inputs ----------------------------------------------------


def test_line_throughput_is_mean_value_analysis() -> None:
    # one CPU: private work then the line, no queue
    assert line_throughput(1, 1600, [400]) == pytest.approx(1e9 / 2000)
    # no shared line: every CPU runs free
    assert line_throughput(192, 1600, [0]) == pytest.approx(192 / 1600e-9)
    # two CPUs by hand: R1 = 400, X1 = 1/2000, Q1 = 0.2; R2 = 400*1.2 = 480, X2 = 2/2080
    assert line_throughput(2, 1600, [400]) == pytest.approx(2 / 2080e-9)
    # many CPUs: the line's ceiling, one transfer at a time
    assert line_throughput(192, 1600, [400]) == pytest.approx(1 / 400e-9, rel=1e-6)
    # two lines: the busier one sets the ceiling
    assert line_throughput(1000, 1600, [400, 100]) == pytest.approx(1 / 400e-9, rel=1e-3)


def test_projection_prices_the_counts() -> None:
    m = {
        "context_switches": 1000,
        "mm_exits": 10,
        "mm_atomics_per_switch": 0.5,
        "lazy_refcount_atomics_per_switch": 0.25,
        "ipis_per_exit": 2.0,
        "cpus_scanned_per_exit": 4.0,
        "remote_slot_reads_per_exit": 3.0,
    }
    c = Costs(switch_ns=1000, line_transfer_ns=200, ipi_rtt_ns=2000, remote_read_ns=100, scan_ns=10)
    same = project(m, 4, 4, c)
    assert same.exit_ns == pytest.approx(2 * 2000 + 4 * 10 + 3 * 100)
    think = 1000 + 0.01 * same.exit_ns
    assert same.switches_per_second == pytest.approx(line_throughput(4, think, [0.25 * 200, 0.25 * 200]))
    # per-exit counts grow with the machine along the measured slope: linear doubles, flat stays
    assert project(m, 4, 8, c, {"ipis_per_exit": 1.0}).exit_ns == pytest.approx(2 * same.exit_ns)
    flat = {"ipis_per_exit": 0.0, "cpus_scanned_per_exit": 0.0, "remote_slot_reads_per_exit": 0.0}
    assert project(m, 4, 8, c, flat).exit_ns == pytest.approx(same.exit_ns)
    # a count the scheme does not keep costs nothing
    assert project({"context_switches": 10}, 2, 2, c).exit_ns == 0.0


def test_slopes_growth_and_cost_overrides() -> None:
    assert slope_of([(8, 8.0), (32, 32.0)]) == pytest.approx(1.0)
    assert slope_of([(2, 3.0), (8, 3.0), (32, 3.0)]) == pytest.approx(0.0)
    assert slope_of([(8, 2.0), (32, 4.0)]) == pytest.approx(0.5)
    assert slope_of([(8, 2.0)]) == 1.0
    assert grow(3.0, 4, 16, 0.5) == pytest.approx(6.0)
    assert parse_cost("ipi_rtt_ns=3000") == ("ipi_rtt_ns", 3000.0)
    assert costs_with({"ipi_rtt_ns": 3000.0}).ipi_rtt_ns == 3000.0 and costs_with({}) == DEFAULT_COSTS
    for bad in ("ipi_rtt_ns", "nope=1", "ipi_rtt_ns=nan", "ipi_rtt_ns=-1", "ipi_rtt_ns=1e30"):
        with pytest.raises(CostError):
            parse_cost(bad)
    assert math.isfinite(project({"context_switches": 1}, 1, 100_000).switches_per_second)


# refcount under another name, in a file outside the repository
MY_REFCOUNT = """
from emu.strategies.refcount import Refcount


class MyRefcount(Refcount):
    name = "my-refcount"
    summary = "refcount, out of tree"
    source = "a test"
    cells = ()
"""
MY_ARCH = """
from emu.arch.powerpc import Powerpc


class MyPowerpc(Powerpc):
    name = "my-powerpc"
    summary = "powerpc, out of tree"
    source = "a test"
    cells = ()
"""


@pytest.mark.race  # compare runs the free mode only: its rows' counts and verdicts are the host's
def test_compare_takes_schemes_and_arches_by_spec_as_run_does(tmp_path: Path) -> None:
    mine = tmp_path / "mine.py"
    mine.write_text(MY_REFCOUNT)
    out = tmp_path / "c.json"
    (tmp_path / "arch.py").write_text(MY_ARCH)
    spec, arch = f"{mine}:MyRefcount", f"{tmp_path / 'arch.py'}:MyPowerpc"
    args = ["compare", "--strategies", f"refcount,{spec}", "--arches", f"x86,{arch}", "--cpus", "2"]
    r = stress_given_its_time(*args, "--duration", "0.5", "--seed", "3", "--json", str(out), timeout=120)
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())["rows"]
    assert sorted((x["strategy"], x["arch"]) for x in rows) == sorted((s, a) for s in ("refcount", spec) for a in ("x86", arch))
    assert all(x["verdict"] == "clean" for x in rows), rows
    assert spec in r.stdout.split("\n\n")[1].splitlines()[0]  # its block, under its spec


def test_compare_refuses_a_bad_spec_in_one_line(tmp_path: Path) -> None:
    r = stress("compare", "--strategies", f"refcount,{tmp_path}/none.py:Mine", "--cpus", "2", "--duration", "0.5")
    assert r.returncode == 2 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1 and "none.py" in r.stderr
    r = stress("compare", "--arches", "x86,no_such_package.arch:Mine", "--cpus", "2", "--duration", "0.5")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "no_such_package" in r.stderr
