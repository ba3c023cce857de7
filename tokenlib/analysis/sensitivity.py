"""Sensitivity of the headline numbers and claims to the assumptions.

Two views of the same question, "does this number or claim rest on an assumption?":

* one at a time: :func:`tornado` moves each parameter to its ``low`` and ``high`` from
  ``model_parameters.csv`` and records a metric; :func:`sweep` walks one parameter over a grid;
* jointly: :func:`conclusion_robustness` re-checks every claim of the report
  (:data:`CONCLUSIONS`) under joint draws of every assumption
  (:func:`tokenlib.analysis.uncertainty.draw_parameters`). A claim is a *finding* only where it
  holds in at least 95% of the draws; otherwise the table names the assumption it depends on.

Every metric (:data:`METRICS`) is a function ``(flows, services, params, *,
authorization_servers=None) -> float`` on the exposure models of :mod:`tokenlib.analysis.models`
(token-theft scenarios unless named otherwise). "Removed" metrics compare every flow moved to a
mechanism, in one support view (``today``: RS support from the inventory; ``upgraded``: every RS
supports every mechanism), with today's inventory -- the one baseline. Calls with the same
frames and parameters share one :class:`~tokenlib.analysis.models.FlowContext` and every cell
evaluation, so a draw costs one context build.
"""

from __future__ import annotations

import contextlib
import inspect
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from tokenlib.analysis._diskcache import cached
from tokenlib.analysis.models import (
    TOKEN_THEFT_SCENARIOS,
    VIEWS,
    Exposure,
    FlowContext,
    View,
)
from tokenlib.analysis.models import Metric as ExposureMetric
from tokenlib.analysis.models import usable_share as models_usable_share
from tokenlib.analysis.models._math import ProofWindow, mixture_mean, mixture_p_positive
from tokenlib.analysis.params import ModelParameters, parameter_specs
from tokenlib.analysis.uncertainty import DEFAULT_DRAWS, draw_parameters, holds

__all__ = [
    "COMPARED_MECHANISMS",
    "CONCLUSIONS",
    "DEFAULT_SENSITIVITY_PARAMS",
    "FAST_ATTACKER",
    "METRICS",
    "RECOMMENDATIONS_MIN_REMOVED",
    "THEFT_SCENARIOS",
    "Conclusion",
    "Metric",
    "blast_radius_removed",
    "conclusion_checks",
    "conclusion_robustness",
    "credential_store_share",
    "exposure_hours",
    "headline_metrics",
    "mean_captured_proof_window",
    "recommendations_removed_share",
    "shared_contexts",
    "sweep",
    "theft_removed",
    "tornado",
    "usable_share",
]

FloatArray = npt.NDArray[np.floating[Any]]
Frame: TypeAlias = pd.DataFrame
Metric = Callable[..., float]
"""``fn(flows, services, params, *, authorization_servers=None) -> float``."""

#: Ids of the token-theft scenarios (the headline group).
THEFT_SCENARIOS: tuple[str, ...] = tuple(s.id for s in TOKEN_THEFT_SCENARIOS)
#: Mechanisms whose removed exposure the headline and the metrics report.
COMPARED_MECHANISMS = ("mtls", "dpop_shared_cache", "dpop_nonce_shared_cache", "token_binding")
#: Attacker who uses a stolen token within about a minute (the time-to-use claim pins these).
FAST_ATTACKER = {"ttu_fast_share": 1.0, "ttu_fast_mean_s": 60.0}
#: Floor the recommendation claim asserts: share of token-theft exposure removed.
RECOMMENDATIONS_MIN_REMOVED = 0.10

# Modelling assumptions swept by default by the tornado (costs and decision thresholds only
# move priorities; they enter the joint draws of conclusion_robustness).
DEFAULT_SENSITIVITY_PARAMS = (
    "rho_jwt",
    "rho_introspection",
    "e_rs",
    "p_inj",
    "p_key_non_extractable",
    "p_key_software",
    "p_key_hsm",
    "p_key_platform",
    "pi_persist",
    "rt_absolute_default_s",
    "proof_leak_delay_max_s",
    "as_session_max_s",
    "p_attacker_first",
    "p_new_flow",
    "p_client_cred",
    "traffic_exponent",
    "w_at_rest_copy",
    "w_in_transit_token_and_proof",
    "w_live_client_compromise",
    "w_key_exfiltration",
    "w_refresh_token_theft",
    "ttu_fast_share",
    "ttu_fast_mean_s",
    "ttu_slow_mean_s",
    "scope_factor_read",
    "scope_factor_admin",
    "env_factor_staging",
    "env_factor_dev",
    "p_store_no_channel",
    "short_lifetime_s",
    "revocation_delay_s",
)


