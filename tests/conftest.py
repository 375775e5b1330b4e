from __future__ import annotations

import os
from collections.abc import Iterator

import psutil
import pytest

from emu.shm import PREFIX, SHM_DIR


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
