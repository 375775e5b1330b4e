"""The kernel's own litmus tests (``emu.harness.litmus_kernel``) under every memory model.

Soundness is asserted: a pattern whose file says "Result: Never" shows its ``exists`` clause in no
iteration, under sc, tso and weak; so are the coherence patterns with RMWs without return value
and the SB and MP patterns with each value-returning RMW for the barriers (LKMM: Never).
Completeness is asserted only where the model's documentation promises it: store buffering under tso
and weak, and the Sometimes outcomes of MP, WRC, ISA2, IRIW, R and the failed cmpxchg under weak,
each given a few seeded tries (an outcome is a race between processes: each try is a fresh machine);
whether the processes interleave at all is the host's, so those tests run in the race stage. The
table of what each model shows is docs/memory-models.md.
"""

from __future__ import annotations

import pytest

from emu.harness.config import RunConfig
from emu.harness.litmus_kernel import BY_NAME, FULL_RMWS, MODELS, PATTERNS, Pattern, run
from emu.harness.parts import memory_model_for, parts_for
from emu.harness.testbed import Testbed
from emu.machine.atomics import Atomics
from emu.machine.memory_model import WeakAtomics, _ordered
from tests.procs import require_overlap

N = 200
NEVER = [p for p in PATTERNS if p.result == "Never"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("pattern", NEVER, ids=[p.name for p in NEVER])
def test_never_outcomes_never_appear(pattern: Pattern, model: str) -> None:
    hits, hist = run(pattern, model, N, seed=11)
    assert sum(hist.values()) == N
    assert hits == 0, f"{pattern.name} under {model}: the forbidden outcome in {hits} of {N}: {dict(hist)}"


def seen_within(pattern: Pattern, model: str, tries: int = 6, iterations: int = 400) -> int:
    """Iterations showing the exists clause over up to ``tries`` seeded runs (stops at the first hit).
    None in any, and the host ran the bodies together too seldom for that to mean anything: the
    test is skipped as inconclusive (``require_overlap``)."""
    overlapped = 0
    for seed in range(tries):
        hits, hist = run(pattern, model, iterations, seed=seed)
        if hits:
            return hits
        overlapped += hist.overlapped
    require_overlap(overlapped, tries * iterations, f"{pattern.name} under {model}")
    return 0


@pytest.mark.race  # an outcome that needs the processes to interleave: the host decides whether they do
@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("SB+poonceonces", "tso"),
        ("SB+poonceonces", "weak"),
        ("MP+poonceonces", "weak"),
        ("WRC+poonceonces+Once", "weak"),
        ("ISA2+poonceonces", "weak"),
        ("IRIW+poonceonces+OnceOnce", "weak"),
        ("R+poonceonces", "weak"),
        ("cmpxchg-fail-unordered-1", "weak"),
    ],
)
def test_sometimes_outcomes_appear(name: str, model: str) -> None:
    assert seen_within(BY_NAME[name], model), f"{name} never showed its allowed outcome under {model}"


@pytest.mark.race  # an outcome that needs the processes to interleave: the host decides whether they do
@pytest.mark.parametrize(("name", "shown_by"), [("MP+poonceonces", "weak"), ("SB+poonceonces", "tso")])
def test_sc_shows_no_reordering(name: str, shown_by: str) -> None:
    """An absence means something only where the same test can show the outcome: under a model
    that reorders, the same pattern shows it (LB is left out: no model here shows load buffering)."""
    assert seen_within(BY_NAME[name], shown_by), f"{name} never showed its outcome under {shown_by}: the test cannot see it"
    hits, hist = run(BY_NAME[name], "sc", N, seed=3)
    assert sum(hist.values()) == N and hits == 0, dict(hist)


NEW = [p for p in PATTERNS if p.name.startswith("Co") and ("stadd" in p.name or "atomic_add" in p.name)]


