"""Closed-form distributions of a replay window ``W`` (seconds); no OAuth semantics here.

A cell of the model (flow x mechanism x scenario) is a *mixture*: with weight ``w_k`` the
window follows component ``k``; with the remaining weight ``W = 0`` (nothing usable). Two
component shapes cover every cell (the semantics live in ``components.py``):

* :class:`ShiftedUniform`: ``W = c + a * V`` with ``V ~ Uniform(0, 1)``; with probability
  ``rho`` a revocation caps it at ``d`` (``W = min(W, d)``). A bearer access token stolen at a
  uniform age is ``c = 0, a = L``; a refresh token is ``c = L, a = A_RT``.
* :class:`ProofWindow`: ``W = min(max(0, P - delta), Y)`` with ``delta ~ Uniform(0, Delta)``
  (capture delay) and ``Y ~ Uniform(0, L)`` (the token's remaining life): one captured DPoP
  proof accepted for ``P`` seconds after its creation.

Each component gives ``E[W]``, ``P(W > 0)``, the survival ``P(W > t)`` and the Laplace
transform ``E[exp(-s W)]``; the last one turns an exponential time-to-use into the share of
thefts still usable when used (``1 - E[exp(-W / mean)]``). All functions are vectorised over
flows (arrays of shape ``(n,)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "Component",
    "ProofWindow",
    "ShiftedUniform",
    "conditional_quantiles",
    "mixture_laplace",
    "mixture_mean",
    "mixture_p_positive",
    "mixture_survival",
]

FloatArray = npt.NDArray[np.floating[Any]]


def _safe(x: FloatArray) -> FloatArray:
    """A divisor that is never 0 (spreads under a nanosecond are treated as 0)."""
    return np.where(x > 1e-9, x, 1.0)


@dataclass(frozen=True, slots=True)
class ShiftedUniform:
    """``W = c + a V`` (``V ~ U(0, 1)``), capped at ``d`` with probability ``rho``."""

    w: FloatArray
    c: FloatArray
    a: FloatArray
    rho: FloatArray
    d: float

    def mean(self) -> FloatArray:
        c, a, rho, d = self.c, self.a, self.rho, self.d
        plain = c + a / 2.0
        x = d - c
        capped = np.where(x <= 0, d, np.where(x >= a, plain, c + x - x * x / (2.0 * _safe(a))))
        return np.asarray((1.0 - rho) * plain + rho * capped)

    def p_positive(self) -> FloatArray:
        pos = (self.c > 0) | (self.a > 0)
        capped_pos = pos & (self.d > 0)
        return np.asarray((1.0 - self.rho) * pos + self.rho * capped_pos, dtype=float)

    def survival(self, t: FloatArray) -> FloatArray:
        """``P(W > t)``; ``t`` broadcasts as ``(n, m)`` against ``(n, 1)`` parameters."""
        c, a, rho = self.c[:, None], self.a[:, None], self.rho[:, None]
        base = np.where(
            t < c, 1.0, np.where(a > 1e-9, np.clip(1.0 - (t - c) / _safe(a), 0.0, 1.0), 0.0)
        )
        return np.asarray(base * ((1.0 - rho) + rho * (t < self.d)))

    def laplace(self, s: float) -> FloatArray:
        """``E[exp(-s W)]``; the revocation cap is evaluated only where it binds."""
        c, a, rho, d = self.c, self.a, self.rho, self.d
        sa = s * a
        # (1 - e^{-sa}) / (sa), with its limit 1 at a = 0
        frac = np.ones_like(sa)
        big = sa > 1e-9
        frac[big] = -np.expm1(-sa[big]) / sa[big]
        e_sc = np.exp(-s * c)
        plain = e_sc * frac
        out = plain.copy()
        x = d - c
        binds = (rho > 0) & (x < a)
        if np.any(binds):
            capped = np.full(int(binds.sum()), np.exp(-s * d))
            xb, ab, sab, eb = x[binds], a[binds], sa[binds], e_sc[binds]
            inside = xb > 0
            capped[inside] = eb[inside] * -np.expm1(-s * xb[inside]) / sab[inside] + (
                ab[inside] - xb[inside]
            ) / ab[inside] * np.exp(-s * d)
            rb = rho[binds]
            out[binds] = (1.0 - rb) * plain[binds] + rb * capped
        return np.asarray(out)

    def upper(self) -> FloatArray:
        return np.asarray(self.c + self.a)


@dataclass(frozen=True, slots=True)
class ProofWindow:
    """``W = min(max(0, P - delta), Y)``, ``delta ~ U(0, Delta)``, ``Y ~ U(0, L)``."""

    w: FloatArray
    P: FloatArray
    Delta: FloatArray
    L: FloatArray

    def _px(self, t: FloatArray) -> FloatArray:
        """``P(max(0, P - delta) > t)``."""
        P, dl = self.P[:, None], self.Delta[:, None]
        return np.asarray(
            np.where(dl > 1e-9, np.clip((P - t) / _safe(dl), 0.0, 1.0), (t < P).astype(float))
        )

    def survival(self, t: FloatArray) -> FloatArray:
        L = self.L[:, None]
        return np.asarray(self._px(t) * np.clip(1.0 - t / _safe(L), 0.0, 1.0) * (L > 0))

    def mean(self) -> FloatArray:
        """``E[W]``: the integral of the survival, piece by piece."""
        out = np.zeros_like(self.P)
        for lo, hi, al, be, ga in self._pieces():
            out = out + _poly_integral((al, be, ga), lo, hi)
        return np.asarray(out)

    def p_positive(self) -> FloatArray:
        px = np.where(
            self.Delta > 1e-9,
            np.clip(self.P / _safe(self.Delta), 0.0, 1.0),
            (self.P > 0).astype(float),
        )
        return np.asarray(px * (self.L > 0))

    def laplace(self, s: float) -> FloatArray:
        """``E[exp(-s W)] = 1 - s * integral of exp(-s t) P(W > t) dt``, exact per piece.

        Where ``s`` times the piece's end is under 0.01 the exact antiderivative cancels
        badly, so ``exp(-s t)`` is replaced by its second-order series (relative error under
        ``(s t)^3 / 6 < 2e-7``).
        """
        total = np.zeros_like(self.P)
        for lo, hi, al, be, ga in self._pieces():
            live = hi > lo
            small = live & (s * hi < 0.01)
            exact = live & ~small
            if np.any(small):
                i = small
                coef = (
                    al[i],
                    be[i] - s * al[i],
                    ga[i] - s * be[i] + s * s * al[i] / 2,
                    -s * ga[i] + s * s * be[i] / 2,
                    s * s * ga[i] / 2,
                )
                total[i] += _poly_integral(coef, lo[i], hi[i])
            if np.any(exact):
                i = exact
                total[i] += _poly_exp_integral(al[i], be[i], ga[i], s, lo[i], hi[i])
        return np.asarray(np.clip(1.0 - s * total, 0.0, 1.0))

    def upper(self) -> FloatArray:
        return np.asarray(np.minimum(self.P, self.L))

    def _pieces(self) -> tuple[tuple[FloatArray, ...], ...]:
        """``(lo, hi, a0, a1, a2)``: the survival is ``a0 + a1 t + a2 t^2`` on ``[lo, hi]``.

        Before the kink ``P - Delta`` every capture is still inside its window, so only the
        token's remaining life ``1 - t / L`` counts; after it both factors are linear.
        """
        hi = np.where(self.L > 0, np.maximum(np.minimum(self.P, self.L), 0.0), 0.0)
        kink = np.clip(self.P - self.Delta, 0.0, hi)
        inv_l = 1.0 / _safe(self.L)
        inv_d = 1.0 / _safe(self.Delta)
        zero, one = np.zeros_like(hi), np.ones_like(hi)
        return (
            (zero, kink, one, -inv_l, zero),
            (kink, hi, self.P * inv_d, -(inv_d + self.P * inv_d * inv_l), inv_d * inv_l),
        )


def _poly_integral(coef: Sequence[FloatArray], a: FloatArray, b: FloatArray) -> FloatArray:
    """``integral_a^b sum_k coef[k] t^k dt`` (0 where ``b <= a``), by Horner's rule."""
    fa = np.zeros_like(a)
    fb = np.zeros_like(b)
    for k in range(len(coef) - 1, -1, -1):
        fa = (fa + coef[k] / (k + 1)) * a
        fb = (fb + coef[k] / (k + 1)) * b
    return np.asarray(np.where(b > a, fb - fa, 0.0))


