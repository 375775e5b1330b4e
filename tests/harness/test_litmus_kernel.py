"""The kernel's own litmus tests (``emu.harness.litmus_kernel``) under every memory model.

Soundness is asserted: a pattern whose file says "Result: Never" shows its ``exists`` clause in no
iteration, under sc, tso and weak. Completeness is asserted only where the model's documentation
promises it: store buffering under tso and weak, and the Sometimes outcomes of MP, WRC, ISA2,
IRIW, R and the failed cmpxchg under weak, each given a few seeded tries (an outcome is a race between processes:
each try is a fresh machine). The table of what each model shows is docs/memory-models.md.
"""

from __future__ import annotations

import pytest

from emu.harness.litmus_kernel import BY_NAME, MODELS, PATTERNS, Pattern, run
from emu.machine.atomics import Atomics
from emu.machine.memory_model import ARCH_MODELS, TsoAtomics, WeakAtomics, model_for

N = 200
NEVER = [p for p in PATTERNS if p.result == "Never"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("pattern", NEVER, ids=[p.name for p in NEVER])
def test_never_outcomes_never_appear(pattern: Pattern, model: str) -> None:
    hits, hist = run(pattern, model, N, seed=11)
    assert sum(hist.values()) == N
    assert hits == 0, f"{pattern.name} under {model}: the forbidden outcome in {hits} of {N}: {dict(hist)}"


def seen_within(pattern: Pattern, model: str, tries: int = 6, iterations: int = 400) -> int:
    """Iterations showing the exists clause over up to ``tries`` seeded runs (stops at the first hit)."""
    for seed in range(tries):
        hits, _ = run(pattern, model, iterations, seed=seed)
        if hits:
            return hits
    return 0


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


@pytest.mark.parametrize("name", ["MP+poonceonces", "SB+poonceonces", "LB+poonceonces"])
def test_sc_shows_no_reordering(name: str) -> None:
    hits, _ = run(BY_NAME[name], "sc", N, seed=3)
    assert hits == 0


def test_every_model_has_the_whole_vocabulary() -> None:
    """A scheme can say what its patch says under any model: the same names everywhere, and the
    weak model gives each RMW family its four orderings."""
    names = {n for n in dir(Atomics) if not n.startswith("_")}
    for cls in (TsoAtomics, WeakAtomics):
        assert names <= {n for n in dir(cls) if not n.startswith("_")}
    for fam in ("atomic_add_return", "xchg", "cmpxchg", "try_cmpxchg", "atomic_fetch_add"):
        for suffix in ("", "_relaxed", "_acquire", "_release"):
            assert f"{fam}{suffix}" in names
    for n in ("smp_rmb", "smp_wmb", "smp_mb__before_atomic", "smp_mb__after_atomic", "smp_mb__after_spinlock", "atomic_inc_not_zero"):
        assert n in names


def test_arch_model_per_architecture() -> None:
    assert model_for("arch", "x86") == "tso" and model_for("arch", "s390") == "tso"
    assert model_for("arch", "arm64") == "weak" and model_for("arch", "powerpc") == "weak"
    assert model_for("weak", "x86") == "weak"
    assert set(ARCH_MODELS) >= {"x86", "x86-lazy-mask", "s390", "arm64", "powerpc"}