def test_the_coherence_and_full_rmw_patterns_are_in_the_suite() -> None:
    """CoRR, CoRW, CoWR, CoWW with both RMWs without return value, and SB and MP for each value-returning RMW."""
    for kind in ("stadd", "atomic_add"):
        for co in ("CoRR", "CoRW", "CoWR", "CoWW"):
            assert any(p.name.startswith(co) and kind in p.name for p in NEW), (co, kind)
    for rmw in FULL_RMWS:
        assert {f"SB+{rmw}onceonces", f"MP+{rmw}onceonce+{rmw}onceonce"} <= set(BY_NAME)
        assert BY_NAME[f"SB+{rmw}onceonces"].result == "Never"
    assert {"xchg", "cmpxchg", "atomic_add_return", "atomic_dec_and_test"} <= set(FULL_RMWS)


@pytest.mark.race  # an outcome that needs the processes to interleave: the host decides whether they do
def test_the_full_rmw_patterns_catch_an_rmw_that_loses_its_acquire_half(monkeypatch: pytest.MonkeyPatch) -> None:
    """The RMW tests can fail: with xchg only release-ordered (a model bug), MP+xchg shows its
    forbidden outcome under weak (the release half is checked, scripted, by the test below)."""
    monkeypatch.setattr(WeakAtomics, "xchg", _ordered(Atomics.atomic_xchg, "release"))
    assert seen_within(BY_NAME["MP+xchgonceonce+xchgonceonce"], "weak"), "a release-only xchg passed MP+xchg"


def test_every_model_has_the_whole_vocabulary() -> None:
    """A scheme can say what its patch says under any model: the same names everywhere."""
    names = {n for n in dir(Atomics) if not n.startswith("_")}
    for fam in ("atomic_add_return", "xchg", "cmpxchg", "try_cmpxchg", "atomic_fetch_add"):
        for suffix in ("", "_relaxed", "_acquire", "_release"):
            assert f"{fam}{suffix}" in names
    for n in ("smp_rmb", "smp_wmb", "smp_mb__before_atomic", "smp_mb__after_atomic", "smp_mb__after_spinlock", "atomic_inc_not_zero"):
        assert n in names


# each RMW family, called on word y so that it succeeds (cmpxchg finds 0)
FAMILIES = {
    "atomic_add_return": (1,),
    "xchg": (5,),
    "cmpxchg": (0, 1),
    "try_cmpxchg": (0, 1),
    "atomic_fetch_add": (1,),
}


@pytest.mark.parametrize("suffix", ["", "_relaxed", "_acquire", "_release"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_weak_model_gives_each_rmw_the_ordering_its_name_says(family: str, suffix: str) -> None:
    """Not just the name: a full or release RMW makes an earlier buffered store visible before it;
    a full or acquire one makes later loads read memory, not the CPU's view from before it. The
    model's random choices are pinned, so each case is one scripted interleaving."""
    with Testbed(cpus=1, memory_model="weak") as tb:
        a = tb.local_cpu(0).atomics
        assert isinstance(a, WeakAtomics)
        w, (x, y, z) = tb.words, (tb.scratch(0), tb.scratch(1), tb.scratch(2))  # one cache line each
        a._rand = lambda: 0.99  # type: ignore[method-assign]  # no store commits on its own; loads read memory
        a.READ_ONCE(z)  # this CPU's view holds z == 0
        w[z] = 7  # another CPU's store reaches memory
        a.WRITE_ONCE(x, 1)  # buffered
        assert w[x] == 0
        getattr(a, family + suffix)(y, *FAMILIES[family])
        drained = w[x] == 1
        a._rand = lambda: 0.0  # type: ignore[method-assign]  # a load is answered from the view wherever it can be
        refreshed = a.READ_ONCE(z) == 7
        assert (drained, refreshed) == (suffix in ("", "_release"), suffix in ("", "_acquire")), (family + suffix, drained, refreshed)


def test_arch_model_per_architecture() -> None:
    """``--memory-model arch`` is the model each arch class declares; an arch mutant runs on its architecture's."""

    def model(arch: str, memory_model: str = "arch", mutant: str | None = None) -> str:
        return memory_model_for(RunConfig(arch=arch, memory_model=memory_model, mutant=mutant))

    assert model("x86") == "tso" and model("x86-lazy-mask") == "tso" and model("s390") == "tso"
    assert model("arm64") == "weak" and model("powerpc") == "weak"
    assert model("x86", "weak") == "weak"
    assert model("powerpc", mutant="powerpc-trim-vs-kthread") == "weak"
    assert parts_for(RunConfig(arch="arm64", memory_model="arch")).memory_model == "weak"
