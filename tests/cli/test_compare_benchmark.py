"""``stress compare --benchmark``: the JSON other tools read, the table, the plot, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emu.harness.bench_projection import load_machine
from tests.procs import stress

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_the_json_has_a_row_per_scheme_and_task_count_and_the_table_the_ratio_to_the_first(tmp_path: Path) -> None:
    out, png = tmp_path / "b.json", tmp_path / "b.png"
    args = ["compare", "--benchmark", "context_switch1_threads", "--machine", "epyc-9654-2s", "--tasks", "2,192,768"]
    args += ["--strategies", "refcount,hazptr", "--json", str(out), "--plot", str(png)]
    r = stress(*args, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "MODEL" in r.stdout
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "context_switch1_threads" and doc["machine"] == "epyc-9654-2s" and doc["arch"] == "x86"
    rows = doc["rows"]
    assert [(x["strategy"], x["tasks"]) for x in rows] == [(s, t) for t in (2, 192, 768) for s in ("refcount", "hazptr")]
    for x in rows:
        assert isinstance(x["ops_per_s"], int) and x["ops_per_s"] > 0
        first = next(y for y in rows if y["tasks"] == x["tasks"])
        assert x["ratio_to_first"] == pytest.approx(x["ops_per_s"] / first["ops_per_s"], rel=1e-3)
        line = next(ln for ln in r.stdout.splitlines() if ln.split()[:2] == [x["strategy"], str(x["tasks"])])
        assert f"{x['ops_per_s']:,}" in line and f"{x['ratio_to_first']:.3f}" in line
    assert {k for k in doc["machine_constants"]} == set(load_machine("epyc-9654-2s").values)
    assert len(doc["published"]) == 11  # the RFC's curve, printed beside the predictions
    assert "published (epyc-9654-2s) beside the prediction" in r.stdout
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_without_tasks_the_published_run_is_predicted(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    r = stress("compare", "--benchmark", "tlb_flush2_threads", "--machine", "milan-36", "--strategies", "refcount",
               "--json", str(out), "--quiet", timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [x["tasks"] for x in rows] == [load_machine("milan-36").published_tasks]
    assert r.stderr == ""  # --quiet: no progress lines


def test_invlpgb_prices_broadcasts_where_v6_14_pays_ipis_and_is_set_beside_the_invlpgb_figures(tmp_path: Path) -> None:
    docs = {}
    for arch in ("x86-v6.14", "x86-invlpgb"):
        out = tmp_path / f"{arch}.json"
        r = stress("compare", "--benchmark", "tlb_flush2_threads", "--machine", "milan-36", "--arch", arch,
                   "--strategies", "refcount", "--json", str(out), "--quiet", timeout=300)  # fmt: skip
        assert r.returncode == 0, r.stderr
        docs[arch] = json.loads(out.read_text())
    old, new = (docs[a]["rows"][0] for a in ("x86-v6.14", "x86-invlpgb"))
    # a flush of the live mm per iteration: IPIs to the other CPUs on v6.14, one INVLPGB once the mm has a global ASID
    assert old["counts"]["ipis"] >= 0.99 and old["counts"]["broadcasts"] == 0
    assert new["counts"]["ipis"] == 0 and new["counts"]["broadcasts"] >= 0.99
    assert new["flush_share"] < old["flush_share"] and new["ops_per_s"] > old["ops_per_s"]
    assert docs["x86-invlpgb"]["machine_constants"]["broadcast_flush_ns"]["source"]
    assert sorted(q["ops_per_s"] or 0 for q in docs["x86-invlpgb"]["published"]) == [0, 527e3]
    assert sorted(q["ops_per_s"] or 0 for q in docs["x86-v6.14"]["published"]) == [0, 527e3]
    # the mainline kernel's lru_add_drain() takes the lru_lock twice an iteration: with the IPIs gone it binds
    assert (new["bound"], new["busiest_line"]) == ("line", "lru_lock") and new["line_ns"]["lru_lock"] > 0


def test_the_lru_add_drain_removal_is_a_machine_variant_set_beside_the_series_runs_without_it(tmp_path: Path) -> None:
    """milan-36-nodrain is the kernel with van Riel's removal: its runs are the 731k (alone) and 1157k (with
    INVLPGB) of the series, and the lru_lock's transfers an iteration fall by the batch size."""
    docs = {}
    for machine in ("milan-36", "milan-36-nodrain"):
        out = tmp_path / f"{machine}.json"
        r = stress("compare", "--benchmark", "tlb_flush2_threads", "--machine", machine, "--arch", "x86-invlpgb",
                   "--strategies", "refcount", "--json", str(out), "--quiet", timeout=300)  # fmt: skip
        assert r.returncode == 0, r.stderr
        docs[machine] = json.loads(out.read_text())
    drain, nodrain = (docs[m]["rows"][0] for m in ("milan-36", "milan-36-nodrain"))
    assert nodrain["line_ns"]["lru_lock"] == pytest.approx(drain["line_ns"]["lru_lock"] / 31, rel=1e-3)
    assert nodrain["ops_per_s"] > drain["ops_per_s"] and nodrain["busiest_line"] != "lru_lock"
    assert [q["ops_per_s"] for q in docs["milan-36-nodrain"]["published"]] == [1157e3]
    assert docs["milan-36-nodrain"]["published_as"] == "milan-36"


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--benchmark", "context_switch2", "--machine", "milan-36"], "unknown benchmark"),
        (["--benchmark", "hackbench", "--machine", "power9"], "unknown machine"),
        (["--benchmark", "hackbench", "--machine", "milan-36", "--tasks", "0"], "--tasks must be between"),
        (["--benchmark", "hackbench", "--machine", "milan-36", "--tasks", "2,x"], "--tasks"),
        (["--benchmark", "hackbench"], "--benchmark needs --machine"),
        (["--machine", "milan-36"], "--machine needs --benchmark"),
        (["--benchmark", "hackbench", "--machine", "milan-36", "--cpus", "2"], "--cpus belongs to"),
        (["--benchmark", "hackbench", "--machine", "milan-36", "--arch", "sparc"], "unknown architecture"),
        (["--benchmark", "hackbench", "--machine", "milan-36", "--plot", "x.svg"], "PNG"),
    ],
)
def test_bad_input_is_one_line_and_status_2(args: list[str], expect: str) -> None:
    r = stress("compare", *args, timeout=60)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and expect in lines[0], r.stderr


