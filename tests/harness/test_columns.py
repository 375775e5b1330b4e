"""The per-CPU column view of an interleaving: each event in its CPU's column, in time order, the
violating event marked, fitted to a width; the SVG picture well-formed; and a whole run's report,
JSON and ``--svg`` carrying the first violation's timeline in that form."""

from __future__ import annotations

import contextlib
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from emu.checks.oracle import EV_VIOLATION, KINDS
from emu.harness.columns import MARK, MIN_COLUMN, SEP, SVG_COLUMN, Ev, columns_svg, columns_text, fit, stamp
from emu.harness.config import ConfigError
from emu.harness.events import SCHEMA
from emu.harness.report import Report, event_timelines, marked
from emu.machine.trace import fill
from stress.cli import main
from stress.progress import render_report

SVG = "{http://www.w3.org/2000/svg}"

TRACE = [
    Ev(1_000_000, 0, "switch task40 -> task32"),
    Ev(1_250_000, 3, "switch_mm mm13#1 -> mm14#1"),
    Ev(1_500_000, 3, "lazy on mm14#1 (user -> kernel)"),
    Ev(2_000_000, 0, "freed mm14#1"),
    Ev(2_125_000, 3, "VIOLATION use_after_free on mm14#1", mark=True),
]


def body(lines: list[str]) -> list[str]:
    return lines[2:]  # below the header and its rule


def column_starts(header: str) -> dict[str, int]:
    """cpuN -> where its column begins in every line."""
    return {m.group(): m.start() for m in re.finditer(r"cpu\d+", header)}


def cells(line: str, header: str) -> dict[str, str]:
    """cpuN -> what ``line`` has in that CPU's column (the columns as the header places them)."""
    starts = list(column_starts(header).items())
    ends = [s - len(SEP) for _, s in starts[1:]] + [len(line)]
    return {name: line[s:e].strip() for (name, s), e in zip(starts, ends, strict=True)}


def gutter(line: str, header: str) -> str:
    return line[: min(column_starts(header).values()) - len(SEP)].strip()


def test_each_event_lands_in_its_own_cpus_column() -> None:
    lines = columns_text(TRACE, width=200)
    starts = column_starts(lines[0])
    assert list(starts) == ["cpu0", "cpu3"]  # only the CPUs that appear, none for cpu1 or cpu2
    assert set(lines[1]) <= {"-", "+"}
    rows = body(lines)
    assert len(rows) == len(TRACE)
    for e, line in zip(TRACE, rows, strict=True):
        assert line.index(e.text) == starts[f"cpu{e.cpu}"], line
        assert cells(line, lines[0]) == {"cpu0": "", "cpu3": "", f"cpu{e.cpu}": e.text}  # and nothing in the other column


def test_time_flows_down_and_ties_keep_their_order() -> None:
    shuffled = [TRACE[3], TRACE[0], TRACE[4], TRACE[2], TRACE[1]]
    assert columns_text(shuffled, width=200) == columns_text(TRACE, width=200)
    header, _, *rows = columns_text(TRACE, width=200)
    assert [gutter(r, header) for r in rows] == ["+1.000ms", "+1.250ms", "+1.500ms", "+2.000ms", ">> +2.125ms"]
    tie = [Ev(5, 1, "first"), Ev(5, 0, "second"), Ev(4, 2, "earlier")]
    header, _, *rows = columns_text(tie, "step", width=100)
    assert ["".join(cells(r, header).values()) for r in rows] == ["earlier", "first", "second"]
    assert [gutter(r, header) for r in rows] == ["#4", "#5", "#5"]


def test_the_violating_event_alone_is_marked() -> None:
    rows = body(columns_text(TRACE, width=200))
    assert [r.startswith(MARK) for r in rows] == [e.mark for e in TRACE]
    assert rows[-1].startswith(">> ") and "VIOLATION use_after_free on mm14#1" in rows[-1]
    assert not any(">>" in line for line in columns_text([Ev(e.t, e.cpu, e.text) for e in TRACE], width=200))


def test_the_gutter_shows_milliseconds_or_steps() -> None:
    assert stamp(12_345_678, "ns") == "+12.346ms" and stamp(-120_000, "ns") == "-0.120ms"
    assert stamp(1234, "step") == "#1234"
    header, _, *steps = columns_text([Ev(7, 2, "a"), Ev(1234, 5, "b")], "step", width=80)
    assert [gutter(r, header) for r in steps] == ["#7", "#1234"]
    with pytest.raises(ValueError, match="unit"):
        columns_text(TRACE, "us")
    assert columns_text([], width=80) == []


