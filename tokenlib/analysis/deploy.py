"""Deployability of a binding mechanism per flow (domain brief §3.1-§3.3).

Predicate form ``Deployable(m, f) = C_m(client) and S_m(RS) and all_h H_m(hop)`` and the
probabilistic form ``p_m = c_m * s_m * prod_h h_{m,h}`` with the factors read from
``data/reference/component_support.csv`` (each row has a status and a source). Two variants:

* ``p_deploy_now``: with today's RS support (``services.supports_*``) and today's hop modes;
* ``p_deploy``: after the changes under the organisation's control: the RS is upgraded (factor
  ``rs:enable``) and, for mTLS, each hop that terminates TLS without forwarding the certificate is
  reconfigured to sanitised forwarding (``terminate_forward_cert``, RFC 9440). Token Binding
  cannot be fixed this way: no browser, server stack or proxy supports it.

``deployable`` = ``p_deploy > 0`` (no structural blocker). Reasons are bit flags turned into
words once per distinct combination. The timeline form (``timeline_deployability``) replaces the
static factors by dated shares from ``adoption_timeline.csv``; ``adoption_curve`` gives the share
of replay exposure removed against the number of components changed, cheapest first, with a cost
model whose per-request part uses the DPoP sign/verify cost measured by tokenlib's benchmark.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from tokenlib.analysis._paths import (
    FloatArray,
    as_str,
    features,
    is_in,
    map_values,
    path_codes,
    require_columns,
    rows_where,
    service_lookup,
    str_codes,
)
from tokenlib.analysis.params import ModelParameters, reference_dir
from tokenlib.analysis.replay import exposure_by_mechanism

__all__ = [
    "FAMILIES",
    "REASONS",
    "adoption_curve",
    "deployability",
    "deployment_cost",
    "family_of",
    "load_adoption_timeline",
    "load_component_support",
    "reason_text",
    "timeline_deployability",
]

FAMILIES = ("bearer", "mtls", "dpop", "token_binding")

# bit -> (code, sentence). Sentences name the RFC section behind the predicate.
REASONS: dict[int, tuple[str, str]] = {
    1: (
        "client_cert_ux",
        "browser clients cannot present client certificates usably (RFC 8705 §6.4, RFC 9449 §1)",
    ),
    2: ("client_no_stack", "no supported client platform implements it"),
    4: (
        "hop_drops_cert",
        (
            "a hop terminates TLS without forwarding the client certificate (RFC "
            "8705 §6.5): reconfigure it to sanitised forwarding (RFC 9440)"
        ),
    ),
    8: (
        "hop_ttrp",
        "a TLS-terminating hop cannot carry Token Binding (draft-ietf-tokbind-ttrp expired)",
    ),
    16: (
        "rs_unsupported",
        (
            "the resource server does not support it yet, and until it does a bound "
            "token is accepted as bearer (RFC 9449 §7.2)"
        ),
    ),
    32: (
        "no_cert_management",
        "the client has no certificate management (needs a PKI or SPIFFE first)",
    ),
    64: (
        "forward_cert_trust",
        (
            "the path forwards the client certificate in a header, which does not "
            "fail safe: verify sanitisation (RFC 9440 §4, RFC 9700 §4.13)"
        ),
    ),
    128: (
        "tb_no_browser",
        "no shipping browser supports Token Binding since Edge 130 (2024-10-17)",
    ),
    256: ("tb_no_server", "no maintained server TLS stack supports Token Binding"),
    512: ("client_change", "the client must generate and protect a key and sign or present it"),
    1024: ("path_e2e", "TLS runs end to end from client to resource server"),
}


def family_of(mechanism: str) -> str:
    """Deployment family of a replay-model mechanism (``dpop_*`` -> ``dpop``)."""
    if mechanism.startswith("dpop"):
        return "dpop"
    if mechanism not in FAMILIES:
        raise ValueError(f"unknown mechanism {mechanism!r}")
    return mechanism


@lru_cache(maxsize=4)
def _support_table(path: str) -> pd.DataFrame:
    df = pd.read_csv(
        path, dtype={"component": str, "value": str, "mechanism": str, "status": str, "source": str}
    )
    bad = df[
        (df["support"] < 0)
        | (df["support"] > 1)
        | ~df["status"].isin(["sourced", "derived", "assumption"])
    ]
    if len(bad):
        raise ValueError(
            f"{path}: row {int(bad.index[0]) + 2}: support must be in [0, 1] with a valid status"
        )
    return df


def load_component_support(path: str | Path | None = None) -> pd.DataFrame:
    """``component_support.csv``: ``component, value, mechanism, support, status, source``."""
    p = Path(path) if path is not None else reference_dir() / "component_support.csv"
    return _support_table(str(p.resolve())).copy()


def load_adoption_timeline(path: str | Path | None = None) -> pd.DataFrame:
    """``adoption_timeline.csv``: ``date, mechanism, component, share, status, source``.

    Shares are step functions: a row holds from its date until the next row of the same
    (mechanism, component).
    """
    p = Path(path) if path is not None else reference_dir() / "adoption_timeline.csv"
    df = pd.read_csv(p)
    df["date"] = pd.to_datetime(df["date"])
    return df.sort_values(["mechanism", "component", "date"], ignore_index=True)


def _lookup(
    table: pd.DataFrame, component: str, values: pd.Series, mech: str, default: float = 1.0
) -> FloatArray:
    sub = table[(table["component"] == component) & (table["mechanism"] == mech)]
    m = dict(zip(sub["value"], sub["support"].astype(float), strict=True))
    return map_values(values, m, default)


def _hop_products(
    table: pd.DataFrame,
    codes: np.ndarray,
    parsed: list[list[tuple[str, str]]],
    mech: str,
    *,
    fix_mtls: bool,
) -> tuple[FloatArray, FloatArray]:
    """(product of hop support, number of hops to reconfigure) per flow."""
    sub = table[(table["component"] == "hop") & (table["mechanism"] == mech)]
    h = dict(zip(sub["value"], sub["support"].astype(float), strict=True))
    prod = np.ones(len(parsed))
    changes = np.zeros(len(parsed))
    for i, hops in enumerate(parsed):
        for kind, mode in hops:
            if fix_mtls and mech == "mtls" and mode == "terminate":
                prod[i] *= h.get(f"{kind}:terminate_forward_cert", 0.0)
                changes[i] += 1
            else:
                prod[i] *= h.get(f"{kind}:{mode}", 0.0)
    return prod[codes], changes[codes]


def deployability(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanisms: Iterable[str] = FAMILIES,
    support: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per flow x mechanism family: predicates, probabilities and reasons.

    Columns: ``flow_id, mechanism, deployable, p_deploy, p_deploy_now, client_support,
    cert_support, rs_support_now, rs_support, hop_support_now, hop_support, in_use,
    client_change, rs_change, hop_changes, n_changes, reason_bits, reasons``.
    """
    require_columns(flows, services)
    table = support if support is not None else load_component_support()
    pos, svc = service_lookup(flows, services)
    feats = features(flows)
    codes, parsed = path_codes(flows)
    browser = is_in(flows["client_kind"], "browser_spa")
    cm_none = is_in(flows["cert_management"], "none")
    n_tnf = feats["n_terminate_no_forward"].to_numpy()
    n_fc = feats["n_forward_cert"].to_numpy()
    all_pt = feats["all_passthrough"].to_numpy(dtype=bool)
    fcodes, funiq = str_codes(flows["flow_id"])
    parts: list[dict[str, np.ndarray]] = []
    fam_codes: list[int] = []
    for mech in mechanisms:
        fam = family_of(mech)
        c = _lookup(table, "client", flows["client_kind"], fam)
        cert = _lookup(table, "cert_management", flows["cert_management"], fam)
        if fam in ("mtls", "dpop"):
            supported = svc[f"supports_{fam}"].to_numpy(dtype=bool)[pos]
        elif fam == "bearer":
            supported = np.ones(len(flows), dtype=bool)
        else:
            supported = np.zeros(len(flows), dtype=bool)
        rs_tab = table[(table["component"] == "rs") & (table["mechanism"] == fam)].set_index(
            "value"
        )["support"]
        s_now = np.where(
            supported, float(rs_tab.get("supported", 1.0)), float(rs_tab.get("unsupported", 0.0))
        )
        s_after = np.where(
            supported, float(rs_tab.get("supported", 1.0)), float(rs_tab.get("enable", 0.0))
        )
        h_now, _ = _hop_products(table, codes, parsed, fam, fix_mtls=False)
        h_after, hop_changes = _hop_products(table, codes, parsed, fam, fix_mtls=True)
        p_now = c * cert * s_now * h_now
        p_after = c * cert * s_after * h_after
        in_use = is_in(flows["binding"], fam)
        if fam == "bearer":
            in_use = np.ones(len(flows), dtype=bool)
        client_change = ~in_use & (fam != "bearer")
        rs_change = ~supported & (fam != "bearer")
        bits = np.zeros(len(flows), dtype=np.int64)
        if fam == "mtls":
            bits |= np.where(browser, 1, 0)
            bits |= np.where(n_tnf > 0, 4, 0)
            bits |= np.where(cm_none, 32, 0)
            bits |= np.where(n_fc > 0, 64, 0)
            bits |= np.where(all_pt, 1024, 0)
        if fam == "token_binding":
            bits |= np.where(browser, 128, 2)
            bits |= np.where(~all_pt, 8, 0)
            bits |= 256
        if fam in ("mtls", "dpop", "token_binding"):
            bits |= np.where((c == 0) & ~browser & (fam != "token_binding"), 2, 0)
            bits |= np.where(rs_change & (fam != "token_binding"), 16, 0)
            bits |= np.where(client_change & (c > 0), 512, 0)
        cols = {
            "deployable": p_after > 0,
            "p_deploy": p_after,
            "p_deploy_now": p_now,
            "client_support": c,
            "cert_support": cert,
            "rs_support_now": s_now,
            "rs_support": s_after,
            "hop_support_now": h_now,
            "hop_support": h_after,
            "in_use": in_use,
            "client_change": client_change,
            "rs_change": rs_change,
            "hop_changes": hop_changes.astype(np.int64),
            "n_changes": client_change.astype(np.int64)
            + rs_change.astype(np.int64)
            + hop_changes.astype(np.int64),
            "reason_bits": bits,
        }
        parts.append(cols)
        fam_codes.append(FAMILIES.index(fam))
    k = len(parts)
    n = len(flows)
    data: dict[str, object] = {
        "flow_id": pd.Categorical.from_codes(np.tile(fcodes, k), categories=pd.Index(funiq)),
        "mechanism": pd.Categorical.from_codes(
            np.repeat(np.asarray(fam_codes, dtype=np.int64), n), categories=list(FAMILIES)
        ),
    }
    for name in parts[0] if parts else ():
        data[name] = np.concatenate([np.asarray(pt[name]) for pt in parts])
    out = pd.DataFrame(data)
    out["reasons"] = reason_text(out["reason_bits"].to_numpy()) if k else []
    return out


