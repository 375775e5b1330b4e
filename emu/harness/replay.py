"""Replaying a deterministic run: its JSON report read back, and its schedule checked against
the configuration it will steer (``run --replay``, ``stress shrink``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from emu.harness.config import ConfigError, RunConfig, read_json
from emu.machine.detsched import Schedule
from emu.machine.policy import COMMIT

# settings a replay need not share with the recording: they do not steer the machine
REPLAY_FREE = ("replay", "duration", "fail_fast", "watchdog", "ipi_timeout")


def setup_digest(config: dict[str, Any]) -> str:
    """A digest of the settings that steer a deterministic run: a report carries it, so that a
    replay can tell a recorded setup edited since (it no longer repeats the recorded run)."""
    steering = {k: v for k, v in sorted(config.items()) if k not in REPLAY_FREE}
    return hashlib.sha256(json.dumps(steering, sort_keys=True).encode()).hexdigest()[:16]


def read_report(path: str, who: str) -> dict[str, Any]:
    """A JSON report written by ``run --json``, as a dict with its ``config``; ConfigError, one
    line starting with ``who``, if it cannot be read or is not one."""
    data = read_json(path, who, "not a JSON report (truncated, or not one?)")
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise ConfigError(f"{who} {path}: not a lazytlb report")
    return data


def load_replay(cfg: RunConfig) -> Schedule:
    """The schedule of ``cfg.replay`` (a deterministic run's JSON report, or a shrunk one), checked
    against the configuration it will steer; ConfigError, one line, if it cannot be replayed here."""
    path = cfg.replay
    data = read_report(path, "--replay")
    sched, recorded = data.get("schedule"), data["config"]
    if not isinstance(sched, dict) or not isinstance(recorded, dict) or not isinstance(sched.get("handovers"), str):
        raise ConfigError(f"--replay {path}: no schedule in it (only a deterministic run's report has one)")
    try:
        schedule = Schedule.decode(str(sched.get("sched")), sched["handovers"])
    except ValueError:
        raise ConfigError(f"--replay {path}: the schedule is damaged (truncated?)") from None
    here = cfg.to_dict()
    for key, value in here.items():
        if key in REPLAY_FREE or recorded.get(key) == value:
            continue
        flag = key.replace("_", "-")
        theirs = recorded.get(key, "nothing")
        if isinstance(value, dict) and isinstance(theirs, dict):
            diff = next((k for k in value if value[k] != theirs.get(k)), "")
            flag, value, theirs = diff.replace("_", "-"), value.get(diff), theirs.get(diff, "nothing")
        raise ConfigError(f"--replay {path}: recorded for another configuration: --{flag} {theirs} there, {value} here")
    if any(not 0 <= c & ~COMMIT < cfg.cpus or s < 0 for c, s in schedule.handovers):
        raise ConfigError(f"--replay {path}: the schedule names a CPU this machine does not have")
    return schedule