def test_a_narrow_width_wraps_texts_within_their_column() -> None:
    long = "leaves lazy mm13#1 for mm14#1 (kernel -> user) after a long while on the kworker"
    events = [Ev(0, 0, long), Ev(1, 1, "short"), Ev(2, 2, long, mark=True)]
    wide = columns_text(events, width=400)
    assert len(wide) == 2 + len(events)  # room: one line each
    for width in (60, 80):
        lines = columns_text(events, width=width)
        assert all(len(line) <= width for line in lines), (width, lines)
        assert len(lines) > len(wide)
        pieces: dict[str, list[str]] = {"cpu0": [], "cpu1": [], "cpu2": []}
        for line in body(lines):
            for name, text in cells(line, lines[0]).items():
                pieces[name] += [text] if text else []
        assert " ".join(pieces["cpu0"]) == long and " ".join(pieces["cpu2"]) == long and pieces["cpu1"] == ["short"]  # nothing lost
        assert not any(p.endswith("-") for p in pieces["cpu0"])  # never broken at the arrow's hyphen
        starts = column_starts(lines[0])
        assert starts["cpu1"] - starts["cpu0"] < len(long)
    header, _, *rows = columns_text(events, width=60)
    marked_rows = [r for r in rows if r.startswith(MARK)]
    assert len(marked_rows) > 1 and " ".join(cells(r, header)["cpu2"] for r in marked_rows) == long
    assert [gutter(r, header) for r in marked_rows][1:] == [">>"] * (len(marked_rows) - 1)  # the time once, on the first line


def test_width_zero_is_the_terminals(monkeypatch: pytest.MonkeyPatch) -> None:
    events = [Ev(0, 0, "x" * 100), Ev(1, 1, "y" * 100)]
    for columns in (70, 150):
        monkeypatch.setenv("COLUMNS", str(columns))  # what shutil.get_terminal_size reads first
        widest = max(map(len, columns_text(events)))
        assert columns - 2 < widest <= columns  # two equal columns: at most one character unused


def test_fit_cuts_the_widest_columns_first() -> None:
    assert fit([10, 20], 40) == [10, 20]
    assert fit([10, 50, 30], 70) == [10, 30, 30]
    assert fit([10, 50, 31], 70) == [10, 30, 30]
    assert fit([40, 40, 40], 10) == [MIN_COLUMN] * 3  # never below the floor: the line runs wider


def parse(svg: str) -> ET.Element:
    assert svg.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(svg.encode())


def texts(root: ET.Element) -> list[ET.Element]:
    return list(root.iter(f"{SVG}text"))


def test_the_svg_is_well_formed_with_a_column_per_cpu_and_the_mark_in_red() -> None:
    root = parse(columns_svg(TRACE, title="VIOLATION: cpu3 touched mm14#1\nrerun: python -m stress run"))
    assert root.tag == f"{SVG}svg" and float(root.get("width", 0)) > 0 and float(root.get("height", 0)) > 0
    assert root.find(f"{SVG}title").text == "VIOLATION: cpu3 touched mm14#1\nrerun: python -m stress run"  # type: ignore[union-attr]
    shown = [t.text for t in texts(root)]
    assert shown[:2] == ["VIOLATION: cpu3 touched mm14#1", "rerun: python -m stress run"]
    heads = [t for t in texts(root) if t.text in ("cpu0", "cpu3")]
    assert [t.text for t in heads] == ["cpu0", "cpu3"] and "cpu1" not in shown
    x = {t.text: float(t.get("x", 0)) for t in heads}
    assert x["cpu0"] < x["cpu3"]
    for e in TRACE:
        (node,) = [t for t in texts(root) if t.text == e.text]
        assert float(node.get("x", 0)) == x[f"cpu{e.cpu}"]  # under its CPU's header
        assert (node.get("fill") == "#d0021b") == e.mark
    ys = [float(t.get("y", 0)) for e in TRACE for t in texts(root) if t.text == e.text]
    assert ys == sorted(ys) and len(set(ys)) == len(ys)  # a row each, down the page
    assert any(r.get("fill") == "#fde2e2" for r in root.iter(f"{SVG}rect"))  # the marked row's band