# --------------------------------------------------------------------------------------------
# Shared evaluation: one context and one set of cells per (frames, parameters)
# --------------------------------------------------------------------------------------------


_Cache = OrderedDict[tuple[Any, ...], tuple[tuple[Frame, ...], Exposure]]
_SCOPES: list[_Cache] = []
_CACHE_SIZE = 4


@contextlib.contextmanager
def shared_contexts() -> Iterator[None]:
    """Within this block, metric and conclusion calls on the *same frame objects* and equal
    parameters share one :class:`FlowContext` and every cell evaluation (do not modify the
    frames inside the block). :func:`conclusion_robustness`, :func:`conclusion_checks` and
    :func:`tokenlib.analysis.headline.headline_numbers` use it; outside it every call builds
    its own context."""
    _SCOPES.append(OrderedDict())
    try:
        yield
    finally:
        _SCOPES.pop()


def _evaluator(
    flows: Frame, services: Frame, params: ModelParameters | None, ases: Frame | None
) -> Exposure:
    """The evaluator of these frames and parameters; shared inside :func:`shared_contexts`
    (a small identity-keyed cache that holds the frames, so their ids cannot be reused while
    cached)."""
    p = params or ModelParameters.from_reference()
    cache = _SCOPES[-1] if _SCOPES else None
    key = (id(flows), id(services), id(ases), len(flows), len(services), p)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            cache.move_to_end(key)
            return hit[1]
    ev = Exposure.of(FlowContext.build(flows, services, p, authorization_servers=ases))
    if cache is not None:
        cache[key] = ((flows, services) if ases is None else (flows, services, ases), ev)
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    return ev


def _mask(ev: Exposure, paths: Iterable[str] | None) -> npt.NDArray[np.bool_]:
    if paths is None:
        return np.ones(ev.ctx.n, dtype=bool)
    return np.isin(np.asarray(ev.ctx.client_path, dtype=object), list(paths))


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def usable_share(
    flows: Frame,
    services: Frame,
    params: ModelParameters | None = None,
    *,
    mechanism: str | None = None,
    view: View = "today",
    authorization_servers: Frame | None = None,
) -> float:
    """Share of stolen tokens (token-theft scenarios, weighted by likelihood A17) still usable
    when the attacker uses them (``P(T < W)``); ``mechanism=None`` is today's inventory:
    :func:`tokenlib.analysis.models.usable_share` on this module's shared context."""
    ev = _evaluator(flows, services, params, authorization_servers)
    return models_usable_share(flows, services, mechanism=mechanism, view=view, context=ev.ctx)


def theft_removed(
    flows: Frame,
    services: Frame,
    params: ModelParameters | None = None,
    *,
    mechanism: str,
    view: View = "today",
    metric: ExposureMetric = "usable",
    paths: Iterable[str] | None = None,
    authorization_servers: Frame | None = None,
) -> float:
    """Share of today's token-theft exposure removed if every flow moved to ``mechanism`` in
    ``view`` (``metric`` ``usable`` or ``hours``; negative when worse than today)."""
    ev = _evaluator(flows, services, params, authorization_servers)
    sel = _mask(ev, paths)
    base = float(ev.per_flow("current", "today", metric)[sel].sum())
    after = float(ev.per_flow(mechanism, view, metric)[sel].sum())
    return 1.0 - after / base if base > 0 else float("nan")


def exposure_hours(
    flows: Frame,
    services: Frame,
    params: ModelParameters | None = None,
    *,
    mechanism: str | None = None,
    view: View = "today",
    authorization_servers: Frame | None = None,
) -> float:
    """Expected exposure hours of the token-theft group, summed over flows and weighted by
    what is at stake (``value`` x scenario weight x ``E[W]`` / 3600); ``None``: today."""
    ev = _evaluator(flows, services, params, authorization_servers)
    return float(ev.per_flow(mechanism or "current", view, "hours").sum())


