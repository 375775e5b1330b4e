"""``python -m stress findings DB``: a campaign database's violations, one finding per signature.

The verdict comes first, as ``run`` prints it: how many distinct findings in how many runs. Then
each finding (emu.harness.findings: its signature, count, first and last seen, the campaigns and
configurations that met it) with its best reproducer: the shortest deterministic replay among its
runs, shrunk by ``hunt --db`` (stress shrink's Shrinker), written to ``--replays DIR`` so that its
``run --replay`` command works as printed. A finding met only by free-running runs has no
deterministic reproducer: its rerun command repeats the configuration and seed, not the
interleaving. ``--json`` writes the same for tools; ``--html`` a page with each reproducer's
per-CPU story (emu.harness.columns' SVG). Exit status: 0 no findings, 1 findings, 2 bad usage.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
import tempfile
from typing import Any

from emu.harness.campaign import CampaignDB
from emu.harness.columns import columns_svg, columns_text
from emu.harness.config import ConfigError, RunConfig
from emu.harness.events import Event
from emu.harness.events import from_json as events_from_json
from emu.harness.events import to_json as events_to_json
from emu.harness.findings import Finding, group, story
from emu.harness.replay import setup_digest
from stress.output import to_stdout, write_json, write_text
from stress.progress import LiveStatus

KEEP = ("config", "schedule", "setup_digest", "verdict", "violation_counts", "violations", "metrics")


def add_parser(sub: Any) -> None:
    f = sub.add_parser("findings", help="a campaign database's violations, grouped by signature, with their best reproducers")
    f.add_argument("db", metavar="DB", nargs="?", default=None, help="the SQLite file of hunt --db")
    f.add_argument("--json", metavar="PATH", default=None, help="write the findings as JSON ('-': to standard output)")
    f.add_argument("--html", metavar="PATH", default=None, help="write a page with each reproducer's per-CPU story")
    f.add_argument("--replays", metavar="PATH", default=None, help="the directory for the reproducers' replay files (default: DB.replays)")
    f.add_argument("--quiet", action="store_true", help="each finding without its reproducer's story")


def small_report(report: dict[str, Any]) -> dict[str, Any]:
    """A replayable report without its bulk: the story of the violating mm kept, the timelines dropped."""
    out = {k: report[k] for k in KEEP if k in report}
    out["violations"] = report["violations"][:5]
    out["events"] = events_to_json([story(report)])
    return out


def shrink_new(db: CampaignDB, budget: float, quiet: bool) -> tuple[int, int]:
    """Shrink the best deterministic run of each finding that has no reproducer yet, ``budget``
    seconds each; return the number of findings and of reproducers shrunk."""
    from stress.shrink import Shrinker, target_kind

    findings = group(db.rows(), db.reproducers())
    shrunk = 0
    for f in findings:
        best = f.best_run()
        if f.reproducer is not None or best is None or budget <= 0:
            continue
        report = json.loads(best["replay"])
        cfg = RunConfig.from_dict(report["config"])
        status = None if quiet else LiveStatus(what=f"shrink {f.signature.key}")
        with tempfile.TemporaryDirectory(prefix="lazytlb-findings-") as tmp:
            try:
                got = Shrinker(cfg, report, target_kind(report), budget, tmp, status).shrink().report
            except ConfigError:  # the replay no longer fails that way (another version recorded it): keep the run as it is
                got = report
            finally:
                if status:
                    status.done()
        got = dict(small_report(got), config=dict(got["config"], replay=""))
        got["setup_digest"] = setup_digest(got["config"])
        db.set_reproducer(f.signature.key, int(best["id"]), got)
        shrunk += 1
    return len(findings), shrunk


def shown_story(rep: dict[str, Any] | None) -> list[Event]:
    """The story a reproducer carries (its only timeline: the violating mm's events)."""
    timelines = events_from_json(rep.get("events"), "findings") if rep else []
    return timelines[0] if timelines else []


def replay_path(directory: str, f: Finding) -> str:
    return os.path.join(directory, f"{f.signature.key}.json")


def reproducer_of(f: Finding) -> dict[str, Any] | None:
    """The finding's replay report: its shrunk reproducer, else its best deterministic run's."""
    if f.reproducer:
        return dict(json.loads(f.reproducer["replay"]))
    best = f.best_run()
    return dict(json.loads(best["replay"])) if best else None


def rerun_line(f: Finding, path: str | None) -> str:
    if path:
        return f"replay: python -m stress run --replay {path}"
    return f"rerun (free-running: the seed, not the interleaving): {f.runs[0]['command']}"


def describe(f: Finding, path: str | None) -> list[str]:
    sig = f.signature
    campaigns = ", ".join(str(c) for c in sorted({r["campaign"] for r in f.runs}))
    lines = [f"{sig.title()}  [{sig.key}]"]
    lines.append(f"    {f.count} run(s) in campaign(s) {campaigns}; first seen {f.first_seen}, last seen {f.last_seen}")
    lines.append(f"    configurations: {', '.join(sorted({r['target'] for r in f.runs}))}")
    rep = reproducer_of(f)
    if rep:
        cfg = rep["config"]
        how = "shrunk" if f.reproducer else "not shrunk"
        lines.append(
            f"    reproducer ({how}): {cfg['cpus']} CPUs, {cfg['steps']:,} steps, {rep['schedule']['count']:,} hand-overs, "
            f"from run {f.reproducer['run'] if f.reproducer else f.best_run()['id']}"  # type: ignore[index]
        )
    lines.append(f"    {rerun_line(f, path)}")
    return lines


def page(findings: list[Finding], headline: str, paths: dict[str, str]) -> str:
    """The findings as one HTML page: each with its reproducer's story, one column per CPU."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>lazytlb findings</title>",
        "<style>body{font-family:sans-serif;margin:2em}pre{background:#f4f4f4;padding:.5em}section{margin-bottom:3em}</style>",
        f"</head><body><h1>{html.escape(headline)}</h1>",
    ]
    for f in findings:
        lines = describe(f, paths.get(f.signature.key))
        parts.append(f"<section id='{f.signature.key}'><h2>{html.escape(lines[0])}</h2><pre>{html.escape(chr(10).join(lines[1:]))}</pre>")
        rep = reproducer_of(f)
        events = shown_story(rep)
        if events:
            parts.append(columns_svg(events, "step", title=f"the story of {rep['violations'][0]['mm']}"))  # type: ignore[index]
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def cmd_findings(ns: argparse.Namespace) -> int:
    from stress.options import check_distinct, check_writable

    check_writable(ns.json)
    check_writable(ns.html, "--html")
    check_distinct(DB=ns.db, **{"--json": ns.json, "--html": ns.html})
    if ns.replays and not (os.path.isdir(ns.replays) or os.access(os.path.dirname(os.path.abspath(ns.replays)), os.W_OK)):
        raise ConfigError(f"--replays: cannot write to '{ns.replays}' (no such writable directory)")
    if not ns.db:
        raise ConfigError("findings: give the database of a campaign (hunt --db PATH writes one)")
    if os.path.isdir(ns.db):
        raise ConfigError(f"findings: '{ns.db}' is a directory, not a campaign database (hunt --db PATH writes one)")
    if not os.path.isfile(ns.db):
        raise ConfigError(f"findings: no such database '{ns.db}' (hunt --db PATH writes one)")
    try:
        db = CampaignDB(ns.db)
        rows, reproducers, campaigns = db.rows(), db.reproducers(), db.campaigns()
        db.close()
    except Exception as e:  # sqlite3.DatabaseError, or a file of another schema
        raise ConfigError(f"findings: '{ns.db}' is not a campaign database ({e})") from None
    findings = group(rows, reproducers)
    violating = sum(1 for r in rows if r["verdict"] == "violation")
    word = f"FINDINGS: {len(findings)}" if findings else "NO FINDINGS:"
    headline = f"{word} signature(s) in {violating} violating run(s) of {len(rows)}, {len(campaigns)} campaign(s)"
    directory = ns.replays or f"{ns.db}.replays"
    paths: dict[str, str] = {}
    for f in findings:
        rep = reproducer_of(f)
        if rep:
            os.makedirs(directory, exist_ok=True)
            paths[f.signature.key] = replay_path(directory, f)
            write_text(paths[f.signature.key], json.dumps(rep), "--replays")
    out = sys.stderr if to_stdout(ns.json) else sys.stdout
    print(headline, file=out)
    for f in findings:
        print(file=out)
        print("\n".join(describe(f, paths.get(f.signature.key))), file=out)
        rep = reproducer_of(f)
        events = shown_story(rep)
        if events and not ns.quiet:
            print("\n".join("    " + line for line in columns_text(events, "step")), file=out)
    print(file=out)
    print("campaigns:", file=out)
    for c in campaigns:
        print(
            f"  {c['id']}: {c['started']} {c['executor']}, {c['runs']} runs, {c['violating'] or 0} violating, "
            f"{c['failures'] or 0} harness failures, on {c['nodes']} node(s): {c['command']}",
            file=out,
        )
    if ns.json:
        doc = {
            "findings": [dict(f.to_json(), replay=paths.get(f.signature.key)) for f in findings],
            "runs": len(rows),
            "violating": violating,
            "campaigns": campaigns,
        }
        write_json(ns.json, doc)
    if ns.html:
        write_text(ns.html, page(findings, headline, paths), "--html")
    return 1 if findings else 0