def test_the_svg_escapes_markup_and_characters_xml_cannot_hold() -> None:
    nasty = "a <b> & \"c\" 'd' ]]> e\x01f"
    root = parse(columns_svg([Ev(0, 0, nasty, mark=True), Ev(1, 1, "ok")], "step", title="<&>"))
    shown = [t.text for t in texts(root)]
    assert "a <b> & \"c\" 'd' ]]> e?f" in shown and "<&>" in shown and "#0" in shown and "#1" in shown
    assert parse(columns_svg([])).tag == f"{SVG}svg"  # no events: an empty picture, still a document


def test_the_svg_wraps_a_text_longer_than_a_column() -> None:
    long = " ".join(f"word{i}" for i in range(40))
    assert len(long) > SVG_COLUMN
    root = parse(columns_svg([Ev(0, 0, long)]))
    pieces = [t.text or "" for t in texts(root) if (t.text or "").startswith("word")]
    assert len(pieces) > 1 and all(len(p) <= SVG_COLUMN for p in pieces) and " ".join(pieces) == long


def row(clock: int, cpu: int, code: int, a: int = 0, b: int = 0) -> tuple[int, int, int, int, int]:
    return (clock, cpu, code, a, b)


def test_the_mark_is_the_reporting_cpus_last_violation_event_of_that_kind_and_mm() -> None:
    uaf, lazy = KINDS.index("use_after_free"), KINDS.index("freed_while_lazy")
    other = EV_VIOLATION + 1
    rows = [
        row(1, 2, EV_VIOLATION, uaf, 77),  # this CPU's earlier report: same kind and mm, another place
        row(2, 1, EV_VIOLATION, uaf, 77),  # another CPU's
        row(3, 2, EV_VIOLATION, lazy, 77),  # another kind
        row(4, 2, EV_VIOLATION, uaf, 78),  # another mm
        row(5, 2, EV_VIOLATION, uaf, 77),  # this violation's own
        row(6, 2, other, uaf, 77),  # not a violation event
        row(7, 1, EV_VIOLATION, uaf, 77),
    ]
    assert marked(rows, 2, uaf, 77) == 4
    assert marked(rows, 2, lazy, 77) == 2
    assert marked(rows, 3, uaf, 77) is None
    assert marked(rows[:1], 2, uaf, 77) == 0


# -- a whole run ------------------------------------------------------------------------------

# refcount-no-grab is caught within a few hundred microseconds in every run, its violations
# recorded with timelines. (The luto-rfc mockup on arm64, seed 1, leaks every time but
# only some of its runs reach the use-after-free whose timeline this needs: about one in three
# reported leaks alone.)
# deterministic: the seed's run catches the mutant, with the same timeline, on any host
BROKEN = [
    "run",
    "--cpus",
    "4",
    "--mutant",
    "refcount-no-grab",
    "--sched",
    "pct",
    "--steps",
    "50000",
    "--seed",
    "4",
    "--fail-fast",
    "--quiet",
]


def call(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, str]:
    tmp = tmp_path_factory.mktemp("broken")
    status, out, err = call([*BROKEN, "--json", str(tmp / "r.json"), "--svg", str(tmp / "t.svg")])
    assert status == 1, err
    return json.loads((tmp / "r.json").read_text()), (tmp / "t.svg").read_text(), out


def test_the_json_carries_each_timeline_as_events_with_the_violation_marked(broken: tuple[dict[str, Any], str, str]) -> None:
    doc, _, _ = broken
    assert doc["verdict"] == "violation" and doc["events"]["schema"] == SCHEMA
    timelines = doc["events"]["timelines"]
    assert timelines and len(timelines) == len(doc["timelines"])
    for v, lines, events in zip(doc["violations"], doc["timelines"], timelines, strict=False):
        assert len(events) == len(lines) > 0
        for e, line in zip(events, lines, strict=True):
            # the same events as the flat lines: the step of this deterministic run, the flat line's (a free
            # run's t_ns is ns since the load began, its gutter ms: test_the_gutter_shows_milliseconds_or_steps),
            # its text the kind's format filled with the values, the mms those of its {mm:...} values
            text = fill(doc["events"]["formats"][e["kind"]], e["values"])
            assert line.split() == ["step", f"{e['step']:,}", f"cpu{e['cpu']}", *text.split()]
            assert all(mm in e["values"] and mm in text for mm in e["mm"])
        (i,) = [i for i, e in enumerate(events) if e["mark"]]
        own = {"kind": "violation", "cpu": v["cpu"], "mm": [v["mm"]], "values": [v["kind"], v["mm"]]}
        assert {k: events[i][k] for k in own} == own
        assert not [e for e in events[i + 1 :] if {k: e[k] for k in own} == own]  # its last such event: no earlier report's


