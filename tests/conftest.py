from __future__ import annotations

import os
from collections.abc import Iterator

import psutil
import pytest

from emu.machine.shm import PREFIX, SHM_DIR


def segments_of(pid: int) -> list[str]:
    return [n for n in os.listdir(SHM_DIR) if n.startswith(f"{PREFIX}{pid}_")]


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    """Every test: no segment of this process and no child process survives it."""
    yield
    assert segments_of(os.getpid()) == []
    children = psutil.Process().children(recursive=True)
    gone, alive = psutil.wait_procs(children, timeout=3)
    assert alive == [], f"processes left behind: {alive}"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("lazytlb race hunting")
    g.addoption("--race-count", type=int, default=2, help="seeded runs per matrix cell in tests/race (default 2)")
    g.addoption("--race-seconds", type=float, default=2.0, help="length of each race-hunting run (default 2)")
    g.addoption("--race-cpus", type=int, default=8, help="emulated CPUs per race-hunting run (default 8)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "race_round" in metafunc.fixturenames:
        n = metafunc.config.getoption("--race-count")
        metafunc.parametrize("race_round", range(n), ids=[f"r{i}" for i in range(n)])
