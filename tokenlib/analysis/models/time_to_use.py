"""How soon an attacker uses what it stole, and the share of thefts still usable by then.

Expected exposure hours grow linearly with a token's lifetime, so on that metric alone a
bearer token capped at five minutes "beats" DPoP. An attacker who uses a stolen token within
a minute sees the opposite ranking. The model therefore also reports ``p_usable = P(T < W)``:
the share of stolen tokens (or proofs) still usable at the moment the attacker uses them.

``T`` is a two-part mixture (parameters A23a-c, all assumptions anchored on breach write-ups,
see ``data/reference/model_parameters.csv``): with weight ``fast_share`` automated use,
exponential with mean ``fast_mean_s`` (scripts that harvest logs or repositories); otherwise
delayed manual use, exponential with mean ``slow_mean_s`` (days, as in the integrator and
support-file incidents). With exponential parts, ``P(T < W) = 1 - E[exp(-W / mean)]``, the
Laplace transform of the closed-form window (``_math``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tokenlib.analysis.models._math import Component, mixture_laplace
from tokenlib.analysis.params import ModelParameters

__all__ = ["TimeToUse"]

FloatArray = npt.NDArray[np.floating[Any]]


@dataclass(frozen=True, slots=True)
class TimeToUse:
    """The attacker's time-to-use distribution (seconds from theft to first use)."""

    fast_share: float
    fast_mean_s: float
    slow_mean_s: float

    @classmethod
    def from_params(cls, params: ModelParameters) -> TimeToUse:
        return cls(params.ttu_fast_share, params.ttu_fast_mean_s, params.ttu_slow_mean_s)

    @property
    def parts(self) -> tuple[tuple[float, float], ...]:
        """``(weight, mean)`` of each exponential part."""
        return ((self.fast_share, self.fast_mean_s), (1.0 - self.fast_share, self.slow_mean_s))

    def cdf(self, t: float | FloatArray) -> FloatArray:
        """``P(T <= t)``."""
        tt = np.asarray(t, dtype=float)
        out = np.zeros_like(tt)
        for w, mean in self.parts:
            out = out + w * -np.expm1(-tt / max(mean, 1e-12))
        return np.asarray(out)

    def p_usable(self, comps: Sequence[Component]) -> FloatArray:
        """``P(T < W)`` for a mixture of window components (``W = 0`` mass never usable)."""
        out = np.zeros_like(comps[0].w)
        for w, mean in self.parts:
            if w <= 0:
                continue
            out = out + w * (1.0 - mixture_laplace(comps, 1.0 / max(mean, 1e-12)))
        return np.asarray(np.clip(out, 0.0, 1.0))