def test_a_fitted_variant_says_its_published_figures_are_no_check() -> None:
    from emu.harness.bench_projection import compare_benchmark
    from stress.compare_benchmark import render

    variant = compare_benchmark("context_switch1_threads", "epyc-9654-2s-mglru", [384], ["refcount"])
    text = render(variant)
    assert "published (epyc-9654-2s) beside the prediction" in text and "FITTED here: lru_gen_store" in text
    assert variant.to_json()["fitted"] == ["lru_gen_store"] and variant.to_json()["published_as"] == "epyc-9654-2s"
    assert len(variant.to_json()["published"]) == 11  # the RFC's curve, though this is not its machine file
    plain = compare_benchmark("context_switch1_threads", "epyc-9654-2s", [384], ["refcount"])
    assert "FITTED" not in render(plain) and plain.to_json()["fitted"] == []
    # the one difference is the lru_gen line: at two tasks a CPU (no lazy transition) it bounds the variant
    assert variant.rows[0].bound == "line" and plain.rows[0].bound == "cpu"


def test_the_plot_marks_each_published_figure_of_the_schemes_shown() -> None:
    from emu.harness.bench_projection import compare_benchmark
    from stress.compare_benchmark import figure

    cmp = compare_benchmark("context_switch1_threads", "power8-192", [768], ["refcount", "shoot-lazies"])
    fig = figure(cmp)
    ax, rx = fig.axes
    stars = [c for c in ax.collections if len(c.get_offsets()) and c.get_offsets()[0][0] == 768]
    assert sorted(c.get_offsets()[0][1] for c in stars) == [1.0e6, 1_827_952, 118e6]  # Piggin's figures at -t 768
    assert [line.get_label() for line in ax.get_lines()] == ["refcount (model)", "shoot-lazies (model)"]
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_another_seed_schedules_the_emulated_runs_otherwise_but_keeps_their_shape(tmp_path: Path) -> None:
    out = {}
    for seed in ("1", "7"):
        path = tmp_path / f"s{seed}.json"
        r = stress("compare", "--benchmark", "context_switch1_threads", "--machine", "power8-192", "--strategies", "refcount",
                   "--seed", seed, "--json", str(path), "--quiet", timeout=300)  # fmt: skip
        assert r.returncode == 0, r.stderr
        out[seed] = json.loads(path.read_text())["rows"][0]
    a, b = (out[s]["counts"]["per_op"] for s in ("1", "7"))
    assert a != b  # a different schedule
    assert a["lazy_switches"] == pytest.approx(b["lazy_switches"], abs=0.05)  # the same benchmark
