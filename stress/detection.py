"""``python -m stress.detection free|det``: how fast each broken cell of the matrix is caught, and
how often its catch repeats.

For every broken cell (``emu.harness.matrix``), ``--seeds`` seeds: from each, consecutive seeded runs
until one is caught by a kind the cell names (free mode: 8 CPUs, fail-fast, up to 30 s a run, at
most 3 runs; deterministic: ``Cell.det_config``, at most 200 runs), timed on the wall clock. Then
the first catching seed runs 10 more times: how many of them are caught again. Two seeds run at a
time. The free mode's rerun repeats the configuration, not the interleaving; the deterministic
one repeats the run. ``--load dolan`` runs each cell under the load shaped like Stephen Dolan's
reproducer (``emu.workload.dolan``) instead of the synthetic one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

from emu.harness.config import RunConfig
from emu.harness.matrix import CELLS, CLEAN, Cell
from emu.harness.runner import run

TRIES = {"free": 3, "det": 200}
REPEATS = 10


LOADS = ("synthetic", "dolan")


def config(mode: str, cell: Cell, seed: int, load: str = "synthetic") -> RunConfig:
    cfg = cell.det_config(seed) if mode == "det" else replace(cell.config(seed, cpus=8, duration=30.0), fail_fast=True)
    return cfg if load == "synthetic" else replace(cfg, benchmark=load)


def _cell(cid: str) -> Cell:
    return next(c for c in CELLS if c.id == cid)


def _caught(cell: Cell, cfg: RunConfig) -> bool:
    r = run(cfg)
    return any(k in r.violation_counts for k in cell.kinds)


def hunt_from(job: tuple[str, str, int, str]) -> tuple[str, float | None, int, int | None]:
    """(cell, seconds to the catch or None, runs, the catching seed)."""
    mode, cid, seed, load = job
    cell = _cell(cid)
    t0 = time.monotonic()
    for tries in range(1, TRIES[mode] + 1):
        if _caught(cell, config(mode, cell, seed + tries - 1, load)):
            return cid, round(time.monotonic() - t0, 2), tries, seed + tries - 1
    return cid, None, TRIES[mode], None


def repeats(job: tuple[str, str, int, str]) -> tuple[str, int]:
    mode, cid, seed, load = job
    cell = _cell(cid)
    return cid, sum(_caught(cell, config(mode, cell, seed, load)) for _ in range(REPEATS))


def main(argv: list[str] | None = None) -> int:
    doc = (__doc__ or "").strip()
    p = argparse.ArgumentParser(prog="python -m stress.detection", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("free", "det"), help="free: the host interleaves the CPUs; det: --sched pct, one CPU at a time")
    p.add_argument("--seeds", type=int, default=10, help="first seeds per cell, each followed by consecutive ones (default: 10)")
    p.add_argument("--only", default="", help="broken cells' ids as hunt --matrix prints them, ';' between (default: every broken cell)")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON")
    p.add_argument("--load", choices=LOADS, default="synthetic", help="dolan: the load shaped like Dolan's reproducer (emu.workload.dolan)")
    ns = p.parse_args(argv)
    only = set(ns.only.split(";")) if ns.only else None
    broken = {c.id for c in CELLS if c.expect != CLEAN and (ns.mode == "free" or c.det_kinds)}  # det: the cells PCT catches
    unknown = sorted((only or set()) - broken)
    if unknown:  # one line, status 2, as every bad input
        print(f"python -m stress.detection: error: --only: no broken cell '{unknown[0]}' (hunt --matrix lists the cells)", file=sys.stderr)
        return 2
    if ns.seeds < 1:
        print(f"python -m stress.detection: error: --seeds must be at least 1, got {ns.seeds}", file=sys.stderr)
        return 2
    cells = [c for c in CELLS if c.id in broken and (only is None or c.id in only)]
    found: dict[str, list[tuple[float | None, int, int | None]]] = {}
    with ProcessPoolExecutor(2) as ex:
        for cid, dt, tries, hit in ex.map(hunt_from, [(ns.mode, c.id, 1000 * (i + 1), ns.load) for c in cells for i in range(ns.seeds)]):
            found.setdefault(cid, []).append((dt, tries, hit))
        again = dict(ex.map(repeats, [(ns.mode, cid, next(h for *_, h in v if h is not None), ns.load) for cid, v in found.items()
                                      if any(h is not None for *_, h in v)]))  # fmt: skip
    result: dict[str, Any] = {}
    for cid, v in found.items():
        times = [dt for dt, _, _ in v if dt is not None]
        result[cid] = {
            "caught": len(times), "seeds": len(v), "median_s": round(statistics.median(times), 2) if times else None,
            "max_s": max(times) if times else None, "median_runs": statistics.median(t for _, t, _ in v), "repeated": again.get(cid),
        }  # fmt: skip
        r = result[cid]
        print(f"{cid:84} caught {r['caught']}/{r['seeds']}  median {r['median_s']}s  max {r['max_s']}s  "
              f"runs {r['median_runs']}  repeated {r['repeated']}/{REPEATS}")  # fmt: skip
    if ns.json:
        with open(ns.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
