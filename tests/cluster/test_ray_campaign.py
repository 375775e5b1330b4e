"""A campaign on a real two-node Ray cluster, started as a user would: ``ray start --head``, then
``ray start --address`` for a second node with resources of its own, then ``hunt --executor ray``.

Run by ``.ci/run``'s cluster stage (``-m cluster``); skipped where Ray (the ``cluster`` extra) is
not installed. Each test's cluster has its own temporary directory and ports chosen by the OS
(``--port=0``, ``--dashboard-port=0``...), so that several run side by side under ``pytest -n``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from emu.harness.campaign import CampaignDB
from emu.harness.findings import group, signature
from emu.machine.shm import PREFIX, SHM_DIR
from tests.procs import CMD, poll

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[2]
START_S = 180  # a node's start-up on a loaded 2-core host (about 3 s idle, 15 s under the suite's load)


@dataclass
class Cluster:
    address: str
    tmp: str
    starts: list[subprocess.Popen[bytes]]
    env: dict[str, str]

    def sessions(self) -> set[int]:
        return {p.pid for p in self.starts}


def ray_start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    ray = shutil.which("ray", path=os.path.dirname(sys.executable)) or "ray"
    with open(log, "wb") as out:
        # --block: the node's processes live as long as this command, and a SIGTERM to it stops them all
        return subprocess.Popen([ray, "start", *args, "--block"], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def in_sessions(sids: set[int]) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) in sids:
                out.append(p)
        except (OSError, psutil.Error):
            pass
    return out


def shm_names() -> set[str]:
    """/dev/shm's names but POSIX semaphores' (``sem.*``): the emulator unlinks its own at birth
    (tests/harness/test_faults.py checks it), and on a shared host a name there may be anyone's."""
    return {n for n in os.listdir(SHM_DIR) if not n.startswith("sem.")}


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    pytest.importorskip("ray")
    # a short path: Ray's unix sockets live under it, and a socket's path has at most 107 characters
    tmp = tempfile.mkdtemp(prefix="lzray", dir="/tmp")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])), RAY_USAGE_STATS_ENABLED="0")
    # token authentication with a token of this cluster's own: not ~/.ray/auth_token, which a local
    # ray.init() writes and a `ray start` without RAY_AUTH_MODE then follows
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    common = ["--num-cpus=1", "--object-store-memory=80000000", "--dashboard-agent-listen-port=0", "--disable-usage-stats"]
    starts: list[subprocess.Popen[bytes]] = []
    try:
        head = ray_start(["--head", "--port=0", f"--temp-dir={tmp}", "--include-dashboard=false", "--dashboard-port=0", *common], env,
                         Path(tmp) / "head.log")  # fmt: skip
        starts.append(head)
        address_file = Path(tmp) / "ray_current_cluster"
        poll(lambda: address_file.exists() and address_file.read_text().strip() or head.poll() is not None, START_S, "the head node")
        assert head.poll() is None, (Path(tmp) / "head.log").read_text()[-2000:]
        address = address_file.read_text().strip()
        node = ray_start([f"--address={address}", '--resources={"second_node": 1}', *common], env, Path(tmp) / "node.log")
        starts.append(node)
        node_log = Path(tmp) / "node.log"
        poll(lambda: "--block" in node_log.read_text() or node.poll() is not None, START_S, "the second node")
        assert node.poll() is None, node_log.read_text()[-2000:]
        yield Cluster(address, tmp, starts, env)
    finally:
        sids = {p.pid for p in starts}
        for p in starts:  # as `ray stop` would, but only this cluster's
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in starts:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        left = in_sessions(sids)
        for p in left:
            p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
        assert left == [], f"the cluster left processes behind: {left}"


def test_a_campaign_on_a_two_node_cluster_records_every_run_and_one_finding(cluster: Cluster, tmp_path: Path) -> None:
    shm_before = shm_names()
    db, out = tmp_path / "campaign.db", tmp_path / "hunt.json"
    cells = ["--matrix", "--cell", "shoot-lazies@arm64", "--cell", "refcount@arm64"]
    r = subprocess.run(
        [*CMD, "hunt", "--executor", "ray", "--address", cluster.address, *cells, "--sched", "pct", "--runs", "4", "--budget", "600",
         "--db", str(db), "--shrink-budget", "15", "--json", str(out), "--quiet"],
        capture_output=True, text=True, timeout=540, env=cluster.env,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(out.read_text())["all_held"] is True

    # the database has every run, and the runs landed on both nodes
    store = CampaignDB(str(db))
    rows, reproducers = store.rows(), store.reproducers()
    store.close()
    assert (
        sorted((row["target"], row["verdict"]) for row in rows)
        == [("refcount@arm64", "clean")] * 4 + [("shoot-lazies@arm64", "violation")] * 4
    )
    assert len({row["node"] for row in rows}) == 2, [row["node"] for row in rows]
    assert len({row["seed"] for row in rows}) == 8

    # the broken cell's violations are one finding, whose shrunk reproducer replays to the same violation
    findings = group(rows, reproducers)
    assert [(f.count, sorted({run["target"] for run in f.runs})) for f in findings] == [(4, ["shoot-lazies@arm64"])]
    f = findings[0]
    assert f.reproducer is not None
    shown = subprocess.run([*CMD, "findings", str(db), "--json", "-", "--replays", str(tmp_path / "replays")], capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    assert shown.returncode == 1, shown.stderr
    doc = json.loads(shown.stdout)
    assert [x["signature"] for x in doc["findings"]] == [f.signature.key]
    replayed = tmp_path / "replayed.json"
    again = subprocess.run([*CMD, "run", "--replay", doc["findings"][0]["replay"], "--quiet", "--json", str(replayed)], capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert again.returncode == 1, again.stderr
    sig = signature(json.loads(replayed.read_text()))
    assert sig is not None and sig.key == f.signature.key

    # nothing of the runs is left on either node: no new segment in /dev/shm (Ray's own store's included)
    # but a live run's of another test (its creator alive, outside this cluster's sessions)
    assert [n for n in shm_names() - shm_before if not other_live_run(n, cluster.sessions())] == []


def other_live_run(name: str, sessions: set[int]) -> bool:
    if not name.startswith(PREFIX):
        return False
    try:
        return os.getsid(int(name[len(PREFIX) :].split("_")[0])) not in sessions
    except (OSError, ValueError):
        return False
