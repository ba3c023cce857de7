"""Per-flow recommendation: mTLS, DPoP, DPoP with nonces, or bearer as accepted residual risk.

Rules (from the article's claims as qualified by the domain brief §4), applied in order:

The A21 "removes too little" test uses the token-theft scenarios only
(``replay.TOKEN_THEFT_SCENARIOS``): key exfiltration and issuer-key compromise are not
what a binding addresses.

1. **mTLS** when the client is a workload, the mTLS predicate holds (``deploy.deployability``) and
   TLS reaches the RS end to end, or only through hops that already forward the certificate
   (RFC 8705 App. B, RFC 9700 §2.6; the forwarded header does not fail safe, RFC 9440 §4).
2. **DPoP with nonces** when DPoP is deployable and the client is public (pre-generated proofs,
   RFC 9449 §11.2), the access token outlives A20, or the RS runs several instances without a
   shared ``jti`` cache (§11.1).
3. **DPoP** (with a shared ``jti`` cache) when DPoP is deployable.
4. **bearer**, as an explicitly accepted residual risk with compensating controls, otherwise.

Reasons are generated from the predicate outcomes (bit flags, one sentence per flag), never
typed per row. Priority ranks flows by exposure removed per dollar:
``p_deploy * (exposure_current - exposure_after) / cost_usd`` (``replay.exposure_by_mechanism``
and ``deploy.deployment_cost``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from tokenlib._atomic import atomic_path
from tokenlib.analysis._paths import (
    as_str,
    channel_matrix,
    features,
    rows_where,
    service_lookup,
)
from tokenlib.analysis.deploy import deployability, deployment_cost, reason_text
from tokenlib.analysis.params import ModelParameters
from tokenlib.analysis.replay import exposure_by_mechanism

__all__ = [
    "CONTROLS",
    "RECOMMENDATIONS",
    "RECOMMEND_REASONS",
    "export_recommendations",
    "recommend",
    "recommendation_summary",
]

RECOMMENDATIONS = ("mtls", "dpop", "dpop_nonce", "bearer")
_VARIANT = {
    "mtls": "mtls",
    "dpop": "dpop_shared_cache",
    "dpop_nonce": "dpop_nonce",
    "bearer": "bearer",
}

RECOMMEND_REASONS: dict[int, str] = {
    1: (
        "workload client with TLS end to end to the resource server: mTLS fits "
        "(RFC 8705 App. B, RFC 9700 §2.6)"
    ),
    2: (
        "the certificate reaches the resource server through a forwarding hop: "
        "keep header sanitisation verified (RFC 9440 §4)"
    ),
    4: (
        "browser client: DPoP with a non-extractable WebCrypto key, though XSS can "
        "still mint proofs or start a new flow (RFC 9449 §11.4)"
    ),
    8: "mobile or native client: DPoP with a key in the platform keystore (RFC 9449 §1)",
    16: (
        "a hop terminates TLS: DPoP passes intermediaries where mTLS would need"
        " certificate forwarding (RFC 8705 §6.5)"
    ),
    32: "public client: server nonces stop proofs pre-generated for future use (RFC 9449 §11.2)",
    64: (
        "long-lived access token: without nonces a pre-generated proof lives as"
        " long as the token (RFC 9449 §11.2)"
    ),
    128: (
        "the resource server runs several instances without a shared jti cache:"
        " nonces bound proof replay (RFC 9449 §11.1)"
    ),
    256: (
        "the resource server must be upgraded first, until then a bound token "
        "is accepted as bearer (RFC 9449 §7.2)"
    ),
    512: "no binding mechanism is deployable on this flow: bearer is accepted as residual risk",
    1024: "already uses this mechanism",
    2048: (
        "the client is a workload but TLS is terminated on the path: DPoP "
        "avoids certificate forwarding"
    ),
    4096: (
        "binding is deployable but unlikely to succeed or removes too little of"
        " this flow's exposure (A21/A22): bearer is accepted as residual risk"
    ),
    8192: (
        "a hop terminates TLS without forwarding the certificate, so the RS "
        "cannot check the binding: reconfigure it to sanitised forwarding (RFC "
        "8705 §6.5, RFC 9440)"
    ),
    16384: (
        "DPoP binds the token to a key the client holds: a copied token alone no longer "
        "replays, and a captured proof only for one method and URL (RFC 9449)"
    ),
}

CONTROLS: dict[int, str] = {
    1: "shorten the access-token lifetime (RFC 9700 §2.3)",
    2: "restrict the audience to one resource server (RFC 9700 §2.3, RFC 8707)",
    4: "introspect or use continuous access evaluation so revocation bites (RFC 7662)",
    8: "rotate refresh tokens with reuse detection (RFC 9700 §4.14.2)",
    16: "keep tokens out of logs, HAR files and crash dumps",
    32: "exchange instead of forwarding tokens downstream (RFC 8693)",
    64: "restrict token use by network location (IP allow-lists)",
    128: "review this accepted risk at the next access review and alert on token reuse anomalies",
}


def _texts(bits: np.ndarray, table: dict[int, str]) -> pd.Categorical:
    codes, uniq = pd.factorize(np.asarray(bits, dtype=np.int64))
    texts = ["; ".join(s for b, s in table.items() if int(u) & b) for u in uniq]
    cats = pd.Index(texts, dtype=object).unique()
    remap = np.asarray(cats.get_indexer(texts), dtype=np.int64)
    return pd.Categorical.from_codes(remap[np.asarray(codes)], categories=cats)


def recommend(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    exposure: pd.DataFrame | None = None,
    deploy: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One recommendation per flow, with reasons and a priority order.

    Columns: ``flow_id, client_id, client_kind, resource_server, client_path,
    current_mechanism, recommended`` (mtls/dpop/dpop_nonce/bearer), ``model_mechanism`` (the
    replay-model variant), ``p_deploy, exposure_current, exposure_after, exposure_removed,
    cost_usd, value_per_usd, priority`` (1 = do first; bearer rows last), ``reasons``,
    ``blockers`` (deployability reasons of the rejected mechanisms, bearer rows only) and
    ``compensating_controls`` (bearer rows only).
    """
    p = params or ModelParameters.from_reference()
    variants = ["mtls", "dpop_shared_cache", "dpop_nonce", "bearer"]
    exp = exposure
    if exp is None or not {f"theft_exposure_{v}" for v in variants} <= set(exp.columns):
        exp = exposure_by_mechanism(flows, services, p, mechanisms=variants, theft_columns=True)
    dep = (
        deploy
        if deploy is not None
        else deployability(flows, services, p, mechanisms=["mtls", "dpop"])
    )
    n = len(flows)

    def col(mech: str, name: str) -> np.ndarray:
        sub = rows_where(dep, "mechanism", mech)
        return np.asarray(sub[name].to_numpy())

    pos, svc = service_lookup(flows, services)
    feats = features(flows)
    kind = as_str(flows["client_kind"])
    workload = as_str(flows["actor"]) == "workload"
    public = as_str(flows["client_type"]) == "public"
    n_tnf = feats["n_terminate_no_forward"].to_numpy()
    n_fc = feats["n_forward_cert"].to_numpy()
    all_pt = feats["all_passthrough"].to_numpy(dtype=bool)
    L = flows["access_token_lifetime_s"].to_numpy(dtype=float)
    multi = (svc["instances"].to_numpy()[pos] > 1) & (as_str(svc["jti_cache"])[pos] != "shared")
    binding = as_str(flows["binding"])

    cur_exp = exp["exposure_current"].to_numpy()
    # The A21 threshold looks at the exposure a token binding can address (token theft), so a
    # flow is not written off because a static client secret dominates its total.
    tcur = exp["theft_exposure_current"].to_numpy()

    def worth(mech: str, fam: str) -> np.ndarray:
        # In use already: keep it. Otherwise it must be likely enough to deploy and remove enough.
        ex = exp[f"theft_exposure_{mech}"].to_numpy()
        rel = np.where(tcur > 0, (tcur - ex) / np.where(tcur > 0, tcur, 1.0), 0.0)
        ok = col(fam, "deployable").astype(bool) & (col(fam, "p_deploy") >= p.min_p_deploy)
        return np.asarray((binding == fam) | (ok & (rel >= p.min_relative_reduction)))

    mtls_ok = worth("mtls", "mtls") & col("mtls", "deployable").astype(bool)
    dpop_ok = (worth("dpop_shared_cache", "dpop") | worth("dpop_nonce", "dpop")) & col(
        "dpop", "deployable"
    ).astype(bool)
    any_deployable = (col("mtls", "deployable") | col("dpop", "deployable")).astype(bool)
    e2e = all_pt | ((n_tnf == 0) & (n_fc > 0))
    use_mtls = workload & mtls_ok & e2e
    nonce_need = public | (p.nonce_lifetime_threshold_s < L) | multi
    use_nonce = ~use_mtls & dpop_ok & nonce_need
    use_dpop = ~use_mtls & dpop_ok & ~nonce_need
    rec = np.select([use_mtls, use_nonce, use_dpop], ["mtls", "dpop_nonce", "dpop"], "bearer")
    # A flow that already carries a binding keeps it: never recommend retreating to bearer.
    keep_mtls = (rec == "bearer") & (binding == "mtls")
    keep_dpop = (rec == "bearer") & (binding == "dpop")
    rec = np.where(keep_mtls, "mtls", rec)
    rec = np.where(keep_dpop, np.where(nonce_need, "dpop_nonce", "dpop"), rec)
    use_mtls = rec == "mtls"
    use_nonce = rec == "dpop_nonce"
    use_dpop = rec == "dpop"

    bits = np.zeros(n, dtype=np.int64)
    bits |= np.where(use_mtls & all_pt, 1, 0)
    bits |= np.where(use_mtls & e2e & ~all_pt, 1 | 2, 0)
    bits |= np.where(use_mtls & (n_tnf > 0), 8192, 0)
    is_dpop = use_nonce | use_dpop
    bits |= np.where(is_dpop, 16384, 0)
    bits |= np.where(is_dpop & (kind == "browser_spa"), 4, 0)
    bits |= np.where(is_dpop & (kind == "mobile_app"), 8, 0)
    bits |= np.where(is_dpop & ~all_pt, 16, 0)
    bits |= np.where(use_nonce & public, 32, 0)
    bits |= np.where(use_nonce & (p.nonce_lifetime_threshold_s < L), 64, 0)
    bits |= np.where(use_nonce & multi, 128, 0)
    rs_change = np.where(use_mtls, col("mtls", "rs_change"), col("dpop", "rs_change")).astype(bool)
    bits |= np.where((use_mtls | is_dpop) & rs_change, 256, 0)
    bits |= np.where((rec == "bearer") & ~any_deployable, 512, 0)
    bits |= np.where((rec == "bearer") & any_deployable, 4096, 0)
    bits |= np.where(
        ((rec == "mtls") & (binding == "mtls")) | (is_dpop & (binding == "dpop")), 1024, 0
    )
    bits |= np.where(is_dpop & workload & ~e2e & mtls_ok, 2048, 0)

    rec_code = np.select([rec == r for r in RECOMMENDATIONS], list(range(len(RECOMMENDATIONS))), 3)
    variants_all = [_VARIANT[r] for r in RECOMMENDATIONS]
    after = np.zeros(n)
    cost = np.zeros(n)
    p_dep = np.ones(n)
    for r in RECOMMENDATIONS:
        sel = rec == r
        if not sel.any():
            continue
        v = _VARIANT[r]
        after[sel] = exp[f"exposure_{v}"].to_numpy()[sel]
        if r != "bearer":
            fam = "mtls" if r == "mtls" else "dpop"
            c = deployment_cost(flows, services, p, mechanism=v, deploy=dep)["cost_usd"].to_numpy()
            cost[sel] = c[sel]
            p_dep[sel] = col(fam, "p_deploy")[sel]
    current = cur_exp
    after = np.where(rec == "bearer", current, after)
    removed = np.clip(current - after, 0.0, None)
    value = np.where(
        cost > 0,
        p_dep * removed / np.where(cost > 0, cost, 1.0),
        np.where(removed > 0, np.inf, 0.0),
    )
    order_key = np.where(rec == "bearer", -1.0, value)
    priority = pd.Series(order_key).rank(ascending=False, method="first").to_numpy(dtype=np.int64)

    ctrl = np.zeros(n, dtype=np.int64)
    is_b = rec == "bearer"
    ctrl |= np.where(is_b & (p.nonce_lifetime_threshold_s < L), 1, 0)
    ctrl |= np.where(is_b & ~flows["audience_restricted"].to_numpy(dtype=bool), 2, 0)
    ctrl |= np.where(is_b & ~flows["rs_introspects"].to_numpy(dtype=bool), 4, 0)
    ctrl |= np.where(is_b & (as_str(flows["refresh_token"]) == "static"), 8, 0)
    ch = channel_matrix(flows)
    leaky = ch["app_logs"] | ch["proxy_logs"] | ch["har_files"] | ch["crash_dumps"]
    ctrl |= np.where(is_b & leaky, 16, 0)
    ctrl |= np.where(is_b & flows["forwards_token"].to_numpy(dtype=bool), 32, 0)
    ctrl |= np.where(is_b & (kind == "partner_integrator"), 64, 0)
    ctrl |= np.where(is_b, 128, 0)
    blockers = reason_text(
        np.where(is_b, col("mtls", "reason_bits") | col("dpop", "reason_bits"), 0)
    )
    out = pd.DataFrame(
        {
            "flow_id": flows["flow_id"].array,
            "client_id": flows["client_id"].array,
            "client_kind": flows["client_kind"].array,
            "resource_server": flows["resource_server"].array,
            "client_path": feats["client_path"].array,
            "current_mechanism": exp["current_mechanism"].array,
            "recommended": pd.Categorical.from_codes(rec_code, categories=list(RECOMMENDATIONS)),
            "model_mechanism": pd.Categorical.from_codes(rec_code, categories=variants_all),
            "p_deploy": p_dep,
            "exposure_current": current,
            "exposure_after": after,
            "exposure_removed": removed,
            "cost_usd": cost,
            "value_per_usd": value,
            "priority": priority,
            "reasons": _texts(bits, RECOMMEND_REASONS),
            "blockers": blockers,
            "compensating_controls": _texts(ctrl, CONTROLS),
        }
    )
    return out


def recommendation_summary(rec: pd.DataFrame) -> pd.DataFrame:
    """Counts and exposure removed per ``client_path x recommended`` (plus share of the total)."""
    total = float(rec["exposure_current"].sum())
    g = rec.groupby(["client_path", "recommended"], observed=True).agg(
        n_flows=("flow_id", "size"),
        exposure_current=("exposure_current", "sum"),
        exposure_removed=("exposure_removed", "sum"),
        cost_usd=("cost_usd", "sum"),
    )
    g["share_of_total_removed"] = g["exposure_removed"] / total if total else 0.0
    return g.reset_index()


def export_recommendations(rec: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write recommendations as CSV for an access review, sorted by priority, atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = rec.sort_values("priority") if "priority" in rec.columns else rec
    with atomic_path(target) as tmp:
        data.to_csv(tmp, index=False, encoding="utf-8")
    return target
