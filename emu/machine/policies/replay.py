"""Replay (``--replay``): the recorded schedule's hand-overs, step by step.

Where it names a CPU that may not run (an edited schedule, when shrinking), the next one after it
that may runs instead; after its end, the CPU holding the turn keeps it while it may. An early
commit of a TSO store buffer (``sbK@step``, an explorer's decision) is answered at its step, where
that CPU's buffer holds a store. The hand-over records the executed schedule again, so what a replay
writes replays exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from emu.machine.policy import COMMIT, Policy

POS, HOLDER = 0, 1  # the header's words: the hand-overs passed; the CPU the last one passed names, + 1 (0: none yet)


class Replay(Policy):
    name = "replay"
    selectable = False
    follows_schedule = True
    GLOBAL_WORDS = 2

    def next_cpu(self, runnable: Sequence[int], current: int, yielding: bool, step: int) -> int:
        w, i, hand = self.w, self.g(POS), self.run.handovers
        pos = w[i]
        while pos < len(hand) and hand[pos][1] <= step:
            c, at = hand[pos]
            pos += 1
            if c & COMMIT:
                if at == step and self.buffered() >> (c ^ COMMIT) & 1:
                    w[i] = pos
                    return c
                continue  # a commit the run did not come to (an edited schedule): passed
            w[self.g(HOLDER)] = c + 1
        w[i] = pos
        want = w[self.g(HOLDER)] - 1 if w[self.g(HOLDER)] else current
        if want in runnable:
            return want
        for k in range(1, self.n + 1):  # the next CPU after it that may run
            c = (want + k) % self.n
            if c in runnable:
                return c
        return runnable[0]