def credential_store_share(
    flows: Frame,
    services: Frame,
    params: ModelParameters | None = None,
    *,
    authorization_servers: Frame | None = None,
) -> float:
    """Share of today's total usable exposure (every scenario group) that comes from a copy
    of the client's credential store (``key_exfiltration``)."""
    ev = _evaluator(flows, services, params, authorization_servers)
    store = float(ev.per_flow("current", "today", "usable", ("key_exfiltration",)).sum())
    total = store
    total += float(ev.per_flow("current", "today", "usable").sum())
    total += float(ev.per_flow("current", "today", "usable", ("issuer_key_compromise",)).sum())
    return _ratio(store, total)


def mean_captured_proof_window(
    flows: Frame,
    services: Frame,
    params: ModelParameters | None = None,
    *,
    authorization_servers: Frame | None = None,
) -> float:
    """Mean over flows of how long one captured DPoP proof stays acceptable, given it is
    acceptable at all, without a jti store: ``E[W | W > 0]`` of ``min(max(0, P - delta), R)``
    with the RS's iat window ``P`` (D1 default), capture delay ``delta ~ U(0, A8)`` and the
    token's remaining life ``R`` (RFC 9449 §11.1), seconds."""
    ctx = _evaluator(flows, services, params, authorization_servers).ctx
    one = np.ones(ctx.n)
    comp = ProofWindow(one, ctx.iat_past, one * ctx.params.proof_leak_delay_max_s, ctx.lifetime)
    mean, ppos = mixture_mean([comp]), mixture_p_positive([comp])
    sel = ppos > 0
    return float((mean[sel] / ppos[sel]).mean()) if sel.any() else 0.0


