"""``hunt --db`` and ``stress findings``: every run recorded, a campaign resumed, findings printed;
``--executor ray`` refused in one line where Ray is not installed."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

CMD = [sys.executable, "-m", "stress"]
DET = ["--sched", "pct", "--steps", "50000", "--cpus", "3", "--seed", "1", "--budget", "300s", "--jobs", "2", "--quiet"]


def stress(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=240, env=env)


def rows(db: Path) -> list[tuple[int, int, str]]:
    with sqlite3.connect(db) as c:
        return list(c.execute("SELECT campaign, seed, verdict FROM runs ORDER BY id"))


def test_a_campaign_resumes_without_rerunning_its_seeds_and_findings_show_the_reproducer(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    first = stress("hunt", "--mutant", "refcount-no-grab", *DET, "--runs", "2", "--db", str(db), "--shrink-budget", "10")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "findings: 1 signature(s), 1 reproducer(s) shrunk now" in first.stdout
    again = stress("hunt", "--mutant", "refcount-no-grab", *DET, "--runs", "3", "--db", str(db), "--shrink-budget", "10")
    assert again.returncode == 0, again.stdout + again.stderr
    got = rows(db)
    assert [c for c, _, _ in got] == [1, 1, 2]  # the second campaign ran one run: the third
    assert len({s for _, s, _ in got}) == 3 and {v for _, _, v in got} == {"violation"}
    assert "0 reproducer(s) shrunk now" in again.stdout  # the finding had its reproducer already

    page = tmp_path / "findings.html"
    shown = stress("findings", str(db), "--html", str(page), "--replays", str(tmp_path / "replays"))
    assert shown.returncode == 1, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "FINDINGS: 1 signature(s) in 3 violating run(s) of 3, 2 campaign(s)"
    assert lines[2].startswith("freed_while_lazy in __mmdrop: ") and "3 run(s) in campaign(s) 1, 2" in lines[3]
    replay = next(line.split("--replay ", 1)[1] for line in lines if line.strip().startswith("replay: "))
    assert Path(replay).parent == tmp_path / "replays"
    assert stress("run", "--replay", replay, "--quiet").returncode == 1  # the reproducer fails as recorded
    html = page.read_text()
    assert html.count("<svg") == 1 and "VIOLATION freed_while_lazy" in html


def test_findings_of_a_clean_campaign_say_so_first(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    assert stress("hunt", "--strategy", "refcount", *DET, "--runs", "2", "--db", str(db)).returncode == 0
    shown = stress("findings", str(db), "--json", "-")
    assert shown.returncode == 0
    assert shown.stderr.startswith("NO FINDINGS: signature(s) in 0 violating run(s) of 2, 1 campaign(s)")
    doc = json.loads(shown.stdout)
    assert doc["findings"] == [] and doc["runs"] == 2


@pytest.mark.parametrize(
    "args",
    [
        ["hunt", "--address", "127.0.0.1:1"],
        ["hunt", "--cell", "refcount@x86"],
        ["hunt", "--matrix", "--cell", "refcount@nowhere"],
        ["hunt", "--shrink-budget", "5"],
        ["findings", "no-such.db"],
    ],
)
def test_bad_campaign_input_is_one_line(args: list[str]) -> None:
    r = stress(*args)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr


def test_a_file_that_is_no_database_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_text("not sqlite\n" * 100)
    r = stress("findings", str(bad))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "not a campaign database" in r.stderr


def test_executor_ray_without_ray_says_so_in_one_line(tmp_path: Path) -> None:
    # a ray that cannot be imported, first on the path: as where the cluster extra is not installed
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text("raise ImportError('no ray here')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    r = stress("hunt", "--executor", "ray", "--strategy", "refcount", "--runs", "1", env=env)
    assert r.returncode == 2 and r.stderr.strip() == 'stress: error: --executor ray needs Ray: pip install ".[cluster]"'
