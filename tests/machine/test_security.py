"""The segment is private to the user and checked on attach; nothing is unpickled; the JSON report
is the only file a run writes."""

from __future__ import annotations

import ast
import os
import stat
from pathlib import Path

import pytest

from emu.machine.layout import H_MAGIC, H_RUN_ID
from emu.machine.shm import SHM_DIR, Segment, SegmentError
from tests.procs import stress

ROOT = Path(__file__).parent.parent.parent


def test_the_segment_is_mode_0600_whatever_the_umask() -> None:
    old = os.umask(0)
    try:
        seg = Segment(4096)
    finally:
        os.umask(old)
    try:
        mode = os.stat(os.path.join(SHM_DIR, seg.name)).st_mode
        assert stat.S_IMODE(mode) == 0o600 and os.stat(os.path.join(SHM_DIR, seg.name)).st_uid == os.getuid()
    finally:
        seg.unlink()


@pytest.mark.parametrize("word", [H_MAGIC, H_RUN_ID])
def test_a_cpu_refuses_a_segment_that_is_not_its_runs(word: int) -> None:
    seg = Segment(4096)
    try:
        seg.check()
        seg.words[word] ^= 1
        with pytest.raises(SegmentError, match="not this run's"):
            seg.check()
    finally:
        seg.unlink()


def test_nothing_is_unpickled() -> None:
    """No module of the tool imports a deserializer of code-carrying formats. (emu/harness/testbed.py, the
    test machine, gets results back from its CPUs over a pipe: it is not part of a run.)"""
    banned = {"pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle"}
    for path in [*ROOT.glob("emu/**/*.py"), *ROOT.glob("stress/**/*.py")]:
        if path.name == "testbed.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not {n.split(".")[0] for n in names} & banned, f"{path}: imports {names}"
            if isinstance(node, ast.Attribute):
                assert node.attr not in {"Queue", "SimpleQueue", "Manager", "Pipe", "recv", "allow_pickle"}, f"{path}: {node.attr}"


@pytest.mark.parametrize("json_name", [None, "report.json"])
def test_the_json_report_is_the_only_file_written(tmp_path: Path, json_name: str | None) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # deterministic: the run is never refused for want of time, on any host
    args = ["run", "--cpus", "2", "--sched", "random", "--steps", "5000", "--quiet"] + (["--json", json_name] if json_name else [])
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(home)}
    r = stress(*args, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == ([json_name] if json_name else [])
