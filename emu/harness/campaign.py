"""A campaign's runs: the small record each run leaves, where runs execute, and the database.

Each seeded run is a ``python -m stress run`` process, in a session of its own, wherever it runs:
on this machine (``stress hunt``'s local executor) or on a node of a Ray cluster, as the
subprocess of a Ray task (``RayExecutor``). The run writes its full JSON report to a temporary
file on its node; what comes back is ``summarize``'s small record: the verdict, the kinds, the
timings, the signature of the violation and, for a deterministic violating run, the replay (its
configuration, schedule and story: a few kilobytes, where the report is a hundred and more).

``CampaignDB`` keeps them in SQLite: one row per run, so that a campaign can be stopped and
resumed without rerunning finished seeds (a run is its configuration's rerun command and seed),
and campaigns recorded in one file can be compared.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emu.harness.events import to_json as events_to_json
from emu.harness.findings import signature, story
from emu.machine.shm import sweep_stale

# Ray's object store lives in /dev/shm beside the emulator's segments; the records are small, so
# its smallest size will do (Ray refuses less than 75 MiB: ray_constants.OBJECT_STORE_MINIMUM_MEMORY_BYTES)
OBJECT_STORE_BYTES = 80 * 1024 * 1024
RUN_GRACE_S = 30.0  # a run passed a SIGINT drains and reports within this, or is killed
REPORT_KEYS = ("config", "schedule", "setup_digest", "verdict", "violation_counts")


def summarize(report: dict[str, Any], wall_s: float, node: str) -> dict[str, Any]:
    """The small record of one run's report: what the campaign keeps of it."""
    cfg = report.get("config", {})
    metrics = report.get("metrics", {})
    sig = signature(report)
    replay = None
    if report.get("verdict") == "violation" and isinstance(report.get("schedule"), dict):
        # the replay file: enough for `run --replay` and `stress shrink`, and the story to show
        events = story(report)
        replay = {k: report[k] for k in REPORT_KEYS if k in report}
        replay["violations"] = report["violations"][:5]
        replay["metrics"] = {k: metrics.get(k) for k in ("first_violation_step", "first_violation_s")}
        replay["events"] = events_to_json([events])
    return {
        "verdict": report.get("verdict", "harness_failure"),
        "kinds": dict(report.get("violation_counts", {})),
        "first_violation_s": metrics.get("first_violation_s"),
        "first_violation_step": metrics.get("first_violation_step"),
        "mode": str(cfg.get("sched", "free")),
        "wall_s": round(wall_s, 4),
        "node": node,
        "error": (report.get("harness") or {}).get("error"),
        "signature": sig.to_dict() if sig else None,
        "replay": replay,
    }


def failed(error: str, wall_s: float, node: str, mode: str) -> dict[str, Any]:
    """The record of a run that left no report (it crashed, or could not start)."""
    return {"verdict": "harness_failure", "kinds": {}, "first_violation_s": None, "first_violation_step": None, "mode": mode,
            "wall_s": round(wall_s, 4), "node": node, "error": error, "signature": None, "replay": None, "no_report": True}  # fmt: skip


def _end_session(p: subprocess.Popen[bytes]) -> None:
    """Kill whatever the run left in its session (its CPU processes, if it crashed), then unlink
    the segments of creators that are gone: on this node, nothing of the run outlives it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGKILL)
    if p.poll() is None:
        p.kill()
    p.wait()
    sweep_stale()


def _prctl() -> Any:
    """libc's prctl, looked up before the fork (the child of a threaded Ray worker must not import)."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


PR_SET_PDEATHSIG = 1


def _die_with_parent(prctl: Any) -> Callable[[], None]:
    """For the run's process before it execs: a SIGKILL when the task's worker dies (Linux's
    PR_SET_PDEATHSIG), as when Ray kills a cancelled task's worker; nothing where there is no prctl."""

    def set_it() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return set_it