def _poly_exp_integral(
    al: FloatArray, be: FloatArray, ga: FloatArray, s: float, a: FloatArray, b: FloatArray
) -> FloatArray:
    """``integral_a^b exp(-s t) (al + be t + ga t^2) dt`` (0 where ``b <= a``)."""

    def anti(t: FloatArray) -> FloatArray:
        poly = (al + be * t + ga * t * t) / s + (be + 2.0 * ga * t) / s**2 + 2.0 * ga / s**3
        return np.asarray(-np.exp(-s * t) * poly)

    return np.asarray(np.where(b > a, anti(b) - anti(a), 0.0))


Component = ShiftedUniform | ProofWindow


def mixture_mean(comps: Sequence[Component]) -> FloatArray:
    """``E[W]`` of the mixture (zeros included)."""
    out = np.zeros_like(comps[0].w)
    for cp in comps:
        out = out + cp.w * cp.mean()
    return np.asarray(out)


def mixture_p_positive(comps: Sequence[Component]) -> FloatArray:
    """``P(W > 0)``."""
    out = np.zeros_like(comps[0].w)
    for cp in comps:
        out = out + cp.w * cp.p_positive()
    return np.asarray(np.clip(out, 0.0, 1.0))


def mixture_survival(comps: Sequence[Component], t: FloatArray) -> FloatArray:
    """``P(W > t)`` with ``t`` of shape ``(m,)`` or ``(n, m)``; returns ``(n, m)``."""
    tt = np.asarray(t, dtype=float)
    if tt.ndim == 1:
        tt = tt[None, :]
    out = np.zeros((comps[0].w.shape[0], tt.shape[1]))
    for cp in comps:
        out += cp.w[:, None] * cp.survival(tt)
    return out