def test_the_report_shows_the_first_violation_in_columns(broken: tuple[dict[str, Any], str, str]) -> None:
    doc, _, out = broken
    assert "one column per CPU" in out and "the same events, as one list" not in out
    section = out.split("timeline of the first violation")[1].split("\nharness")[0].splitlines()[1:]
    header, rule, *rows = [line.removeprefix("  ") for line in section if line.strip()]
    cpus = sorted({e["cpu"] for e in doc["events"]["timelines"][0][-40:]})
    assert list(column_starts(header)) == [f"cpu{c}" for c in cpus] and set(rule) <= {"-", "+"}
    assert all(len(line) <= 200 for line in section)  # a pipe's width
    (mark,) = [e for e in doc["events"]["timelines"][0][-40:] if e["mark"]]
    assert any(r.startswith(MARK) and "VIOLATION" in r for r in rows) and mark["kind"] == "violation"
    verbose = render_report(Report.from_json(doc), verbose=True)
    assert "the same events, as one list" in verbose and doc["timelines"][0][-1] in verbose


def test_a_report_from_json_without_timeline_events_shows_the_list(broken: tuple[dict[str, Any], str, str]) -> None:
    doc, _, _ = broken
    # as written before the columns (no events at all), and before the events' schema 2 ([t, cpu, text, mark] lists)
    before_columns = {k: v for k, v in doc.items() if k != "events"}
    schema_1 = {**before_columns, "timeline_events": [[[1, 0, "switch task4 -> task5", False]]]}
    for old in (before_columns, schema_1):
        r = Report.from_json(old)
        assert r.events == {} and event_timelines(r) == [] and "events" in r.to_json()
        text = render_report(r)
        assert "one column per CPU" not in text and doc["timelines"][0][-1] in text
    assert Report.from_json(doc).to_json() == doc  # and a new report round-trips


def test_a_report_whose_events_are_of_another_schema_is_refused_in_one_line(broken: tuple[dict[str, Any], str, str]) -> None:
    doc, _, _ = broken
    with pytest.raises(ConfigError, match=r"^r\.json: its events are of schema 3; this version of lazytlb reads schema 2$"):
        Report.from_json({**doc, "events": {**doc["events"], "schema": 3}}, "r.json")


def test_svg_writes_the_first_violations_timeline(broken: tuple[dict[str, Any], str, str]) -> None:
    doc, svg, _ = broken
    root = parse(svg)
    title = root.find(f"{SVG}title").text or ""  # type: ignore[union-attr]
    assert title.startswith("VIOLATION: ") and "rerun: python -m stress run" in title
    events = doc["events"]["timelines"][0]
    shown = [t.text for t in texts(root)]
    assert {f"cpu{c}" for c in {e["cpu"] for e in events}} <= set(shown)
    (mark,) = [e for e in events if e["mark"]]
    text = fill(doc["events"]["formats"][mark["kind"]], mark["values"])
    assert [t.text for t in texts(root) if t.get("fill") == "#d0021b" and t.text and not t.text.startswith(("+", "-", "#"))] == [text]


def test_svg_of_a_clean_run_writes_nothing_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "t.svg"
    status, _, err = call(["run", "--cpus", "2", "--sched", "random", "--steps", "5000", "--seed", "1", "--quiet", "--svg", str(out)])
    assert status == 0 and not out.exists()
    assert err.splitlines()[-1] == f"stress: --svg: the run was clean, nothing written to {out}"


@pytest.mark.parametrize("where", ["dir", "missing"])
def test_svg_to_a_path_that_cannot_be_written_is_one_line_before_the_run(tmp_path: Path, where: str) -> None:
    path = str(tmp_path) if where == "dir" else str(tmp_path / "no" / "t.svg")
    status, out, err = call([*BROKEN, "--svg", path])
    why = "(a directory)" if where == "dir" else "(no such writable directory)"
    assert status == 2 and out == "" and err.splitlines() == [f"stress: error: --svg: cannot write to '{path}' {why}"]
    assert list(tmp_path.iterdir()) == []  # refused before the run: nothing written, nothing run