def run_one(args: list[str], node: str, timeout_s: float) -> dict[str, Any]:
    """Run ``python -m stress run ARGS`` here and return its record (the body of a Ray task).

    The run is a subprocess in a session of its own, never a fork of the caller; a Ctrl-C of the
    caller (Ray's cancel raises KeyboardInterrupt in the task) is passed to it as one SIGINT, so
    that it drains and reports, and that report is returned. Whatever happens, its session is killed
    and stale segments swept."""
    mode = args[args.index("--sched") + 1] if "--sched" in args else "free"
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lazytlb-task-") as tmp:
        out, err_path = os.path.join(tmp, "run.json"), os.path.join(tmp, "run.err")
        argv = [sys.executable, "-m", "stress", "run", *args, "--quiet", "--json", out]
        with open(err_path, "wb") as err:
            p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True, preexec_fn=_die_with_parent(_prctl()))
        try:
            try:
                p.wait(timeout=timeout_s)
            except KeyboardInterrupt:  # its report, drained, is the task's result
                p.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=RUN_GRACE_S)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=RUN_GRACE_S)
        finally:
            _end_session(p)
        wall = time.monotonic() - t0
        try:
            with open(out, encoding="utf-8") as f:
                report = json.load(f)
        except (OSError, ValueError):
            with open(err_path, errors="replace") as f:
                lines = f.read().strip().splitlines()
            return failed(f"no report (status {p.returncode}): {lines[-1] if lines else 'no output'}", wall, node, mode)
    return summarize(report, wall, node)


def ray_task(args: list[str], timeout_s: float) -> dict[str, Any]:
    """``run_one`` on the Ray node that runs this task, named by its node id."""
    import ray

    return run_one(args, ray.get_runtime_context().get_node_id(), timeout_s)


class RayUnavailable(Exception):
    """Ray is not installed (the ``cluster`` extra), or the cluster cannot be reached."""


class RayExecutor:
    """Runs on a Ray cluster: the one at ``address``, or a local one started here and stopped at ``close``.

    Each run is one task reserving ``num_cpus`` (the emulated CPUs of a free-running run, each a
    spinning process; one for a deterministic run, whose CPUs take turns), with no retries: a run
    that fails is a finding, not a fault to hide by running it again."""

    def __init__(self, address: str | None, num_cpus: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise RayUnavailable('--executor ray needs Ray: pip install ".[cluster]"') from None
        self.ray = ray
        self.started = address is None
        try:
            if address is None:
                # "local": a new cluster here, even where a `ray start` (or RAY_ADDRESS) left one that
                # ray.init() would join instead, refusing num_cpus there
                ray.init(address="local", num_cpus=num_cpus, object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False,
                         log_to_driver=False, configure_logging=False)  # fmt: skip
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            where = "--executor ray: cannot start a Ray cluster here"
            if address:
                where = f"--address {address}: cannot join the Ray cluster there"
            raise RayUnavailable(f"{where}: {first}") from None
        self.remote = ray.remote(ray_task)
        self.pending: dict[Any, Any] = {}

    def cpus(self) -> int:
        """The cluster's CPUs, all nodes together."""
        return int(self.ray.cluster_resources().get("CPU", 1))

    def largest_node_cpus(self) -> int:
        return max((int(n["Resources"].get("CPU", 0)) for n in self.ray.nodes() if n.get("Alive")), default=1)

    def submit(self, key: Any, args: list[str], num_cpus: int, timeout_s: float) -> None:
        ref = self.remote.options(num_cpus=min(num_cpus, self.largest_node_cpus()), max_retries=0).remote(args, timeout_s)
        self.pending[ref] = key

    def wait(self, timeout: float) -> list[tuple[Any, dict[str, Any]]]:
        """The runs finished within ``timeout`` seconds: (key, record) each."""
        if not self.pending:
            return []
        done, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=timeout)
        if done:  # whatever else is ready too
            done, _ = self.ray.wait(list(self.pending), num_returns=len(self.pending), timeout=0)
        out = []
        for ref in done:
            key = self.pending.pop(ref)
            try:
                out.append((key, self.ray.get(ref)))
            except self.ray.exceptions.TaskCancelledError:
                out.append((key, failed("cancelled", 0.0, "", "")))
            except self.ray.exceptions.RayError as e:  # the worker or its node died: the run's record is lost
                out.append((key, failed(f"the Ray task failed: {str(e).splitlines()[0]}", 0.0, "", "")))
        return out

    def interrupt(self) -> None:
        """Pass a Ctrl-C to every run in flight: each task passes one SIGINT to its run."""
        for ref in self.pending:
            with contextlib.suppress(Exception):
                self.ray.cancel(ref, force=False)

    def kill(self) -> None:
        """Stop the tasks still in flight (their workers are killed: each run dies with its worker)."""
        for ref in self.pending:
            with contextlib.suppress(Exception):
                self.ray.cancel(ref, force=True)
        self.pending.clear()

    def close(self) -> None:
        self.ray.shutdown()


SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    id INTEGER PRIMARY KEY, started TEXT NOT NULL, executor TEXT NOT NULL, command TEXT NOT NULL, seed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    campaign INTEGER NOT NULL REFERENCES campaigns(id),
    target TEXT NOT NULL,             -- the configuration's name (a matrix cell's id)
    config TEXT NOT NULL,             -- its RunConfig, as JSON (seed 0)
    config_key TEXT NOT NULL,         -- its rerun command with seed 0: what a resume matches
    seed INTEGER NOT NULL,
    mode TEXT NOT NULL,               -- free, pct or random
    expect TEXT NOT NULL,
    verdict TEXT NOT NULL,            -- clean, violation, harness_failure
    kinds TEXT NOT NULL,              -- violation kind -> count, JSON
    first_violation_s REAL,
    first_violation_step INTEGER,
    wall_s REAL NOT NULL,
    node TEXT NOT NULL,
    command TEXT NOT NULL,            -- the rerun command of this run
    replay TEXT,                      -- a deterministic violating run's replay file, JSON
    signature TEXT,                   -- emu.harness.findings.Signature, JSON
    sig_key TEXT,
    error TEXT,
    finished TEXT NOT NULL,
    UNIQUE (config_key, seed)
);
CREATE TABLE IF NOT EXISTS reproducers (
    sig_key TEXT PRIMARY KEY,
    run INTEGER NOT NULL REFERENCES runs(id),  -- the run it was shrunk from
    replay TEXT NOT NULL,             -- the shrunk run's report, JSON: `run --replay` takes it
    cpus INTEGER NOT NULL, steps INTEGER NOT NULL, handovers INTEGER NOT NULL, kind TEXT NOT NULL
);
"""


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class CampaignDB:
    path: str

    def __post_init__(self) -> None:
        self.db = sqlite3.connect(self.path)
        self.db.row_factory = sqlite3.Row
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def start(self, executor: str, command: str, seed: int) -> int:
        with self.db:
            cur = self.db.execute(
                "INSERT INTO campaigns (started, executor, command, seed) VALUES (?, ?, ?, ?)", (now(), executor, command, seed)
            )
        return int(cur.lastrowid or 0)

    def add(self, campaign: int, target: str, config: dict[str, Any], config_key: str, seed: int, expect: str, command: str,
            rec: dict[str, Any]) -> None:  # fmt: skip
        sig = rec.get("signature")
        sig_key = None
        if sig:
            from emu.harness.findings import Signature

            sig_key = Signature.from_dict(sig).key
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO runs (campaign, target, config, config_key, seed, mode, expect, verdict, kinds, first_violation_s, "
                "first_violation_step, wall_s, node, command, replay, signature, sig_key, error, finished) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (campaign, target, json.dumps(config, sort_keys=True), config_key, seed, rec["mode"], expect, rec["verdict"],
                 json.dumps(rec["kinds"], sort_keys=True), rec["first_violation_s"], rec["first_violation_step"], rec["wall_s"],
                 rec["node"], command, json.dumps(rec["replay"]) if rec["replay"] else None,
                 json.dumps(sig, sort_keys=True) if sig else None,
                 sig_key, rec.get("error"), now()),
            )  # fmt: skip

    def finished(self, config_key: str) -> list[sqlite3.Row]:
        """The runs of a configuration already recorded (a harness failure is not finished: it is run again)."""
        return list(self.db.execute("SELECT * FROM runs WHERE config_key = ? AND verdict != 'harness_failure' ORDER BY id", (config_key,)))

    def rows(self, campaign: int | None = None) -> list[dict[str, Any]]:
        q, args = ("SELECT * FROM runs WHERE campaign = ? ORDER BY id", (campaign,)) if campaign else ("SELECT * FROM runs ORDER BY id", ())
        return [dict(r) for r in self.db.execute(q, args)]

    def campaigns(self) -> list[dict[str, Any]]:
        q = ("SELECT c.*, COUNT(r.id) AS runs, SUM(r.verdict = 'violation') AS violating, SUM(r.verdict = 'harness_failure') AS failures, "
             "COUNT(DISTINCT r.node) AS nodes, SUM(r.wall_s) AS run_s "
             "FROM campaigns c LEFT JOIN runs r ON r.campaign = c.id GROUP BY c.id ORDER BY c.id")  # fmt: skip
        return [dict(r) for r in self.db.execute(q)]

    def reproducers(self) -> dict[str, dict[str, Any]]:
        return {r["sig_key"]: dict(r) for r in self.db.execute("SELECT * FROM reproducers")}

    def set_reproducer(self, sig_key: str, run: int, report: dict[str, Any]) -> None:
        cfg = report["config"]
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO reproducers (sig_key, run, replay, cpus, steps, handovers, kind) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sig_key, run, json.dumps(report), cfg["cpus"], cfg["steps"], report["schedule"]["count"], report["violations"][0]["kind"]),
            )