def mixture_laplace(comps: Sequence[Component], s: float) -> FloatArray:
    """``E[exp(-s W)]`` of the mixture (the ``W = 0`` mass contributes 1)."""
    rest = np.ones_like(comps[0].w)
    out = np.zeros_like(comps[0].w)
    for cp in comps:
        rest = rest - cp.w
        out = out + cp.w * cp.laplace(s)
    return np.asarray(out + np.clip(rest, 0.0, 1.0))


def conditional_quantiles(
    comps: Sequence[Component], p_pos: FloatArray, qs: Sequence[float]
) -> list[FloatArray]:
    """Quantiles of ``W`` given ``W > 0`` by vectorised bisection on the survival."""
    hi0 = np.zeros_like(comps[0].w)
    for cp in comps:
        hi0 = np.maximum(hi0, cp.upper())
    hi0 = hi0 + 1.0
    out = []
    for q in qs:
        target = p_pos * (1.0 - q)
        lo, hi = np.zeros_like(hi0), hi0.copy()
        for _ in range(48):
            mid = (lo + hi) / 2.0
            above = mixture_survival(comps, mid[:, None])[:, 0] > target
            lo = np.where(above, mid, lo)
            hi = np.where(above, hi, mid)
        out.append(np.asarray(np.where(p_pos > 0, hi, 0.0)))
    return out
