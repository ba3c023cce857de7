"""Joint uncertainty: every assumption drawn at once within its stated range.

The tornado (``sensitivity.tornado``) moves one assumption at a time; a headline number that
rests on assumptions is shown instead with an interval from *joint* draws of every parameter
whose status is ``assumption`` (decision thresholds A20-A22 included) within its ``[low,
high]`` range from ``data/reference/model_parameters.csv``. A claim is a finding only when it
holds in (nearly) every draw; :func:`holds` says so and names the assumption it depends on
most otherwise.

Draws are independent per parameter: uniform on ``[low, high]``, log-uniform where the range
spans a factor of 10 or more (lifetimes, delays), so each order of magnitude gets equal
weight. Sampling is seeded and reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tokenlib.analysis.params import ModelParameters, ParameterSpec, parameter_specs

__all__ = [
    "DEFAULT_DRAWS",
    "Interval",
    "draw_parameters",
    "evaluate",
    "holds",
    "interval",
    "most_influential",
    "uncertain_parameters",
]

#: Draws used by the report (the quick test report uses fewer).
DEFAULT_DRAWS = 100
#: Share of draws in which a claim must hold to be stated as a finding.
FINDING_LEVEL = 0.95


def uncertain_parameters(statuses: Iterable[str] = ("assumption",)) -> tuple[ParameterSpec, ...]:
    """Parameters drawn jointly: those with one of ``statuses`` and a non-empty range."""
    keep = set(statuses)
    return tuple(s for s in parameter_specs() if s.status in keep and s.high > s.low)


def draw_parameters(
    params: ModelParameters | None = None,
    *,
    n: int = DEFAULT_DRAWS,
    seed: int = 0,
    specs: Sequence[ParameterSpec] | None = None,
) -> list[ModelParameters]:
    """``n`` joint draws of every uncertain parameter (others keep ``params``' values)."""
    base = params or ModelParameters.from_reference()
    chosen = tuple(specs) if specs is not None else uncertain_parameters()
    rng = np.random.default_rng(seed)
    u = rng.random((n, len(chosen)))
    columns: dict[str, np.ndarray] = {}
    for j, s in enumerate(chosen):
        if s.low > 0 and s.high / s.low >= 10.0:
            columns[s.name] = np.exp(np.log(s.low) + u[:, j] * (np.log(s.high) - np.log(s.low)))
        else:
            columns[s.name] = s.low + u[:, j] * (s.high - s.low)
    return [base.replace(**{name: float(v[i]) for name, v in columns.items()}) for i in range(n)]


@dataclass(frozen=True, slots=True)
class Interval:
    """A point value with the central ``level`` interval of its joint draws."""

    value: float
    low: float
    high: float
    level: float

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high


def interval(value: float, draws: Sequence[float], *, level: float = 0.9) -> Interval:
    """The ``level`` central interval of ``draws`` (NaN draws ignored) around ``value``."""
    arr = np.asarray([d for d in draws if np.isfinite(d)], dtype=float)
    if arr.size == 0:
        return Interval(value, float("nan"), float("nan"), level)
    lo, hi = np.quantile(arr, [(1 - level) / 2, 1 - (1 - level) / 2])
    return Interval(value, float(min(lo, value)), float(max(hi, value)), level)


def evaluate(
    fn: Callable[[ModelParameters], Any],
    draws: Sequence[ModelParameters],
) -> list[Any]:
    """``fn`` at every draw (a thin loop, kept so callers do not re-implement it)."""
    return [fn(p) for p in draws]


def most_influential(values: Sequence[float], draws: Sequence[ModelParameters]) -> str:
    """The drawn parameter whose values are most rank-correlated with ``values`` (one per
    draw, NaN ignored); ``""`` when ``values`` do not vary or nothing was drawn."""
    v = pd.Series(np.asarray(values, dtype=float))
    keep = v.notna().to_numpy()
    if keep.sum() < 3 or v[keep].nunique() < 2:
        return ""
    frame = pd.DataFrame([d.as_dict() for d, k in zip(draws, keep, strict=True) if k])
    frame = frame.loc[:, frame.nunique() > 1]
    if frame.empty:
        return ""
    corr = frame.rank().corrwith(v[keep].reset_index(drop=True).rank()).abs().dropna()
    return str(corr.idxmax()) if not corr.empty else ""


def holds(
    checks: Sequence[bool],
    draws: Sequence[ModelParameters],
    *,
    level: float = FINDING_LEVEL,
) -> dict[str, Any]:
    """Whether a claim holds across the draws; when it does not, the assumption it depends on.

    Returns ``share`` (draws where it holds), ``finding`` (``share >= level``) and
    ``depends_on``: the parameter whose drawn values best separate the draws where the claim
    holds from those where it fails (largest absolute rank correlation), or ``""``.
    """
    ok = np.asarray(checks, dtype=bool)
    share = float(ok.mean()) if ok.size else float("nan")
    depends = ""
    if ok.size and 0 < ok.sum() < ok.size:
        frame = pd.DataFrame([d.as_dict() for d in draws])
        frame = frame.loc[:, frame.nunique() > 1]
        if not frame.empty:
            corr = frame.rank().corrwith(pd.Series(ok.astype(float)).rank()).abs()
            corr = corr.dropna()
            if not corr.empty:
                depends = str(corr.idxmax())
    return {"share": share, "finding": bool(share >= level), "depends_on": depends}