def _accepted(fn: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
    """The keyword arguments ``fn`` accepts (blast.py and recommend.py are being rewritten)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # pragma: no cover
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in sig.parameters}


def blast_radius_removed(
    flows: Frame,
    services: Frame,
    params: ModelParameters | None = None,
    *,
    mechanism: str = "dpop_nonce_shared_cache",
    view: View = "today",
    authorization_servers: Frame | None = None,
) -> float:
    """``reduction_total`` of :func:`tokenlib.analysis.blast.blast_before_after` for
    ``mechanism`` (every flow moved to it vs today)."""
    from tokenlib.analysis import blast

    p = params or ModelParameters.from_reference()
    fn = blast.blast_before_after
    ctx = _evaluator(flows, services, p, authorization_servers).ctx
    kw = _accepted(
        fn,
        mechanisms=[mechanism],
        view=view,
        authorization_servers=authorization_servers,
        context=ctx,
        paths=False,
    )
    df = fn(flows, services, p, **kw)
    row = df[df["mechanism"].astype(str) == mechanism]
    return float(row["reduction_total"].iloc[0]) if len(row) else float("nan")


def recommendations_removed_share(
    flows: Frame,
    services: Frame,
    params: ModelParameters | None = None,
    *,
    authorization_servers: Frame | None = None,
) -> float:
    """Share of today's token-theft exposure the recommendations remove
    (:func:`tokenlib.analysis.recommend.recommend`, without its own robustness draws)."""
    from tokenlib.analysis import recommend as rec_mod

    p = params or ModelParameters.from_reference()
    fn = rec_mod.recommend
    kw = _accepted(fn, draws=0, authorization_servers=authorization_servers)
    r = fn(flows, services, p, **kw)
    removed = float(r["exposure_removed"].sum()) if "exposure_removed" in r else float("nan")
    if "exposure_current" in r:
        base = float(r["exposure_current"].sum())
    else:
        base = float(
            _evaluator(flows, services, p, authorization_servers)
            .per_flow("current", "today", "usable")
            .sum()
        )
    return _ratio(removed, base)


def _removed_metric(mech: str, view: View, metric: ExposureMetric) -> Metric:
    def fn(
        flows: Frame,
        services: Frame,
        params: ModelParameters | None = None,
        *,
        authorization_servers: Frame | None = None,
    ) -> float:
        return theft_removed(
            flows,
            services,
            params,
            mechanism=mech,
            view=view,
            metric=metric,
            authorization_servers=authorization_servers,
        )

    fn.__name__ = f"{'theft' if metric == 'usable' else 'hours'}_removed_{mech}_{view}"
    return fn


def _build_metrics() -> dict[str, Metric]:
    out: dict[str, Metric] = {"usable_share_today": usable_share}
    for metric in ("usable", "hours"):
        for view in VIEWS:
            for mech in COMPARED_MECHANISMS:
                f = _removed_metric(mech, view, metric)
                out[f.__name__] = f
    out["blast_removed_dpop_nonce_shared_cache_today"] = blast_radius_removed
    out["credential_store_share_today"] = credential_store_share
    out["mean_captured_proof_window_s"] = mean_captured_proof_window
    return out


#: Named metrics: ``usable_share_today``; ``theft_removed_<mechanism>_<view>`` (usable metric)
#: and ``hours_removed_<mechanism>_<view>`` (expected hours) for :data:`COMPARED_MECHANISMS`
#: in both views; ``blast_removed_dpop_nonce_shared_cache_today``;
#: ``credential_store_share_today``; ``mean_captured_proof_window_s``.
METRICS: dict[str, Metric] = _build_metrics()


def headline_metrics(
    flows: Frame,
    services: Frame,
    params: ModelParameters | None = None,
    *,
    metrics: Iterable[str] = tuple(METRICS),
    authorization_servers: Frame | None = None,
) -> dict[str, float]:
    """Values of the named metrics (see :data:`METRICS`) at ``params``."""
    p = params or ModelParameters.from_reference()
    return {
        m: float(_resolve(m)[1](flows, services, p, authorization_servers=authorization_servers))
        for m in metrics
    }


def _resolve(metric: str | Metric) -> tuple[str, Metric]:
    if callable(metric):
        return getattr(metric, "__name__", "custom"), metric
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(METRICS)}")
    return metric, METRICS[metric]


def tornado(
    flows: Frame,
    services: Frame,
    params: ModelParameters | None = None,
    *,
    metric: str | Metric = "theft_removed_dpop_nonce_shared_cache_today",
    names: Sequence[str] = DEFAULT_SENSITIVITY_PARAMS,
    authorization_servers: Frame | None = None,
) -> pd.DataFrame:
    """One-at-a-time low/high effect of each parameter on ``metric``, largest swing first.

    Columns: ``id, name, status, base_value, low, high, metric, metric_base, metric_low,
    metric_high, delta_low, delta_high, swing``.
    """
    p = params or ModelParameters.from_reference()
    mname, fn = _resolve(metric)
    specs = {s.name: s for s in parameter_specs()}
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}")
    ases = authorization_servers
    base = float(fn(flows, services, p, authorization_servers=ases))
    rows = []
    for name in names:
        sp_ = specs[name]
        lo = float(fn(flows, services, p.replace(**{name: sp_.low}), authorization_servers=ases))
        hi = float(fn(flows, services, p.replace(**{name: sp_.high}), authorization_servers=ases))
        rows.append(
            {
                "id": sp_.id,
                "name": name,
                "status": sp_.status,
                "base_value": getattr(p, name),
                "low": sp_.low,
                "high": sp_.high,
                "metric": mname,
                "metric_base": base,
                "metric_low": lo,
                "metric_high": hi,
                "delta_low": lo - base,
                "delta_high": hi - base,
                "swing": abs(hi - lo),
            }
        )
    return pd.DataFrame(rows).sort_values("swing", ascending=False, ignore_index=True)


def sweep(
    flows: Frame,
    services: Frame,
    params: ModelParameters | None = None,
    *,
    name: str,
    values: Sequence[float] | None = None,
    metrics: Iterable[str | Metric] = ("theft_removed_dpop_nonce_shared_cache_today",),
    points: int = 7,
    authorization_servers: Frame | None = None,
) -> pd.DataFrame:
    """Metric values over a grid of one parameter (default: ``points`` from low to high).

    Long columns: ``name, value, metric, result``.
    """
    p = params or ModelParameters.from_reference()
    specs = {s.name: s for s in parameter_specs()}
    if name not in specs:
        raise ValueError(f"unknown parameter {name!r}")
    grid = (
        list(values)
        if values is not None
        else list(np.linspace(specs[name].low, specs[name].high, points))
    )
    resolved = [_resolve(m) for m in metrics]
    rows = []
    for v in grid:
        pv = p.replace(**{name: float(v)})
        for mname, fn in resolved:
            res = float(fn(flows, services, pv, authorization_servers=authorization_servers))
            rows.append({"name": name, "value": float(v), "metric": mname, "result": res})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Conclusions
# --------------------------------------------------------------------------------------------

Check = Callable[[Frame, Frame, ModelParameters, "Frame | None"], bool]


@dataclass(frozen=True, slots=True)
class Conclusion:
    """A claim of the report, checkable under any parameters.

    ``check(flows, services, params, authorization_servers) -> bool``. ``max_draws`` caps the
    joint draws an expensive check is evaluated on (``None``: all of them).
    """

    id: str
    text: str
    check: Check
    max_draws: int | None = None


def _sum(
    ev: Exposure,
    mech: str,
    view: View,
    metric: ExposureMetric,
    sel: Any = None,
    scenarios: Sequence[str] = THEFT_SCENARIOS,
) -> float:
    v = ev.per_flow(mech, view, metric, scenarios)
    return float(v[sel].sum()) if sel is not None else float(v.sum())


def _c_dpop_browser_mobile(f: Frame, s: Frame, p: ModelParameters, a: Frame | None) -> bool:
    ev = _evaluator(f, s, p, a)
    sel = _mask(ev, ("browser", "mobile"))
    if not sel.any():
        return True
    dpop = _sum(ev, "dpop_nonce_shared_cache", "upgraded", "usable", sel)
    return dpop < _sum(ev, "bearer", "today", "usable", sel)


def _c_mtls_backend(f: Frame, s: Frame, p: ModelParameters, a: Frame | None) -> bool:
    ev = _evaluator(f, s, p, a)
    sel = _mask(ev, ("backend_e2e",))
    if not sel.any():
        return True
    for metric in ("usable", "hours"):
        mtls = _sum(ev, "mtls", "today", metric, sel)
        dpop = _sum(ev, "dpop_nonce_shared_cache", "today", metric, sel)
        if mtls > dpop * (1.0 + 1e-9):
            return False
    return True


def _c_token_binding(f: Frame, s: Frame, p: ModelParameters, a: Frame | None) -> bool:
    ev = _evaluator(f, s, p, a)
    if ev.ctx.enforceable("token_binding", "today").any():
        return False
    tb = _sum(ev, "token_binding", "today", "usable")
    return bool(np.isclose(tb, _sum(ev, "bearer", "today", "usable"), rtol=1e-12, atol=0.0))


def _c_shared_store(f: Frame, s: Frame, p: ModelParameters, a: Frame | None) -> bool:
    ev = _evaluator(f, s, p, a)
    sel = ev.ctx.instances > 1
    if not sel.any():
        return True
    scen = ("in_transit_token_and_proof",)
    shared = _sum(ev, "dpop_shared_cache", "upgraded", "usable", sel, scen)
    nonce = _sum(ev, "dpop_nonce", "upgraded", "usable", sel, scen)
    return shared < nonce


def _short_bearer_flows(f: Frame, p: ModelParameters) -> Frame:
    life = f["access_token_lifetime_s"].to_numpy(dtype=float)
    short = np.minimum(life, p.short_lifetime_s).astype(f["access_token_lifetime_s"].dtype)
    return f.assign(access_token_lifetime_s=short)


def _c_time_to_use_flip(f: Frame, s: Frame, p: ModelParameters, a: Frame | None) -> bool:
    fast = p.replace(**FAST_ATTACKER)
    short = _short_bearer_flows(f, p)
    ev_short = _evaluator(short, s, fast, a)
    ev_long = _evaluator(f, s, fast, a)
    usable_short = _sum(ev_short, "bearer", "today", "usable")
    usable_dpop = _sum(ev_long, "dpop_nonce_shared_cache", "upgraded", "usable")
    hours_short = _sum(ev_short, "bearer", "today", "hours")
    hours_dpop = _sum(ev_long, "dpop_nonce_shared_cache", "upgraded", "hours")
    return usable_short > usable_dpop and hours_short < hours_dpop


def _c_recommendations(f: Frame, s: Frame, p: ModelParameters, a: Frame | None) -> bool:
    share = recommendations_removed_share(f, s, p, authorization_servers=a)
    return bool(share >= RECOMMENDATIONS_MIN_REMOVED)


#: The report's claims, each re-checked under joint draws by :func:`conclusion_robustness`.
#: Mechanism comparisons use the ``upgraded`` view (every RS supports every mechanism) so
#: that they compare semantics, not today's RS support; bearer needs no support.
CONCLUSIONS: tuple[Conclusion, ...] = (
    Conclusion(
        "dpop_beats_bearer_browser_mobile",
        "On browser and mobile paths, DPoP with a shared jti store and server nonces leaves "
        "fewer usable stolen tokens than bearer tokens (every RS upgraded).",
        _c_dpop_browser_mobile,
    ),
    Conclusion(
        "mtls_at_least_as_good_backend_e2e",
        "On end-to-end backend paths, moving flows to mTLS-bound tokens leaves no more "
        "token-theft exposure than moving them to DPoP with a shared jti store and nonces, on "
        "both metrics (usable stolen tokens and expected exposure hours), with today's RS "
        "support.",
        _c_mtls_backend,
    ),
    Conclusion(
        "token_binding_removes_nothing",
        "Token Binding removes no token-theft exposure on this inventory: no client, "
        "authorization server or resource server can carry it today.",
        _c_token_binding,
    ),
    Conclusion(
        "shared_store_beats_nonces_multi_instance",
        "On resource servers with several instances, a shared jti store removes more "
        "in-transit (token and proof) exposure than server nonces with the RS's own jti store.",
        _c_shared_store,
    ),
    Conclusion(
        "time_to_use_flips_short_bearer",
        "Against an attacker who uses a stolen token within about a minute, bearer tokens "
        "capped at the short lifetime (A28, 5 minutes) leave more usable stolen tokens than "
        "DPoP with nonces and a shared jti store, while on expected exposure hours the short "
        "bearer token looks better: the ranking depends on the metric.",
        _c_time_to_use_flip,
    ),
    Conclusion(
        "recommendations_remove_floor",
        f"The recommendations remove at least {RECOMMENDATIONS_MIN_REMOVED:.0%} of today's "
        "token-theft exposure.",
        _c_recommendations,
        max_draws=20,
    ),
)


def _conclusions(ids: Iterable[str] | None) -> tuple[Conclusion, ...]:
    if ids is None:
        return CONCLUSIONS
    by_id = {c.id: c for c in CONCLUSIONS}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise ValueError(f"unknown conclusion(s) {unknown}; expected some of {sorted(by_id)}")
    return tuple(by_id[i] for i in ids)


def conclusion_checks(
    flows: Frame,
    services: Frame,
    params: ModelParameters | None = None,
    *,
    authorization_servers: Frame | None = None,
    conclusions: Iterable[str] | None = None,
) -> dict[str, bool]:
    """Each claim as a boolean under ``params`` (see :data:`CONCLUSIONS`)."""
    p = params or ModelParameters.from_reference()
    with shared_contexts():
        return {
            c.id: bool(c.check(flows, services, p, authorization_servers))
            for c in _conclusions(conclusions)
        }


def conclusion_robustness(
    flows: Frame,
    services: Frame,
    params: ModelParameters | None = None,
    *,
    authorization_servers: Frame | None = None,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    conclusions: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Whether each claim survives joint draws of every assumption.

    One row per conclusion: ``id, text, holds_at_defaults`` (at ``params``), ``share`` (of the
    draws in which it holds; expensive checks use their first ``max_draws`` draws),
    ``finding`` (``share >= 0.95``: state it as a finding) and ``depends_on`` (the assumption
    whose drawn values best separate holding from failing draws; ``""`` when it always holds
    or always fails). Cached on disk when ``TOKENLIB_CACHE_DIR`` is set
    (:mod:`tokenlib.analysis._diskcache`).
    """
    p = params or ModelParameters.from_reference()
    ids = None if conclusions is None else tuple(conclusions)
    ases = authorization_servers
    return cached(
        "conclusion_robustness",
        lambda: _conclusion_robustness(flows, services, p, ases, draws, seed, ids),
        key_parts=(flows, services, p, ases, draws, seed, ids),
    )


def _conclusion_robustness(
    flows: Frame,
    services: Frame,
    p: ModelParameters,
    ases: Frame | None,
    draws: int,
    seed: int,
    conclusions: Iterable[str] | None,
) -> pd.DataFrame:
    ps = draw_parameters(p, n=draws, seed=seed)
    chosen = _conclusions(conclusions)
    results: dict[str, list[bool]] = {c.id: [] for c in chosen}
    with shared_contexts():
        at_defaults = {c.id: bool(c.check(flows, services, p, ases)) for c in chosen}
        for i, d in enumerate(ps):
            for c in chosen:
                if c.max_draws is None or i < c.max_draws:
                    results[c.id].append(bool(c.check(flows, services, d, ases)))
    rows = []
    for c in chosen:
        checks = results[c.id]
        h = holds(checks, ps[: len(checks)])
        rows.append(
            {
                "id": c.id,
                "text": c.text,
                "holds_at_defaults": at_defaults[c.id],
                "share": h["share"],
                "finding": h["finding"],
                "depends_on": h["depends_on"],
            }
        )
    return pd.DataFrame(
        rows, columns=["id", "text", "holds_at_defaults", "share", "finding", "depends_on"]
    )