def reason_text(bits: np.ndarray, *, sep: str = "; ") -> pd.Categorical:
    """Sentences for reason bit flags, built once per distinct value (a categorical column)."""
    codes, uniq = pd.factorize(np.asarray(bits, dtype=np.int64))
    texts = [sep.join(s for b, (_, s) in REASONS.items() if int(u) & b) for u in uniq]
    return _from_texts(np.asarray(codes), texts)


def _from_texts(codes: np.ndarray, texts: list[str]) -> pd.Categorical:
    uniq = pd.Index(texts, dtype=object).unique()
    remap = uniq.get_indexer(texts)
    return pd.Categorical.from_codes(np.asarray(remap)[codes], categories=uniq)


def deployment_cost(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanism: str,
    deploy: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Cost (USD) attributed to each flow for adopting ``mechanism``.

    One-off engineering: client change (A18a) shared by the flows of a ``client_id``, RS change
    (A18b) shared by the RS's flows, each hop reconfiguration (A18c), nonces (A18d, shared by
    the RS's flows) -- times A18e. Per request: DPoP proof creation + verification
    (A19a/A19b; ``ModelParameters.with_measured_costs()`` puts the benchmark's numbers there) or
    the mTLS overhead (A19c), times ``requests_per_day * horizon`` (A18g) at A18f per core-hour.
    Columns: ``flow_id, mechanism, one_off_usd, per_request_usd, cost_usd``.
    """
    p = params or ModelParameters.from_reference()
    fam = family_of(mechanism)
    d = deploy if deploy is not None else deployability(flows, services, p, mechanisms=[fam])
    d = rows_where(d, "mechanism", fam).reset_index(drop=True)
    n = len(flows)
    ccodes, _ = str_codes(flows["client_id"])
    rcodes, _ = str_codes(flows["resource_server"])
    per_client = np.bincount(ccodes)[ccodes].astype(float)
    per_rs = np.bincount(rcodes)[rcodes].astype(float)
    days = (
        d["client_change"].to_numpy(dtype=float) * p.cost_client_change_days / per_client
        + d["rs_change"].to_numpy(dtype=float) * p.cost_rs_change_days / per_rs
        + d["hop_changes"].to_numpy(dtype=float) * p.cost_hop_change_days / per_rs
    )
    if mechanism == "dpop_nonce":
        days = days + p.cost_nonce_days / per_rs
    if fam == "dpop":
        cpu = p.dpop_sign_cost_s + p.dpop_verify_cost_s
    elif fam == "mtls":
        cpu = p.mtls_request_cost_s
    else:
        cpu = 0.0
    rpd = flows["requests_per_day"].to_numpy(dtype=float)
    per_req = cpu * rpd * p.horizon_days * p.cpu_usd_per_core_hour / 3600.0
    one_off = days * p.engineer_day_usd
    return pd.DataFrame(
        {
            "flow_id": flows["flow_id"].array,
            "mechanism": pd.Categorical.from_codes(
                np.zeros(n, dtype=np.int64), categories=[mechanism]
            ),
            "one_off_usd": one_off,
            "per_request_usd": per_req if fam != "bearer" else np.zeros(n),
            "cost_usd": one_off + per_req,
        }
    )


def _share_at(tl: pd.DataFrame, mech: str, component: str, dates: pd.DatetimeIndex) -> FloatArray:
    sub = tl[(tl["mechanism"] == mech) & (tl["component"] == component)]
    if sub.empty:
        return np.ones(len(dates)) if mech == "bearer" else np.zeros(len(dates))
    idx = np.searchsorted(sub["date"].to_numpy(), dates.to_numpy(), side="right") - 1
    vals = sub["share"].to_numpy(dtype=float)
    return np.where(idx >= 0, vals[np.clip(idx, 0, None)], 0.0)


def timeline_deployability(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    dates: Sequence[str] | pd.DatetimeIndex | None = None,
    mechanisms: Iterable[str] = ("token_binding", "dpop", "mtls", "bearer"),
    timeline: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Deployable share over time (timeline form of ``p_m``).

    For flow ``f`` at date ``t``: ``client(t) * rs(t) * prod_hops hop(t)`` where ``client`` is the
    ``client_browser`` share for browser SPAs and ``client_other`` otherwise, and a hop is 1 when it
    passes TLS through, else the ``proxy`` share (for mTLS a hop that terminates without forwarding
    the certificate is 0). Flows are grouped by (client class, number of terminating hops), so the
    cost does not grow with the inventory. Returns ``date, mechanism, deployable_share`` (mean over
    flows) and ``market_share``: the same product for a browser client on an industry path mix
    with A6 = share of paths with a terminating hop (one hop assumed).
    """
    p = params or ModelParameters.from_reference()
    tl = timeline if timeline is not None else load_adoption_timeline()
    if dates is None:
        dt = pd.date_range("2015-01-01", "2026-10-01", freq="QS")
    else:
        dt = pd.DatetimeIndex(pd.to_datetime(list(dates)))
    feats = features(flows)
    browser = (as_str(flows["client_kind"]) == "browser_spa").astype(np.int64)
    n_term = feats["n_terminating"].to_numpy(dtype=np.int64)
    n_tnf = feats["n_terminate_no_forward"].to_numpy(dtype=np.int64)
    grp = (
        pd.DataFrame({"b": browser, "t": n_term, "x": n_tnf})
        .value_counts()
        .reset_index(name="count")
    )
    total = float(grp["count"].sum())
    rows = []
    for mech in mechanisms:
        cb = _share_at(tl, mech, "client_browser", dt)
        co = _share_at(tl, mech, "client_other", dt)
        rs = _share_at(tl, mech, "rs", dt)
        px = _share_at(tl, mech, "proxy", dt)
        acc = np.zeros(len(dt))
        for b, t, x, cnt in grp.itertuples(index=False):
            cl = cb if b else co
            hop = px**t
            if mech == "mtls" and x > 0:
                hop = np.zeros(len(dt))
            acc += cnt * cl * rs * hop
        share = acc / total if total else acc
        market = cb * rs * ((1.0 - p.share_terminating) + p.share_terminating * px)
        rows.append(
            pd.DataFrame(
                {"date": dt, "mechanism": mech, "deployable_share": share, "market_share": market}
            )
        )
    return pd.concat(rows, ignore_index=True)


def adoption_curve(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanism: str = "dpop_shared_cache",
    exposure: pd.DataFrame | None = None,
    order: str = "cheapest",
) -> pd.DataFrame:
    """Share of replay exposure removed vs. number of components changed.

    The unit of adoption is one resource server: enabling ``mechanism`` there (if not supported)
    together with the clients (first time they appear) and hops that must change for its
    deployable flows. Steps are taken cheapest first (``order="cheapest"``) or by exposure
    removed per dollar (``order="value"``). A flow's benefit is
    ``p_deploy * (exposure_current - exposure_mechanism)`` (never negative). Returns one row per
    step plus a step 0: ``step, service_id, components_changed, cost_usd, exposure_removed,
    share_removed`` (cumulative) and ``mechanism``. Token Binding has no deployable flow, so its
    curve stays at 0.
    """
    p = params or ModelParameters.from_reference()
    fam = family_of(mechanism)
    exp = (
        exposure
        if exposure is not None
        else exposure_by_mechanism(flows, services, p, mechanisms=[mechanism])
    )
    d = deployability(flows, services, p, mechanisms=[fam]).reset_index(drop=True)
    cost = deployment_cost(flows, services, p, mechanism=mechanism, deploy=d)
    benefit = np.clip(
        exp["exposure_current"].to_numpy() - exp[f"exposure_{mechanism}"].to_numpy(), 0.0, None
    )
    benefit = benefit * d["p_deploy"].to_numpy()
    ok = (benefit > 0) & d["deployable"].to_numpy(dtype=bool)
    total_exposure = float(exp["exposure_current"].sum())
    base = pd.DataFrame(
        {
            "step": [0],
            "service_id": [""],
            "components_changed": [0],
            "cost_usd": [0.0],
            "exposure_removed": [0.0],
            "share_removed": [0.0],
            "mechanism": [mechanism],
        }
    )
    if not ok.any():
        return base
    rcodes_all, runiq = str_codes(flows["resource_server"])
    f = pd.DataFrame(
        {
            "rs": rcodes_all[ok],
            "client": str_codes(flows["client_id"])[0][ok],
            "benefit": benefit[ok],
            "cost": cost["cost_usd"].to_numpy()[ok],
            "rs_change": d["rs_change"].to_numpy()[ok],
            "hops": d["hop_changes"].to_numpy()[ok],
            "client_change": d["client_change"].to_numpy()[ok],
        }
    )
    per_rs = f.groupby("rs", sort=False).agg(
        benefit=("benefit", "sum"), cost=("cost", "sum"), rs_change=("rs_change", "max")
    )
    per_rs["ratio"] = per_rs["benefit"] / per_rs["cost"].where(per_rs["cost"] > 0, 1e-12)
    if order == "cheapest":
        per_rs = per_rs.sort_values(["cost", "benefit"], ascending=[True, False])
    elif order == "value":
        per_rs = per_rs.sort_values("ratio", ascending=False)
    else:
        raise ValueError(f"order must be 'cheapest' or 'value', got {order!r}")
    rank = pd.Series(np.arange(len(per_rs)), index=per_rs.index)
    f["step"] = f["rs"].map(rank).to_numpy()
    f = f.sort_values("step", kind="stable")
    first_client = f[f["client_change"]].drop_duplicates("client")
    new_clients = np.bincount(first_client["step"].to_numpy(dtype=np.int64), minlength=len(per_rs))
    hop_paths = f.groupby("step")["hops"].max().reindex(range(len(per_rs)), fill_value=0).to_numpy()
    comps = per_rs["rs_change"].to_numpy(dtype=np.int64) + new_clients + hop_paths
    out = pd.DataFrame(
        {
            "step": np.arange(1, len(per_rs) + 1),
            "service_id": runiq[per_rs.index.to_numpy(dtype=np.int64)],
            "components_changed": np.cumsum(comps),
            "cost_usd": np.cumsum(per_rs["cost"].to_numpy()),
            "exposure_removed": np.cumsum(per_rs["benefit"].to_numpy()),
        }
    )
    out["share_removed"] = out["exposure_removed"] / total_exposure if total_exposure else 0.0
    out["mechanism"] = mechanism
    return pd.concat([base, out], ignore_index=True)
