"""Replay (``--replay``): the recorded schedule's hand-overs, step by step.

Where it names a CPU that may not run (an edited schedule, when shrinking), the next one after it
that may runs instead; after its end, the CPU holding the turn keeps it while it may. The
hand-over records the executed schedule again, so what a replay writes replays exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from emu.machine.policy import Policy

POS = 0  # the header's word: the hand-overs passed


class Replay(Policy):
    name = "replay"
    selectable = False
    follows_schedule = True
    GLOBAL_WORDS = 1

    def next_cpu(self, runnable: Sequence[int], current: int, yielding: bool, step: int) -> int:
        w, i, hand = self.w, self.g(POS), self.run.handovers
        pos = w[i]
        while pos < len(hand) and hand[pos][1] <= step:
            pos += 1
        w[i] = pos
        want = hand[pos - 1][0] if pos else current
        if want in runnable:
            return want
        for k in range(1, self.n + 1):  # the next CPU after it that may run
            c = (want + k) % self.n
            if c in runnable:
                return c
        return runnable[0]
