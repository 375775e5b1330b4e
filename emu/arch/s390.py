"""s390, modelled like arm64: no usable ``mm_cpumask`` for lazies, hardware-broadcast flushes.

The reference marks this *unconfirmed*: the RFC thread names s390 among the architectures
that "don't track mm_cpumask at all", but the kernel's s390 code does keep attach masks of
its own for flushing decisions. This model takes the thread's claim as stated (the mask is
never maintained, the exit flush is an IDTE/IPTE broadcast without IPIs); results on it say
what would happen *if* the claim holds, not what s390 does.
"""

from __future__ import annotations

from emu.arch.arm64 import Arm64


class S390(Arm64):
    name = "s390"
    summary = "as arm64: mask not tracked, broadcast flush (the thread's claim; unconfirmed)"
