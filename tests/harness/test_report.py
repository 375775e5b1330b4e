"""The report reads at a glance: the verdict and its answer first, the counters that apply to this
run in groups (all of them with --verbose), plain text in a pipe; and the progress display."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from emu.checks.oracle import KINDS
from emu.harness.config import RunConfig
from emu.harness.report import GROUPS, HEADLINES, METRICS, Report, applies, grouped, headline, violation_sentence
from emu.harness.runner import run
from stress.cli import main
from stress.progress import PLAIN_LINES, LiveStatus, render_report


@pytest.fixture(scope="module")
def clean() -> Iterator[Report]:
    yield run(RunConfig(cpus=2, sched="random", steps=20_000, seed=9))  # deterministic: clean, the same counters, on any host


def shown(r: Report, verbose: bool = False) -> dict[str, str]:
    """counter -> its group, as the report would list them."""
    return {key: group for group, rows in grouped(r, verbose) for key, _, _ in rows}


def test_a_clean_run_answers_in_its_first_line(clean: Report) -> None:
    m = clean.metrics
    first = render_report(clean).splitlines()[0]
    held = m["mm_held_lazily"]  # the mms the idle CPUs end lazy on: alive on every quiet kernel
    tail = f" but the {held:,} still lazily held by idle CPUs" if held else ""
    assert (
        first
        == f"CLEAN: {m['context_switches']:,} context switches on 2 CPUs, {m['mm_created']:,} mms created and freed{tail}, no violation"
    )
    assert first == headline(clean)


def test_only_counters_that_apply_are_shown_and_verbose_shows_every_one(clean: Report) -> None:
    short, every = shown(clean), shown(clean, verbose=True)
    assert set(every) == set(clean.metrics)  # --verbose: every counter the JSON has
    # refcount on x86, no perturbation: these do not apply
    for key in ("hotplug_offline", "hotplug_online", "noise_delays", "race_delays", "ipis_check", "ipis_shootdown", "page_walks"):
        assert key in every and key not in short, key
    # the costs a scheme is compared by are shown even at zero
    for key in ("lazy_refcount_atomics_per_switch", "mm_atomics_per_switch", "ipis_per_exit", "context_switches"):
        assert key in short
    assert [g for g, _ in grouped(clean, verbose=True)] == [g for g in GROUPS if g != "other"]


def test_a_zero_the_configuration_asks_about_is_shown(clean: Report) -> None:
    cfg = {**clean.config, "hotplug": True, "noise": 0.01}
    r = dataclasses.replace(clean, config=cfg, metrics={**clean.metrics, "hotplug_offline": 0, "noise_delays": 0})
    assert {"hotplug_offline", "hotplug_online", "noise_delays"} <= set(shown(r))
    assert not applies("hotplug_offline", 0, clean.config) and applies("hotplug_offline", 3, clean.config)


def test_a_counter_nobody_described_lands_in_other_when_nonzero(clean: Report) -> None:
    r = dataclasses.replace(clean, metrics={**clean.metrics, "new_scheme_counter": 5, "quiet_counter": 0})
    assert shown(r)["new_scheme_counter"] == "other" and "quiet_counter" not in shown(r)


def test_plain_text_has_no_escape_codes_and_colour_has(clean: Report) -> None:
    plain = render_report(clean)
    assert "\x1b[" not in plain and all(line == line.rstrip() for line in plain.splitlines())
    assert "\x1b[" in render_report(clean, color=True, width=100)
    assert plain.splitlines()[-1] == f"rerun: {clean.command}"


def test_a_free_runs_whole_time_holds_its_parts() -> None:
    # true of any free run on any host, refused for want of time or not: each part is a stretch of the whole
    free = run(RunConfig(cpus=2, duration=0.3, seed=9))
    h = free.harness
    assert h["total_seconds"] >= h["boot_seconds"] + h["run_seconds"] + h["drain_seconds"]
    assert f"{h['total_seconds']:g}s in all" in render_report(free)


def test_every_violation_kind_has_its_sentence() -> None:
    assert set(KINDS) - {"leak"} <= set(HEADLINES)
    base = {"cpu": 2, "mm": "mm35#1", "other_cpu": 0, "freed_by": 2, "site": "__mmdrop", "t_s": 2.9612, "detail": "..."}
    said = {k: violation_sentence({**base, "kind": k}) for k in HEADLINES}
    assert said["freed_while_lazy"] == "cpu2 freed mm35#1 while cpu0 still had it as active or loaded mm, 2.96 s in"
    assert violation_sentence({**base, "kind": "freed_while_lazy", "other_cpu": 2}).startswith(
        "cpu2 freed mm35#1 while it was still its own active or loaded mm"
    )
    assert said["use_after_free"] == "cpu2 touched mm35#1 after it was freed (freed by cpu2), in __mmdrop, 2.96 s in"
    assert len(set(said.values())) == len(said)  # one phrasing each
    leak = {**base, "kind": "leak", "t_s": None, "detail": "mm3#2 never freed on the quiet machine (mm_users 0, mm_count 1)"}
    assert violation_sentence(leak) == leak["detail"]


def test_a_violation_answers_with_the_first_one(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    # a deterministic run: the seed catches the mutant on any host, however fast
    argv = ["run", "--cpus", "3", "--sched", "pct", "--steps", "50000", "--mutant", "refcount-no-grab", "--seed", "4", "--quiet"]
    assert main([*argv, "--json", str(out)]) == 1
    doc = json.loads(out.read_text())
    # the JSON keeps its keys; each violation also says when it happened
    keys = {"config", "metrics", "violations", "violation_counts", "verdict", "status", "harness", "command", "timelines"}
    assert set(doc) == keys | {"events", "schedule", "setup_digest"}
    r = Report(**{k: v for k, v in doc.items() if k != "setup_digest"})  # derived from the config, not a field
    first = r.violations[0]
    assert headline(r) == f"VIOLATION: {violation_sentence(first)}"
    assert f"cpu{first['cpu']}" in headline(r) and first["mm"] in headline(r) and first["t_s"] is not None
    text = render_report(r)
    assert "violations by kind" in text and "timeline of the first violation" in text


def test_verbose_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    for verbose in (False, True):
        argv = ["run", "--cpus", "1", "--sched", "random", "--steps", "5000", "--seed", "1", "--quiet"]  # clean on any host
        assert main([*argv, *(["--verbose"] if verbose else [])]) == 0
        out = capsys.readouterr().out
        assert ("page_walks" in out) == verbose and "context_switches" in out


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_in_a_pipe_is_a_few_plain_lines() -> None:
    stream = io.StringIO()
    status = LiveStatus(stream)
    for i in range(200):  # 100 s of a 100 s run, an update every half second
        status.update(i / 2, 100.0, f"switches {i}")
    status.done()
    lines = stream.getvalue().splitlines()
    assert 1 < len(lines) <= PLAIN_LINES and "\x1b" not in stream.getvalue()
    assert lines[0] == "  0.0s elapsed, 100.0s left: switches 0"


def test_progress_on_a_terminal_is_one_live_line_with_elapsed_and_remaining_time() -> None:
    stream = Tty()
    status = LiveStatus(stream)
    status.update(1.0, 3.0, "switches 7")
    status.update(2.0, 3.0, "switches 9")
    status.done()
    text = stream.getvalue()
    assert "2.0s elapsed, 1.0s left  switches 9" in text and "1.0s elapsed, 2.0s left  switches 7" in text and "━" in text
    assert text.endswith("\x1b[2K")  # done() erases the display: the report follows on a clean line


def test_every_described_counter_is_in_a_known_group() -> None:
    assert {m.group for m in METRICS.values()} <= set(GROUPS)
