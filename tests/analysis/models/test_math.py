"""Closed-form window distributions against direct sampling of their definitions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenlib.analysis.models._math import (
    ProofWindow,
    ShiftedUniform,
    conditional_quantiles,
    mixture_laplace,
    mixture_mean,
    mixture_p_positive,
    mixture_survival,
)

N = 200_000


def _a(x: float) -> np.ndarray:
    return np.array([float(x)])


def _sample_su(c: float, a: float, rho: float, d: float, rng: np.random.Generator) -> np.ndarray:
    w = c + a * rng.random(N)
    revoked = rng.random(N) < rho
    return np.where(revoked, np.minimum(w, d), w)


def _sample_proof(P: float, dl: float, L: float, rng: np.random.Generator) -> np.ndarray:
    x = np.maximum(0.0, P - dl * rng.random(N))
    return np.minimum(x, L * rng.random(N))


@settings(max_examples=25, deadline=None)
@given(
    c=st.floats(0, 5000),
    a=st.floats(0, 5000),
    rho=st.floats(0, 1),
    d=st.floats(1, 8000),
    s=st.floats(1e-4, 0.1),
)
def test_shifted_uniform_matches_sampling(
    c: float, a: float, rho: float, d: float, s: float
) -> None:
    comp = ShiftedUniform(_a(1.0), _a(c), _a(a), _a(rho), d)
    x = _sample_su(c, a, rho, d, np.random.default_rng(1))
    scale = max(c + a, 1.0)
    assert comp.mean()[0] == pytest.approx(x.mean(), abs=0.02 * scale)
    assert comp.laplace(s)[0] == pytest.approx(np.exp(-s * x).mean(), abs=0.01)
    t = np.array([[0.3 * scale, 0.7 * scale]])
    assert mixture_survival([comp], t)[0] == pytest.approx((x[:, None] > t).mean(axis=0), abs=0.01)


@settings(max_examples=25, deadline=None)
@given(P=st.floats(1, 600), dl=st.floats(0, 600), L=st.floats(1, 7200), s=st.floats(1e-3, 0.5))
def test_proof_window_matches_sampling(P: float, dl: float, L: float, s: float) -> None:
    comp = ProofWindow(_a(1.0), _a(P), _a(dl), _a(L))
    x = _sample_proof(P, dl, L, np.random.default_rng(2))
    assert comp.mean()[0] == pytest.approx(x.mean(), abs=0.02 * P)
    assert comp.p_positive()[0] == pytest.approx((x > 0).mean(), abs=0.01)
    assert comp.laplace(s)[0] == pytest.approx(np.exp(-s * x).mean(), abs=0.01)


def test_mixture_zero_mass_is_never_usable() -> None:
    comp = ShiftedUniform(_a(0.25), _a(0.0), _a(100.0), _a(0.0), 1e9)
    assert mixture_p_positive([comp])[0] == pytest.approx(0.25)
    assert mixture_mean([comp])[0] == pytest.approx(12.5)
    # the W = 0 mass (0.75) contributes exp(0) = 1 to the Laplace transform
    assert mixture_laplace([comp], 1.0)[0] == pytest.approx(0.75 + 0.25 * (1 - np.exp(-100)) / 100)


def test_conditional_quantiles_of_a_uniform() -> None:
    comp = ShiftedUniform(_a(0.5), _a(0.0), _a(1000.0), _a(0.0), 1e9)
    p50, p90 = conditional_quantiles([comp], mixture_p_positive([comp]), (0.5, 0.9))
    assert p50[0] == pytest.approx(500.0, rel=1e-6)
    assert p90[0] == pytest.approx(900.0, rel=1e-6)


def test_revocation_at_zero_delay_leaves_only_the_unrevoked_share() -> None:
    comp = ShiftedUniform(_a(1.0), _a(0.0), _a(100.0), _a(0.4), 0.0)
    assert comp.p_positive()[0] == pytest.approx(0.6)
    assert comp.mean()[0] == pytest.approx(0.6 * 50.0)
