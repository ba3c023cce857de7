"""Sensitivity of the headline findings to the unsourced assumptions (tornado, sweeps, survival).

Each metric is a function of (flows, services, params). ``tornado`` moves one parameter at a
time to its ``low`` and ``high`` from ``model_parameters.csv`` and records the metric;
``sweep`` varies one parameter over a grid; ``conclusion_robustness`` re-checks the article's
claims (as booleans) at every low/high corner, so a reader sees which conclusions survive.
All return DataFrames; plotting is left to ``tokenlib.analysis.plots``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from tokenlib.analysis._paths import as_str, features, rows_where, service_lookup
from tokenlib.analysis.blast import blast_radius
from tokenlib.analysis.deploy import deployability, timeline_deployability
from tokenlib.analysis.params import ModelParameters, parameter_specs
from tokenlib.analysis.recommend import recommend
from tokenlib.analysis.replay import exposure_by_mechanism, proof_replay_window, replay_windows

__all__ = [
    "CONCLUSIONS",
    "DEFAULT_SENSITIVITY_PARAMS",
    "METRICS",
    "conclusion_checks",
    "conclusion_robustness",
    "headline_metrics",
    "sweep",
    "tornado",
]

Metric = Callable[[pd.DataFrame, pd.DataFrame, ModelParameters], float]

# Modelling assumptions swept by default (costs and decision thresholds only move priorities).
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
    "share_terminating",
    "proof_leak_delay_max_s",
    "as_session_max_s",
    "q_secret",
    "p_attacker_first",
    "p_new_flow",
    "p_client_cred",
    "lateral_hops",
    "traffic_exponent",
    "w_at_rest_copy",
    "w_in_transit_token_and_proof",
    "w_live_client_compromise",
    "w_key_exfiltration",
    "w_refresh_token_theft",
    "revocation_delay_s",
)


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


def _reduction(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    p: ModelParameters,
    mech: str,
    path: str | None = None,
) -> float:
    exp = exposure_by_mechanism(flows, services, p, mechanisms=["bearer", mech])
    if path is not None:
        exp = rows_where(exp, "client_path", path)
    return 1.0 - _ratio(float(exp[f"exposure_{mech}"].sum()), float(exp["exposure_bearer"].sum()))


def _m_rec_share(flows: pd.DataFrame, services: pd.DataFrame, p: ModelParameters) -> float:
    r = recommend(flows, services, p)
    return _ratio(float(r["exposure_removed"].sum()), float(r["exposure_current"].sum()))


def _m_blast(flows: pd.DataFrame, services: pd.DataFrame, p: ModelParameters) -> float:
    b = blast_radius(flows, services, p, mechanisms=["bearer", "dpop_nonce"])
    s = b.groupby("mechanism")["br_total"].sum()
    return 1.0 - _ratio(float(s.get("dpop_nonce", 0.0)), float(s.get("bearer", 0.0)))


def _m_proof_window(flows: pd.DataFrame, services: pd.DataFrame, p: ModelParameters) -> float:
    """Mean window of one captured proof given it is replayable (no jti cache), seconds."""
    pos, svc = service_lookup(flows, services)
    P = svc["iat_past_s"].to_numpy(dtype=float)[pos]
    P = np.where(P > 0, P, p.dpop_iat_past_default_s)
    L = flows["access_token_lifetime_s"].to_numpy(dtype=float)
    mean, ppos = proof_replay_window(P, p.proof_leak_delay_max_s, L)
    sel = ppos > 0
    return float((mean[sel] / ppos[sel]).mean()) if sel.any() else 0.0


def _m_mtls_vs_dpop_backend(
    flows: pd.DataFrame, services: pd.DataFrame, p: ModelParameters
) -> float:
    exp = exposure_by_mechanism(flows, services, p, mechanisms=["mtls", "dpop_nonce"])
    e = rows_where(exp, "client_path", "backend_e2e")
    return _ratio(float(e["exposure_mtls"].sum()), float(e["exposure_dpop_nonce"].sum()))


METRICS: dict[str, Metric] = {
    "share_removed_by_recommendations": _m_rec_share,
    "dpop_nonce_reduction_vs_bearer": lambda f, s, p: _reduction(f, s, p, "dpop_nonce"),
    "mtls_reduction_vs_bearer": lambda f, s, p: _reduction(f, s, p, "mtls"),
    "browser_dpop_nonce_reduction": lambda f, s, p: _reduction(f, s, p, "dpop_nonce", "browser"),
    "blast_reduction_dpop_nonce": _m_blast,
    "mean_proof_replay_window_s": _m_proof_window,
    "backend_mtls_to_dpop_exposure_ratio": _m_mtls_vs_dpop_backend,
}


def headline_metrics(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    metrics: Iterable[str] = tuple(METRICS),
) -> dict[str, float]:
    """Values of the named headline metrics (see ``METRICS``)."""
    p = params or ModelParameters.from_reference()
    return {m: float(METRICS[m](flows, services, p)) for m in metrics}


def _resolve(metric: str | Metric) -> tuple[str, Metric]:
    if callable(metric):
        return getattr(metric, "__name__", "custom"), metric
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(METRICS)}")
    return metric, METRICS[metric]


def tornado(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    metric: str | Metric = "dpop_nonce_reduction_vs_bearer",
    names: Sequence[str] = DEFAULT_SENSITIVITY_PARAMS,
) -> pd.DataFrame:
    """One-at-a-time low/high effect of each parameter on ``metric``, largest swing first.

    Columns: ``id, name, status, base_value, low, high, metric, metric_base, metric_low,
    metric_high, delta_low, delta_high, swing``.
    """
    p = params or ModelParameters.from_reference()
    mname, fn = _resolve(metric)
    specs = {s.name: s for s in parameter_specs()}
    base = float(fn(flows, services, p))
    rows = []
    for name in names:
        sp_ = specs[name]
        lo = float(fn(flows, services, p.replace(**{name: sp_.low})))
        hi = float(fn(flows, services, p.replace(**{name: sp_.high})))
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
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    name: str,
    values: Sequence[float] | None = None,
    metrics: Iterable[str | Metric] = ("dpop_nonce_reduction_vs_bearer",),
    points: int = 7,
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
            rows.append(
                {
                    "name": name,
                    "value": float(v),
                    "metric": mname,
                    "result": float(fn(flows, services, pv)),
                }
            )
    return pd.DataFrame(rows)


def _c_dpop_browser(f: pd.DataFrame, s: pd.DataFrame, p: ModelParameters) -> bool:
    exp = exposure_by_mechanism(f, s, p, mechanisms=["bearer", "dpop_nonce"])
    e = exp[exp["client_path"].astype(str).isin(["browser", "mobile"])]
    return bool(len(e) == 0 or e["exposure_dpop_nonce"].sum() < e["exposure_bearer"].sum())


def _c_mtls_backend(f: pd.DataFrame, s: pd.DataFrame, p: ModelParameters) -> bool:
    return _m_mtls_vs_dpop_backend(f, s, p) <= 1.0 + 1e-9


def _c_dpop_gateway(f: pd.DataFrame, s: pd.DataFrame, p: ModelParameters) -> bool:
    cp = as_str(features(f)["client_path"])
    sel = cp == "gateway_terminated"
    if not sel.any():
        return True
    d = deployability(f[sel], s, p, mechanisms=["mtls", "dpop"])
    g = d.groupby("mechanism", observed=True)["p_deploy_now"].mean()
    return bool(g["dpop"] >= g["mtls"])


def _c_tb(f: pd.DataFrame, s: pd.DataFrame, p: ModelParameters) -> bool:
    t = timeline_deployability(f, s, p, mechanisms=["token_binding"])
    return bool(t["deployable_share"].max() < 0.05 and t["market_share"].max() < 0.05)


def _c_blast(f: pd.DataFrame, s: pd.DataFrame, p: ModelParameters) -> bool:
    return _m_blast(f, s, p) > 0


def _c_bearer(f: pd.DataFrame, s: pd.DataFrame, p: ModelParameters) -> bool:
    w = replay_windows(f, s, p, mechanisms=["bearer"], scenarios=["at_rest_copy"], quantiles=False)
    return bool(w["possible"].all())


CONCLUSIONS: dict[str, Callable[[pd.DataFrame, pd.DataFrame, ModelParameters], bool]] = {
    "bearer_replayable_by_design": _c_bearer,
    "dpop_reduces_browser_mobile_exposure": _c_dpop_browser,
    "mtls_at_least_as_good_on_backend_e2e": _c_mtls_backend,
    "dpop_more_deployable_on_terminated_paths": _c_dpop_gateway,
    "token_binding_never_deployable": _c_tb,
    "binding_shrinks_blast_radius": _c_blast,
}


def conclusion_checks(
    flows: pd.DataFrame, services: pd.DataFrame, params: ModelParameters | None = None
) -> dict[str, bool]:
    """Each of the article's claims as a boolean under ``params`` (see ``CONCLUSIONS``)."""
    p = params or ModelParameters.from_reference()
    return {k: bool(fn(flows, services, p)) for k, fn in CONCLUSIONS.items()}


def conclusion_robustness(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    names: Sequence[str] = DEFAULT_SENSITIVITY_PARAMS,
) -> pd.DataFrame:
    """Which conclusions survive each assumption at its low and high value.

    Rows: ``name, setting`` (base/low/high), ``value`` and one boolean column per conclusion;
    the last row ``all`` holds True where a conclusion survived every setting.
    """
    p = params or ModelParameters.from_reference()
    specs = {s.name: s for s in parameter_specs()}
    rows = [
        {
            "name": "(base)",
            "setting": "base",
            "value": np.nan,
            **conclusion_checks(flows, services, p),
        }
    ]
    for name in names:
        for setting in ("low", "high"):
            v = getattr(specs[name], setting)
            rows.append(
                {
                    "name": name,
                    "setting": setting,
                    "value": v,
                    **conclusion_checks(flows, services, p.replace(**{name: v})),
                }
            )
    out = pd.DataFrame(rows)
    survived = {k: bool(out[k].all()) for k in CONCLUSIONS}
    return pd.concat(
        [out, pd.DataFrame([{"name": "all", "setting": "all", "value": np.nan, **survived}])],
        ignore_index=True,
    )
