"""Resident memory of the runner and its CPU processes over a run: is it flat, and how high?

The runner samples once a second (``/proc/PID/statm`` through psutil: cheap enough for a
hundred CPUs). The segment's pages count in every process that touched them, so a CPU's RSS
includes its share of the machine; what matters for a soak is that it stops growing.
"""

from __future__ import annotations

import psutil

MB = 2**20
SAMPLE_EVERY_S = 1.0
KEEP_SAMPLES = 120  # the report keeps at most this many, evenly thinned


def _rss(p: psutil.Process) -> int:
    try:
        return int(p.memory_info().rss)
    except psutil.Error:
        return 0


class RssSampler:
    """Peak and trajectory of the runner's RSS, CPU 0's, and the largest CPU's."""

    def __init__(self, runner_pid: int, cpu_pids: list[int]) -> None:
        self.runner = psutil.Process(runner_pid)
        self.cpus = []
        for pid in cpu_pids:
            try:
                self.cpus.append(psutil.Process(pid))
            except psutil.Error:
                pass
        self.samples: list[tuple[float, int, int, int]] = []  # (t, runner, cpu0, largest cpu)
        self._next = 0.0

    def sample(self, t: float) -> None:
        if t < self._next:
            return
        self._next = t + SAMPLE_EVERY_S
        sizes = [_rss(p) for p in self.cpus] or [0]
        self.samples.append((t, _rss(self.runner), sizes[0], max(sizes)))

    def summary(self) -> dict[str, object]:
        if not self.samples:
            return {}
        s = self.samples
        step = max(1, len(s) // KEEP_SAMPLES)

        def mb(x: int) -> float:
            return round(x / MB, 1)

        return {
            "runner_peak_mb": mb(max(x[1] for x in s)),
            "cpu0_peak_mb": mb(max(x[2] for x in s)),
            "cpu_max_peak_mb": mb(max(x[3] for x in s)),
            "runner_first_last_mb": [mb(s[0][1]), mb(s[-1][1])],
            "cpu0_first_last_mb": [mb(s[0][2]), mb(s[-1][2])],
            "samples": [[round(t, 1), mb(r), mb(c0), mb(cm)] for t, r, c0, cm in s[::step]],
        }
