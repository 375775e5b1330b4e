"""``python -m stress.instructions``: a deterministic count of what one context switch costs."""

from __future__ import annotations

import shutil

import pytest

from stress.instructions import main, per_switch


@pytest.mark.slow
@pytest.mark.timeout(360)  # two runs under valgrind: 101 to 114 s alone on the loaded 2-core machine, past 120 s in a loaded suite
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind")
def test_the_count_per_switch_repeats_exactly_enough_for_an_a_b() -> None:
    first, second = per_switch(2700), per_switch(2700)
    # a Python context switch of the emulated machine: tens of thousands of instructions
    assert 10_000 < first < 200_000
    assert abs(first - second) < 0.01 * first


def test_bad_input_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--arch", "vax"]) == 2
    assert main(["--scheme", "refcount-no-grab"]) == 2  # a mutant is not a scheme to cost
    assert main(["--switches", "10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
