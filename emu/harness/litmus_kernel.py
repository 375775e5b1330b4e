"""The kernel's litmus tests as ``emu.harness.litmus`` patterns, and the table of what each model shows.

Each pattern is one file of tools/memory-model/litmus-tests (and three of
Documentation/litmus-tests/atomic) in torvalds/linux, under its file name, with the expected
result of its ``Result:`` line and its ``exists`` clause as a predicate over the outcome (the
registers in thread order, then the final value of every variable, ``emu.harness.litmus`` with
``final=True``). Rewriting notes: every variable starts at 0 (``emu.harness.litmus`` resets them); a
spinlock is a variable taken with ``spin_lock``/``spin_unlock``; a control dependency is an
``if``; in MP+onceassign+derefonce the pointer ``y`` holds 1 for ``&x`` and 0 for its initial
``&z`` (``z`` stays 0), the dereference picks the address from it.

Patterns that are not kernel files follow them, named in its style, each "Never" by LKMM: the
coherence tests with RMWs without return value (``stadd``: ``atomic_add`` through
``rmw_no_return``, which the weak model buffers; ``atomic_add``: the vocabulary's), and SB and MP
with each value-returning RMW of ``FULL_RMWS`` for the barriers (Documentation/atomic_t.txt).

    python -m emu.harness.litmus_kernel --iterations 2000 --models sc,tso,weak
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from emu.harness.litmus import Histogram, Outcome, Thread, litmus
from emu.machine.atomics import Atomics

V = Mapping[str, int]


@dataclass(frozen=True)
class Pattern:
    name: str  # the kernel's file name, without .litmus
    result: str  # its "Result:" line: Never, Sometimes (or Always)
    threads: tuple[Thread, ...]
    variables: tuple[str, ...]
    regs: tuple[str, ...]  # the outcome's register names, thread by thread ("1:r0")
    exists: Callable[[Mapping[str, int]], bool]  # over registers and final values by name

    def holds(self, outcome: Outcome) -> bool:
        return self.exists(dict(zip(self.regs + self.variables, outcome, strict=True)))


# -- the threads, grouped by pattern family ---------------------------------------------------
def w(name: str, val: int = 1) -> Thread:
    def t(a: Atomics, v: V) -> int:
        a.WRITE_ONCE(v[name], val)
        return 0

    return t


def _mp_writer(order: str) -> Thread:
    def t(a: Atomics, v: V) -> int:
        a.WRITE_ONCE(v["x"], 1)
        if order == "wmb":
            a.smp_wmb()
        if order == "release":
            a.smp_store_release(v["y"], 1)
        else:
            a.WRITE_ONCE(v["y"], 1)
        return 0

    return t


def _mp_reader(order: str) -> Thread:
    def t(a: Atomics, v: V) -> tuple[int, int]:
        r0 = a.smp_load_acquire(v["y"]) if order == "acquire" else a.READ_ONCE(v["y"])
        if order == "rmb":
            a.smp_rmb()
        return r0, a.READ_ONCE(v["x"])

    return t


def _sb(me: str, other: str, order: str) -> Thread:
    def t(a: Atomics, v: V) -> int:
        a.WRITE_ONCE(v[me], 1)
        if order == "mb":
            a.smp_mb()
        return a.READ_ONCE(v[other])

    return t


def _sb_rfi(me: str, other: str) -> Thread:
    def t(a: Atomics, v: V) -> tuple[int, int]:
        a.WRITE_ONCE(v[me], 1)
        return a.READ_ONCE(v[me]), a.READ_ONCE(v[other])

    return t


def _lb(src: str, dst: str, kind: str) -> Thread:
    def t(a: Atomics, v: V) -> int:
        r = a.smp_load_acquire(v[src]) if kind == "acquire" else a.READ_ONCE(v[src])
        if kind == "mb":
            a.smp_mb()
        if kind == "ctrl":
            if r:
                a.WRITE_ONCE(v[dst], 1)
        elif kind == "release":
            a.smp_store_release(v[dst], 1)
        else:
            a.WRITE_ONCE(v[dst], 1)
        return r

    return t


def _iriw_reader(first: str, second: str, mb: bool) -> Thread:
    def t(a: Atomics, v: V) -> tuple[int, int]:
        r0 = a.READ_ONCE(v[first])
        if mb:
            a.smp_mb()
        return r0, a.READ_ONCE(v[second])

    return t


def _read_then_write(src: str, dst: str, kind: str) -> Thread:
    """``r0 = src; dst = 1`` with ``kind``: once, acquire-release, release (the WRC/ISA2 middle)."""

    def t(a: Atomics, v: V) -> int:
        r0 = a.smp_load_acquire(v[src]) if kind == "acqrel" else a.READ_ONCE(v[src])
        if kind in ("acqrel", "release"):
            a.smp_store_release(v[dst], 1)
        else:
            a.WRITE_ONCE(v[dst], 1)
        return r0

    return t


def _read2(first: str, second: str, kind: str) -> Thread:
    def t(a: Atomics, v: V) -> tuple[int, int]:
        r0 = a.smp_load_acquire(v[first]) if kind == "acquire" else a.READ_ONCE(v[first])
        if kind == "rmb":
            a.smp_rmb()
        if kind == "mb":
            a.smp_mb()
        return r0, a.READ_ONCE(v[second])

    return t


def corr_reader(a: Atomics, v: V) -> tuple[int, int]:
    return a.READ_ONCE(v["x"]), a.READ_ONCE(v["x"])


def corw_p0(a: Atomics, v: V) -> int:
    r0 = a.READ_ONCE(v["x"])
    a.WRITE_ONCE(v["x"], 1)
    return r0


def cowr_p0(a: Atomics, v: V) -> int:
    a.WRITE_ONCE(v["x"], 1)
    return a.READ_ONCE(v["x"])


def coww_p0(a: Atomics, v: V) -> int:
    a.WRITE_ONCE(v["x"], 1)
    a.WRITE_ONCE(v["x"], 2)
    return 0


def isa2_lock_p0(a: Atomics, v: V) -> int:
    a.spin_lock(v["mylock"])
    a.WRITE_ONCE(v["x"], 1)
    a.WRITE_ONCE(v["y"], 1)
    a.spin_unlock(v["mylock"])
    return 0


def isa2_lock_p1(a: Atomics, v: V) -> int:
    a.spin_lock(v["mylock"])
    r0 = a.READ_ONCE(v["y"])
    a.WRITE_ONCE(v["z"], 1)
    a.spin_unlock(v["mylock"])
    return r0


def z6_lock_p1_after_spinlock(a: Atomics, v: V) -> int:
    a.spin_lock(v["mylock"])
    a.smp_mb__after_spinlock()
    r0 = a.READ_ONCE(v["y"])
    a.WRITE_ONCE(v["z"], 1)
    a.spin_unlock(v["mylock"])
    return r0


def z6_p2(a: Atomics, v: V) -> int:
    a.WRITE_ONCE(v["z"], 2)
    a.smp_mb()
    return a.READ_ONCE(v["x"])


def z6_release_p0(a: Atomics, v: V) -> int:
    a.WRITE_ONCE(v["x"], 1)
    a.smp_store_release(v["y"], 1)
    return 0


def lb_unlocklock_p0(a: Atomics, v: V) -> int:
    a.spin_lock(v["s"])
    r1 = a.READ_ONCE(v["x"])
    a.spin_unlock(v["s"])
    a.spin_lock(v["t"])
    a.WRITE_ONCE(v["y"], 1)
    a.spin_unlock(v["t"])
    return r1


def mp_unlocklock_p0(a: Atomics, v: V) -> int:
    a.spin_lock(v["s"])
    a.WRITE_ONCE(v["x"], 1)
    a.spin_unlock(v["s"])
    a.spin_lock(v["t"])
    a.WRITE_ONCE(v["y"], 1)
    a.spin_unlock(v["t"])
    return 0


def mp_polocks_p0(a: Atomics, v: V) -> int:
    a.WRITE_ONCE(v["x"], 1)
    a.spin_lock(v["mylock"])
    a.WRITE_ONCE(v["y"], 1)
    a.spin_unlock(v["mylock"])
    return 0


def mp_polocks_p1(a: Atomics, v: V) -> tuple[int, int]:
    a.spin_lock(v["mylock"])
    r0 = a.READ_ONCE(v["y"])
    a.spin_unlock(v["mylock"])
    return r0, a.READ_ONCE(v["x"])


def mp_porevlocks_p0(a: Atomics, v: V) -> tuple[int, int]:
    r0 = a.READ_ONCE(v["y"])
    a.spin_lock(v["mylock"])
    r1 = a.READ_ONCE(v["x"])
    a.spin_unlock(v["mylock"])
    return r0, r1


def mp_porevlocks_p1(a: Atomics, v: V) -> int:
    a.spin_lock(v["mylock"])
    a.WRITE_ONCE(v["x"], 1)
    a.spin_unlock(v["mylock"])
    a.WRITE_ONCE(v["y"], 1)
    return 0


def onceassign_p0(a: Atomics, v: V) -> int:
    a.WRITE_ONCE(v["x"], 1)
    a.rcu_assign_pointer(v["y"], 1)  # y = &x
    return 0


def derefonce_p1(a: Atomics, v: V) -> tuple[int, int]:
    r0 = a.rcu_dereference(v["y"])
    return r0, a.READ_ONCE(v["x"] if r0 else v["z"])


def r_p0(mb: bool) -> Thread:
    def t(a: Atomics, v: V) -> int:
        a.WRITE_ONCE(v["x"], 1)
        if mb:
            a.smp_mb()
        a.WRITE_ONCE(v["y"], 1)
        return 0

    return t


def r_p1(mb: bool) -> Thread:
    def t(a: Atomics, v: V) -> int:
        a.WRITE_ONCE(v["y"], 2)
        if mb:
            a.smp_mb()
        return a.READ_ONCE(v["x"])

    return t


def s_p0(wmb: bool) -> Thread:
    def t(a: Atomics, v: V) -> int:
        a.WRITE_ONCE(v["x"], 2)
        if wmb:
            a.smp_wmb()
        a.WRITE_ONCE(v["y"], 1)
        return 0

    return t


def s_p1(acquire: bool) -> Thread:
    def t(a: Atomics, v: V) -> int:
        r0 = a.smp_load_acquire(v["y"]) if acquire else a.READ_ONCE(v["y"])
        a.WRITE_ONCE(v["x"], 1)
        return r0

    return t


def cmpxchg_fail(me: str, other: str, after_atomic: bool) -> Thread:
    def t(a: Atomics, v: V) -> tuple[int, int]:
        a.WRITE_ONCE(v[me], 1)
        r1 = a.cmpxchg(v["z"], 1, 0)  # z is 0: it fails
        if after_atomic:
            a.smp_mb__after_atomic()
        return a.READ_ONCE(v[other]), r1

    return t


def rmw_after_atomic_p0(a: Atomics, v: V) -> tuple[int, int]:
    r0 = a.READ_ONCE(v["x"])
    a.smp_rmb()
    return r0, a.atomic_read(v["y"])


def rmw_after_atomic_p1(a: Atomics, v: V) -> int:
    a.atomic_inc(v["y"])
    a.smp_mb__after_atomic()
    a.WRITE_ONCE(v["x"], 1)
    return 0


# -- coherence with RMWs without return value, and the fully ordered RMWs (not kernel files) --
def stadd(a: Atomics, i: int, d: int) -> None:
    """``atomic_add(d, i)`` as the kernel's counts take it (``mm_count_add_unordered``): through
    ``rmw_no_return``, so that the weak model buffers it like a store (arm64's ``STADD``)."""

    def apply() -> None:
        k = a.lock_rmw(i)
        a.w[i] = a.w[i] + d
        a.unlock(k)

    a.rmw_no_return(i, apply)


def _add(kind: str) -> Callable[[Atomics, int, int], None]:
    """The RMW without return value of a coherence pattern: ``stadd`` (buffered by the weak model)
    or the vocabulary's ``atomic_add`` (applied at once, unordered)."""
    if kind == "stadd":
        return stadd
    return lambda a, i, d: a.atomic_add(i, d)


def _co_writes(kind: str, ops: str, name: str = "x") -> Thread:
    """A thread of writes and reads to ``name`` in program order: ``a<d>`` an RMW adding d,
    ``w<v>`` a WRITE_ONCE of v, ``r`` a READ_ONCE (its registers, in order; 0 if none)."""
    add = _add(kind)

    def t(a: Atomics, v: V) -> int | tuple[int, ...]:
        regs: list[int] = []
        for op in ops.split():
            if op[0] == "a":
                add(a, v[name], int(op[1:]))
            elif op[0] == "w":
                a.WRITE_ONCE(v[name], int(op[1:]))
            else:
                regs.append(a.READ_ONCE(v[name]))
        return tuple(regs) if len(regs) > 1 else (regs[0] if regs else 0)

    return t


def _coherence(kind: str) -> list[Pattern]:
    """CoRR, CoRW, CoWR and CoWW with RMWs without return value among the writes: LKMM's
    coherence forbids each ``exists`` (a load reading a write coherence-before one it, or its own
    CPU, already saw or did; a CPU's writes to one word reaching memory out of program order)."""
    return [
        _p(f"CoRR+{kind}+Once", "Never", [_co_writes(kind, "a1"), corr_reader], "x", f"{NOREG} 1:r0 1:r1",
           lambda o: o["1:r0"] == 1 and o["1:r1"] == 0),
        # P0 read P1's write, then its own add is coherence-before that write
        _p(f"CoRW+once{kind}+Once", "Never", [_co_writes(kind, "r a1"), w("x", 2)], "x", "0:r0 1:_",
           lambda o: o["0:r0"] == 2 and o["x"] == 2),
        # P0 read P1's add (x == 2), then its own write is coherence-before the add (x ends 1 + 2)
        _p(f"CoRW+poonceonce+{kind}", "Never", [corw_p0, _co_writes(kind, "a2")], "x", "0:r0 1:_",
           lambda o: o["0:r0"] == 2 and o["x"] == 3),
        # P0's load must see its own add: after P1's write (x ends 3) only 3, before it (x ends 2) 1 or 2
        _p(f"CoWR+{kind}once+Once", "Never", [_co_writes(kind, "a1 r"), w("x", 2)], "x", "0:r0 1:_",
           lambda o: o["0:r0"] not in ((3,) if o["x"] == 3 else (1, 2))),
        # P0's store may not land inside P1's add (lost: x ends 2, r0 == 2); up to this pattern's return
        # every model here lost a plain store landing between another CPU's RMW's read and write
        _p(f"CoWR+poonceonce+{kind}", "Never", [cowr_p0, _co_writes(kind, "a2")], "x", "0:r0 1:_",
           lambda o: o["0:r0"] == 2 or o["x"] == 2),
        _p(f"CoWW+{kind}once", "Never", [_co_writes(kind, "a1 w5")], "x", NOREG, lambda o: o["x"] != 5),
        _p(f"CoWW+once{kind}", "Never", [_co_writes(kind, "w5 a1")], "x", NOREG, lambda o: o["x"] != 6),
    ]  # fmt: skip


# each value-returning RMW on a word of its own thread (0 at the start: cmpxchg succeeds)
FULL_RMWS: dict[str, Callable[[Atomics, int], object]] = {
    "xchg": lambda a, i: a.xchg(i, 1),
    "atomic_xchg": lambda a, i: a.atomic_xchg(i, 1),
    "atomic_long_xchg": lambda a, i: a.atomic_long_xchg(i, 1),
    "cmpxchg": lambda a, i: a.cmpxchg(i, 0, 1),
    "atomic_cmpxchg": lambda a, i: a.atomic_cmpxchg(i, 0, 1),
    "atomic_long_cmpxchg": lambda a, i: a.atomic_long_cmpxchg(i, 0, 1),
    "try_cmpxchg": lambda a, i: a.try_cmpxchg(i, 0, 1),
    "atomic_try_cmpxchg": lambda a, i: a.atomic_try_cmpxchg(i, 0, 1),
    "atomic_long_try_cmpxchg": lambda a, i: a.atomic_long_try_cmpxchg(i, 0, 1),
    "atomic_add_return": lambda a, i: a.atomic_add_return(i, 1),
    "atomic_sub_return": lambda a, i: a.atomic_sub_return(i, 1),
    "atomic_inc_return": lambda a, i: a.atomic_inc_return(i),
    "atomic_dec_return": lambda a, i: a.atomic_dec_return(i),
    "atomic_fetch_add": lambda a, i: a.atomic_fetch_add(i, 1),
    "atomic_dec_and_test": lambda a, i: a.atomic_dec_and_test(i),
    "atomic_sub_and_test": lambda a, i: a.atomic_sub_and_test(i, 1),
}


def _sb_rmw(me: str, other: str, priv: str, rmw: str) -> Thread:
    """SB with ``rmw`` for the smp_mb; the first load of ``other`` fills the CPU's view, so that
    the load after the RMW shows whether the RMW orders it after (a model may answer a load from
    the view): r0 is the load after the RMW, r1 the one before the store."""
    op = FULL_RMWS[rmw]

    def t(a: Atomics, v: V) -> tuple[int, int]:
        r1 = a.READ_ONCE(v[other])
        a.WRITE_ONCE(v[me], 1)
        op(a, v[priv])
        return a.READ_ONCE(v[other]), r1

    return t


def _mp_rmw_writer(rmw: str) -> Thread:
    op = FULL_RMWS[rmw]

    def t(a: Atomics, v: V) -> int:
        a.WRITE_ONCE(v["x"], 1)
        op(a, v["a"])
        a.WRITE_ONCE(v["y"], 1)
        return 0

    return t


def _mp_rmw_reader(rmw: str) -> Thread:
    """MP's reader with ``rmw`` for the smp_rmb, and a first load of x that fills the CPU's view."""
    op = FULL_RMWS[rmw]

    def t(a: Atomics, v: V) -> tuple[int, int, int]:
        r2 = a.READ_ONCE(v["x"])
        r0 = a.READ_ONCE(v["y"])
        op(a, v["b"])
        return r0, a.READ_ONCE(v["x"]), r2

    return t


def _full_rmw(rmw: str) -> list[Pattern]:
    """A value-returning RMW is fully ordered (Documentation/atomic_t.txt: "as if it had an
    smp_mb() on each side", a failed cmpxchg excepted): SB and MP with it for the barriers."""
    return [
        _p(f"SB+{rmw}onceonces", "Never", [_sb_rmw("x", "y", "a", rmw), _sb_rmw("y", "x", "b", rmw)], "x y a b",
           "0:r0 0:r1 1:r0 1:r1", _sb_exists),
        _p(f"MP+{rmw}onceonce+{rmw}onceonce", "Never", [_mp_rmw_writer(rmw), _mp_rmw_reader(rmw)], "x y a b",
           f"{NOREG} 1:r0 1:r1 1:r2", _mp_exists),
    ]  # fmt: skip


def _p(
    name: str, result: str, threads: Sequence[Thread], variables: str, regs: str, exists: Callable[[Mapping[str, int]], bool]
) -> Pattern:
    return Pattern(name, result, tuple(threads), tuple(variables.split()), tuple(regs.split()), exists)


def _mp_exists(o: Mapping[str, int]) -> bool:
    return o["1:r0"] == 1 and o["1:r1"] == 0


def _iriw_exists(o: Mapping[str, int]) -> bool:
    return o["1:r0"] == 1 and o["1:r1"] == 0 and o["3:r0"] == 1 and o["3:r1"] == 0


def _sb_exists(o: Mapping[str, int]) -> bool:
    return o["0:r0"] == 0 and o["1:r0"] == 0


def _lb_exists(o: Mapping[str, int]) -> bool:
    return o["0:r0"] == 1 and o["1:r0"] == 1


def _isa2_exists(o: Mapping[str, int]) -> bool:
    return o["1:r0"] == 1 and o["2:r0"] == 1 and o["2:r1"] == 0


def _wrc_exists(o: Mapping[str, int]) -> bool:
    return o["1:r0"] == 1 and o["2:r0"] == 1 and o["2:r1"] == 0


def _z6_exists(o: Mapping[str, int]) -> bool:
    return o["1:r0"] == 1 and o["z"] == 2 and o["2:r0"] == 0


NOREG = "0:_"  # a thread that only writes still returns a (dummy) observation
PATTERNS: tuple[Pattern, ...] = (
    _p("CoRR+poonceonce+Once", "Never", [w("x"), corr_reader], "x", f"{NOREG} 1:r0 1:r1", lambda o: o["1:r0"] == 1 and o["1:r1"] == 0),
    _p("CoRW+poonceonce+Once", "Never", [corw_p0, w("x", 2)], "x", "0:r0 1:_", lambda o: o["x"] == 2 and o["0:r0"] == 2),
    _p("CoWR+poonceonce+Once", "Never", [cowr_p0, w("x", 2)], "x", "0:r0 1:_", lambda o: o["x"] == 1 and o["0:r0"] == 2),
    _p("CoWW+poonceonce", "Never", [coww_p0], "x", NOREG, lambda o: o["x"] == 1),
    _p(
        "IRIW+fencembonceonces+OnceOnce", "Never",
        [w("x"), _iriw_reader("x", "y", True), w("y"), _iriw_reader("y", "x", True)],
        "x y", f"{NOREG} 1:r0 1:r1 2:_ 3:r0 3:r1", _iriw_exists,
    ),
    _p(
        "IRIW+poonceonces+OnceOnce", "Sometimes",
        [w("x"), _iriw_reader("x", "y", False), w("y"), _iriw_reader("y", "x", False)],
        "x y", f"{NOREG} 1:r0 1:r1 2:_ 3:r0 3:r1", _iriw_exists,
    ),
    _p(
        "ISA2+pooncelock+pooncelock+pombonce", "Never", [isa2_lock_p0, isa2_lock_p1, _read2("z", "x", "mb")],
        "x y z mylock", f"{NOREG} 1:r0 2:r0 2:r1", _isa2_exists,
    ),
    _p(
        "ISA2+poonceonces", "Sometimes", [_mp_writer("once"), _read_then_write("y", "z", "once"), _read2("z", "x", "once")],
        "x y z", f"{NOREG} 1:r0 2:r0 2:r1", _isa2_exists,
    ),
    _p(
        "ISA2+pooncerelease+poacquirerelease+poacquireonce", "Never",
        [_mp_writer("release"), _read_then_write("y", "z", "acqrel"), _read2("z", "x", "acquire")],
        "x y z", f"{NOREG} 1:r0 2:r0 2:r1", _isa2_exists,
    ),
    _p("LB+fencembonceonce+ctrlonceonce", "Never", [_lb("x", "y", "ctrl"), _lb("y", "x", "mb")], "x y", "0:r0 1:r0", _lb_exists),
    _p("LB+poacquireonce+pooncerelease", "Never", [_lb("x", "y", "release"), _lb("y", "x", "acquire")], "x y", "0:r0 1:r0", _lb_exists),
    _p("LB+poonceonces", "Sometimes", [_lb("x", "y", "once"), _lb("y", "x", "once")], "x y", "0:r0 1:r0", _lb_exists),
    _p(
        "LB+unlocklockonceonce+poacquireonce", "Never", [lb_unlocklock_p0, _lb("y", "x", "acquire")], "x y s t", "0:r0 1:r0", _lb_exists
    ),
    _p("MP+fencewmbonceonce+fencermbonceonce", "Never", [_mp_writer("wmb"), _mp_reader("rmb")], "x y", f"{NOREG} 1:r0 1:r1", _mp_exists),
    _p("MP+onceassign+derefonce", "Never", [onceassign_p0, derefonce_p1], "x y z", f"{NOREG} 1:r0 1:r1", _mp_exists),
    _p("MP+polocks", "Never", [mp_polocks_p0, mp_polocks_p1], "x y mylock", f"{NOREG} 1:r0 1:r1", _mp_exists),
    _p("MP+poonceonces", "Sometimes", [_mp_writer("once"), _mp_reader("once")], "x y", f"{NOREG} 1:r0 1:r1", _mp_exists),
    _p("MP+pooncerelease+poacquireonce", "Never", [_mp_writer("release"), _mp_reader("acquire")], "x y", f"{NOREG} 1:r0 1:r1", _mp_exists),
    _p(
        "MP+porevlocks", "Never", [mp_porevlocks_p0, mp_porevlocks_p1], "x y mylock", "0:r0 0:r1 1:_",
        lambda o: o["0:r0"] == 1 and o["0:r1"] == 0,
    ),
    _p(
        "MP+unlocklockonceonce+fencermbonceonce", "Never", [mp_unlocklock_p0, _mp_reader("rmb")], "x y s t", f"{NOREG} 1:r0 1:r1",
        _mp_exists,
    ),
    _p("R+fencembonceonces", "Never", [r_p0(True), r_p1(True)], "x y", f"{NOREG} 1:r0", lambda o: o["y"] == 2 and o["1:r0"] == 0),
    _p("R+poonceonces", "Sometimes", [r_p0(False), r_p1(False)], "x y", f"{NOREG} 1:r0", lambda o: o["y"] == 2 and o["1:r0"] == 0),
    _p(
        "S+fencewmbonceonce+poacquireonce", "Never", [s_p0(True), s_p1(True)], "x y", f"{NOREG} 1:r0",
        lambda o: o["x"] == 2 and o["1:r0"] == 1,
    ),
    _p("S+poonceonces", "Sometimes", [s_p0(False), s_p1(False)], "x y", f"{NOREG} 1:r0", lambda o: o["x"] == 2 and o["1:r0"] == 1),
    _p("SB+fencembonceonces", "Never", [_sb("x", "y", "mb"), _sb("y", "x", "mb")], "x y", "0:r0 1:r0", _sb_exists),
    _p("SB+poonceonces", "Sometimes", [_sb("x", "y", "once"), _sb("y", "x", "once")], "x y", "0:r0 1:r0", _sb_exists),
    _p(
        "SB+rfionceonce-poonceonces", "Sometimes", [_sb_rfi("x", "y"), _sb_rfi("y", "x")], "x y", "0:r1 0:r2 1:r3 1:r4",
        lambda o: o["0:r2"] == 0 and o["1:r4"] == 0,
    ),
    _p(
        "WRC+poonceonces+Once", "Sometimes", [w("x"), _read_then_write("x", "y", "once"), _read2("y", "x", "once")],
        "x y", f"{NOREG} 1:r0 2:r0 2:r1", _wrc_exists,
    ),
    _p(
        "WRC+pooncerelease+fencermbonceonce+Once", "Never", [w("x"), _read_then_write("x", "y", "release"), _read2("y", "x", "rmb")],
        "x y", f"{NOREG} 1:r0 2:r0 2:r1", _wrc_exists,
    ),
    _p(
        "Z6.0+pooncelock+poonceLock+pombonce", "Never", [isa2_lock_p0, z6_lock_p1_after_spinlock, z6_p2],
        "x y z mylock", f"{NOREG} 1:r0 2:r0", _z6_exists,
    ),
    _p(
        "Z6.0+pooncelock+pooncelock+pombonce", "Sometimes", [isa2_lock_p0, isa2_lock_p1, z6_p2],
        "x y z mylock", f"{NOREG} 1:r0 2:r0", _z6_exists,
    ),
    _p(
        "Z6.0+pooncerelease+poacquirerelease+fencembonceonce", "Sometimes", [z6_release_p0, _read_then_write("y", "z", "acqrel"), z6_p2],
        "x y z", f"{NOREG} 1:r0 2:r0", _z6_exists,
    ),
    # Documentation/litmus-tests/atomic
    _p(
        "cmpxchg-fail-ordered-1", "Never", [cmpxchg_fail("x", "y", True), cmpxchg_fail("y", "x", True)], "x y z",
        "0:r0 0:r1 1:r0 1:r1", _sb_exists,
    ),
    _p(
        "cmpxchg-fail-unordered-1", "Sometimes", [cmpxchg_fail("x", "y", False), cmpxchg_fail("y", "x", False)], "x y z",
        "0:r0 0:r1 1:r0 1:r1", _sb_exists,
    ),
    _p(
        "Atomic-RMW+mb__after_atomic-is-stronger-than-acquire", "Never", [rmw_after_atomic_p0, rmw_after_atomic_p1], "x y",
        "0:r0 0:r1 1:_", lambda o: o["0:r0"] == 1 and o["0:r1"] == 0,
    ),
)  # fmt: skip
# not kernel files: coherence with RMWs without return value, and each value-returning RMW for smp_mb
PATTERNS += (*_coherence("stadd"), *_coherence("atomic_add"), *[p for rmw in FULL_RMWS for p in _full_rmw(rmw)])
BY_NAME = {p.name: p for p in PATTERNS}
MODELS = ("sc", "tso", "weak")


def run(pattern: Pattern, model: str, iterations: int, seed: int = 0) -> tuple[int, Histogram]:
    """How many iterations showed the ``exists`` clause, and the whole histogram."""
    hist = litmus(
        list(pattern.threads), list(pattern.variables), iterations=iterations, memory_model=model, seed=seed, final=True, orders=True
    )
    return sum(n for o, n in hist.items() if pattern.holds(o)), hist


def table(models: Sequence[str], iterations: int, seed: int = 0) -> str:
    """The completeness table: per pattern and model, the iterations whose outcome satisfies the
    ``exists`` clause (a "Never" pattern must show 0: otherwise marked FORBIDDEN)."""
    head = f"| pattern | Result | {' | '.join(models)} |"
    lines = [head, "|" + "---|" * (2 + len(models))]
    for p in PATTERNS:
        cells = []
        for m in models:
            hits, _ = run(p, m, iterations, seed)
            cell = f"{hits}" if p.result != "Never" or not hits else f"{hits} FORBIDDEN"
            cells.append(cell)
        lines.append(f"| {p.name} | {p.result} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m emu.harness.litmus_kernel", description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--seed", type=int, default=0)
    ns = ap.parse_args(argv)
    print(f"exists-clause hits in {ns.iterations} iterations per cell")
    print(table(ns.models.split(","), ns.iterations, ns.seed))


if __name__ == "__main__":
    main()
