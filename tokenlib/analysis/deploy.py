"""Deployability of a binding mechanism per flow: what the inventory allows today, and what after.

Three kinds of answer, each labelled with what it rests on:

* **Deployable today (inventory).** ``deployable_today`` per flow and :func:`deployable_share`
  come from the inventory's own support columns only -- never from industry adoption shares:
  the client (structural: browsers cannot use mTLS, no client has Token Binding), the
  authorization server (``authorization_servers.issues_dpop`` / ``issues_mtls``; RFC 9449 §5,
  RFC 8705 §3), the resource server (``services.supports_*``; RFC 9449 §7.2) and every hop of
  the path (RFC 8705 §6.5 / RFC 9440; Token Binding needs TLS passed through end to end).
  The rules live in :func:`tokenlib.analysis.models.support.structural_support`; mTLS also
  needs certificate management at the client (``cert_management`` other than ``none``).
* **After organisation changes (assumption-based).** ``p_deploy`` / ``p_deploy_now`` are the
  probabilistic form ``p_m = c_m * cert_m * as_m * s_m * prod_h h_{m,h}`` with the factors read
  from ``data/reference/component_support.csv`` (each row has a status and a source; most client
  and upgrade factors are assumptions). ``p_deploy_now`` keeps today's RS and AS support and hop
  modes; ``p_deploy`` assumes the changes under the organisation's control: the RS is upgraded
  (factor ``rs:enable``), an AS that does not issue the family's tokens is configured, upgraded
  or replaced (factor ``as:enable``) and, for mTLS, each hop that terminates TLS without
  forwarding the certificate is reconfigured to sanitised forwarding
  (``terminate_forward_cert``, RFC 9440). Token Binding cannot be fixed this way: no browser,
  server stack, proxy or authorization server supports it. ``deployable`` = ``p_deploy > 0``.
* **Industry context (assumption-based).** :func:`timeline_deployability` replaces the factors
  by dated industry shares from ``adoption_timeline.csv`` and :func:`adoption_curve` orders
  adoption steps with a cost model; both carry ``basis = "assumption"``.
  :func:`token_binding_counterfactual` puts every family at Token Binding's best historical
  client support with every RS and AS supporting it, so its failure comes out of the product
  over hops.

Reasons are bit flags turned into words (naming the blocking component) once per distinct
combination.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
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
    str_codes,
)
from tokenlib.analysis.models import exposure_by_mechanism
from tokenlib.analysis.models.mechanisms import FAMILIES, Family, Mechanism, View
from tokenlib.analysis.models.mechanisms import mechanism as resolve_mechanism
from tokenlib.analysis.models.support import (
    DEFAULT_AS,
    resolve_authorization_servers,
    structural_support,
    structural_supports,
)
from tokenlib.analysis.params import ModelParameters, reference_dir

__all__ = [
    "COMPONENTS",
    "FAMILIES",
    "REASONS",
    "adoption_curve",
    "deployability",
    "deployable_share",
    "deployment_cost",
    "family_of",
    "load_adoption_timeline",
    "load_component_support",
    "reason_text",
    "timeline_deployability",
    "token_binding_counterfactual",
]

#: Components a binding needs, in the order ``blocked_by`` names them.
COMPONENTS: tuple[str, ...] = (
    "client",
    "certificate management",
    "authorization server",
    "resource server",
    "path",
)

# bit -> (code, sentence). Sentences name the blocking component and the RFC section behind it.
REASONS: dict[int, tuple[str, str]] = {
    1: (
        "client_cert_ux",
        "client: browser clients cannot present client certificates usably "
        "(RFC 8705 §6.4, RFC 9449 §1)",
    ),
    2: ("client_no_stack", "client: no supported client platform implements it"),
    4: (
        "hop_drops_cert",
        (
            "path: a hop terminates TLS without forwarding the client certificate (RFC "
            "8705 §6.5): reconfigure it to sanitised forwarding (RFC 9440)"
        ),
    ),
    8: (
        "hop_ttrp",
        "path: a TLS-terminating hop cannot carry Token Binding (draft-ietf-tokbind-ttrp expired)",
    ),
    16: (
        "rs_unsupported",
        (
            "resource server: the resource server does not support it yet, and until it does a "
            "bound token is accepted as bearer (RFC 9449 §7.2)"
        ),
    ),
    32: (
        "no_cert_management",
        "client: the client has no certificate management (needs a PKI or SPIFFE first)",
    ),
    64: (
        "forward_cert_trust",
        (
            "path: the path forwards the client certificate in a header, which does not "
            "fail safe: verify sanitisation (RFC 9440 §4, RFC 9700 §4.13)"
        ),
    ),
    128: (
        "tb_no_browser",
        "client: no shipping browser supports Token Binding since Edge 130 (2024-10-17)",
    ),
    256: (
        "tb_no_server",
        "resource server: no maintained server TLS stack supports Token Binding",
    ),
    512: (
        "client_change",
        "client: the client must generate and protect a key and sign or present it",
    ),
    1024: ("path_e2e", "path: TLS runs end to end from client to resource server"),
    2048: (
        "as_unsupported",
        "authorization server: the authorization server does not issue DPoP-bound tokens "
        "(RFC 9449 §5): configure, upgrade or replace it first",
    ),
    4096: (
        "as_unsupported",
        "authorization server: the authorization server does not issue certificate-bound tokens "
        "(RFC 8705 §3): configure, upgrade or replace it first",
    ),
    8192: (
        "as_unsupported",
        "authorization server: no authorization server issues Token Binding-bound tokens "
        "(draft-ietf-oauth-token-binding expired)",
    ),
}
_AS_BIT: dict[str, int] = {"dpop": 2048, "mtls": 4096, "token_binding": 8192}


def family_of(value: str | Mechanism) -> Family:
    """Deployment family of a mechanism id or object (``dpop_nonce`` -> ``dpop``).

    A family name (``dpop``) is returned as is; anything else is resolved through
    :func:`tokenlib.analysis.models.mechanisms.mechanism` (``ValueError`` if unknown).
    """
    if isinstance(value, str) and value in FAMILIES:
        return value
    return resolve_mechanism(value).family


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


def _factor(table: pd.DataFrame, component: str, mech: str, value: str, default: float) -> float:
    sub = table[
        (table["component"] == component) & (table["mechanism"] == mech) & (table["value"] == value)
    ]
    return float(sub["support"].iloc[0]) if len(sub) else default


def _hop_products(
    table: pd.DataFrame,
    codes: npt.NDArray[np.int64],
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


def _blocked_by(mask: npt.NDArray[np.int64]) -> pd.Categorical:
    """``"client, resource server"``-style text per component bit mask (no per-row strings)."""
    mask = np.asarray(mask, dtype=np.int64)
    used = np.flatnonzero(np.bincount(mask, minlength=1 << len(COMPONENTS)))
    texts = [", ".join(c for i, c in enumerate(COMPONENTS) if int(m) >> i & 1) for m in used]
    remap = np.zeros(1 << len(COMPONENTS), dtype=np.int64)
    remap[used] = np.arange(len(used))
    return pd.Categorical.from_codes(remap[mask], categories=texts)


def deployability(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanisms: Iterable[str | Mechanism] = FAMILIES,
    support: pd.DataFrame | None = None,
    authorization_servers: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per flow x mechanism family: deployable today (inventory), probabilities, reasons.

    ``mechanisms`` are families or mechanism ids (mapped by :func:`family_of`).
    ``authorization_servers`` defaults to the table derived from the flows.

    Inventory-based (no assumption): ``deployable_today`` = client, AS, RS and path all
    support the family today (:func:`~tokenlib.analysis.models.support.structural_support`,
    view ``today``) and, for mTLS, the client has certificate management; the components are
    ``client_ok, cert_ok, as_ok, rs_ok, path_ok`` and ``blocked_by`` names the failing ones.

    Assumption-based (``component_support.csv``): ``p_deploy_now`` with today's RS/AS support
    and hops, ``p_deploy`` after the organisation's changes (RS upgraded, AS enabled, mTLS hops
    reconfigured), ``deployable = p_deploy > 0``; factors ``client_support, cert_support,
    as_support_now, as_support, rs_support_now, rs_support, hop_support_now, hop_support``.

    Changes: ``in_use, client_change, as_change, rs_change, hop_changes, n_changes``. Reasons:
    ``reason_bits`` (see :data:`REASONS`) and ``reasons`` (sentences naming the component).
    """
    require_columns(flows, services)
    table = support if support is not None else load_component_support()
    fams = [family_of(m) for m in mechanisms]
    ast = (
        resolve_authorization_servers(flows, authorization_servers)
        if any(f in ("mtls", "dpop") for f in fams)
        else authorization_servers
    )
    feats = features(flows)
    codes, parsed = path_codes(flows)
    browser = is_in(flows["client_kind"], "browser_spa")
    cm_none = is_in(flows["cert_management"], "none")
    n_tnf = feats["n_terminate_no_forward"].to_numpy()
    n_fc = feats["n_forward_cert"].to_numpy()
    all_pt = feats["all_passthrough"].to_numpy(dtype=bool)
    fcodes, funiq = str_codes(flows["flow_id"])
    n = len(flows)
    parts: list[dict[str, npt.NDArray[np.generic]]] = []
    sups = structural_supports(flows, services, ast, families=fams, views=("today",))
    for fam in fams:
        sup = sups[(fam, "today")]
        cert_ok = ~cm_none if fam == "mtls" else np.ones(n, dtype=bool)
        today = sup.enforceable & cert_ok
        c = _lookup(table, "client", flows["client_kind"], fam)
        cert = _lookup(table, "cert_management", flows["cert_management"], fam)
        supported = sup.resource_server
        rs_tab = table[(table["component"] == "rs") & (table["mechanism"] == fam)].set_index(
            "value"
        )["support"]
        s_now = np.where(
            supported, float(rs_tab.get("supported", 1.0)), float(rs_tab.get("unsupported", 0.0))
        )
        s_after = np.where(
            supported, float(rs_tab.get("supported", 1.0)), float(rs_tab.get("enable", 0.0))
        )
        issuing = sup.authorization_server
        a_yes = _factor(table, "as", fam, "issues", 1.0)
        a_now = np.where(issuing, a_yes, _factor(table, "as", fam, "not_issuing", 0.0))
        a_after = np.where(issuing, a_yes, _factor(table, "as", fam, "enable", 1.0))
        h_now, _ = _hop_products(table, codes, parsed, fam, fix_mtls=False)
        h_after, hop_changes = _hop_products(table, codes, parsed, fam, fix_mtls=True)
        p_now = c * cert * a_now * s_now * h_now
        p_after = c * cert * a_after * s_after * h_after
        in_use = is_in(flows["binding"], fam) if fam != "bearer" else np.ones(n, dtype=bool)
        bound = fam != "bearer"
        client_change = ~in_use & bound
        rs_change = ~supported & bound
        as_change = ~issuing & bound
        bits = np.zeros(n, dtype=np.int64)
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
        if bound:
            bits |= np.where(as_change, _AS_BIT[fam], 0)
        if fam in ("mtls", "dpop"):
            bits |= np.where((c == 0) & ~browser, 2, 0)
            bits |= np.where(rs_change, 16, 0)
        if bound:
            bits |= np.where(client_change & (c > 0), 512, 0)
        blocked = (
            (~sup.client).astype(np.int64)
            | (~cert_ok).astype(np.int64) << 1
            | (~sup.authorization_server).astype(np.int64) << 2
            | (~sup.resource_server).astype(np.int64) << 3
            | (~sup.path).astype(np.int64) << 4
        )
        parts.append(
            {
                "deployable_today": today,
                "client_ok": sup.client,
                "cert_ok": cert_ok,
                "as_ok": sup.authorization_server,
                "rs_ok": sup.resource_server,
                "path_ok": sup.path,
                "deployable": p_after > 0,
                "p_deploy": p_after,
                "p_deploy_now": p_now,
                "client_support": c,
                "cert_support": cert,
                "as_support_now": a_now,
                "as_support": a_after,
                "rs_support_now": s_now,
                "rs_support": s_after,
                "hop_support_now": h_now,
                "hop_support": h_after,
                "in_use": in_use,
                "client_change": client_change,
                "as_change": as_change,
                "rs_change": rs_change,
                "hop_changes": hop_changes.astype(np.int64),
                "n_changes": client_change.astype(np.int64)
                + as_change.astype(np.int64)
                + rs_change.astype(np.int64)
                + hop_changes.astype(np.int64),
                "reason_bits": bits,
                "blocked_mask": blocked,
            }
        )
    k = len(parts)
    data: dict[str, object] = {
        "flow_id": pd.Categorical.from_codes(
            np.tile(fcodes.astype(np.int32), k), categories=pd.Index(funiq)
        ),
        "mechanism": pd.Categorical.from_codes(
            np.repeat(np.asarray([FAMILIES.index(f) for f in fams], dtype=np.int8), n),
            categories=list(FAMILIES),
        ),
    }
    for name in parts[0] if parts else ():
        if name != "blocked_mask":
            data[name] = np.concatenate([np.asarray(pt[name]) for pt in parts])
    # copy=False: the concatenated columns are fresh, consolidating them would copy 4M rows again
    out = pd.DataFrame(data, copy=False)
    if k:
        out["blocked_by"] = _blocked_by(np.concatenate([pt["blocked_mask"] for pt in parts]))
        out["reasons"] = reason_text(out["reason_bits"].to_numpy())
    else:
        out["blocked_by"] = []
        out["reasons"] = []
    return out


def deployable_share(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    authorization_servers: pd.DataFrame | None = None,
    *,
    family: str | Mechanism,
    view: View = "today",
) -> float:
    """Share of flows on which ``family`` can be enforced, from the inventory only (basis
    ``inventory``): client, authorization server, resource server and every hop support it
    (:func:`~tokenlib.analysis.models.support.structural_support` in ``view``), and for mTLS the
    client has certificate management. No industry adoption share enters. ``family`` may be a
    mechanism id (``dpop_nonce`` counts as ``dpop``). ``nan`` for an empty inventory.
    """
    fam = family_of(family)
    sup = structural_support(flows, services, authorization_servers, family=fam, view=view)
    ok = sup.enforceable
    if fam == "mtls":
        ok = ok & ~is_in(flows["cert_management"], "none")
    return float(ok.mean()) if len(ok) else float("nan")


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
    """Cost (USD) attributed to each flow for adopting ``mechanism`` (assumption-based).

    One-off engineering: client change (A18a) shared by the flows of a ``client_id``, RS change
    (A18b) shared by the RS's flows, each hop reconfiguration (A18c), nonces (A18d, shared by
    the RS's flows, for mechanisms with ``nonce``) -- times A18e. Enabling the authorization
    server (``as_change``) has no cost parameter and is not costed here. Per request: DPoP proof
    creation + verification (A19a/A19b; ``ModelParameters.with_measured_costs()`` puts the
    benchmark's numbers there) or the mTLS overhead (A19c), times
    ``requests_per_day * horizon`` (A18g) at A18f per core-hour.
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
    if mechanism not in FAMILIES and resolve_mechanism(mechanism).nonce:
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
    with A6 = share of paths with a terminating hop (one hop assumed), and ``basis``.

    These are **assumption-based industry shares** (``basis = "assumption"``), context for how
    the ecosystem moved -- not what this inventory can deploy today (that is
    :func:`deployable_share` and ``deployability(...)["deployable_today"]``).
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
                {
                    "date": dt,
                    "mechanism": mech,
                    "deployable_share": share,
                    "market_share": market,
                    "basis": "assumption",
                }
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
    authorization_servers: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Share of replay exposure removed vs. number of components changed (assumption-based).

    The unit of adoption is one resource server: enabling ``mechanism`` there (if not supported)
    together with the clients and authorization servers (first time they appear) and hops that
    must change for its deployable flows. Steps are taken cheapest first (``order="cheapest"``)
    or by exposure removed per dollar (``order="value"``). A flow's benefit is
    ``p_deploy * (exposure_current - exposure_mechanism)`` (never negative), the exposure from
    :func:`tokenlib.analysis.models.exposure_by_mechanism` in view ``upgraded`` (the step
    upgrades the RS; the client, AS and path stay as they are, so a flow whose AS cannot issue
    the family gains nothing). Returns one row per
    step plus a step 0: ``step, service_id, components_changed, cost_usd, exposure_removed,
    share_removed`` (cumulative), ``mechanism`` and ``basis`` (``"assumption"``: the benefit is
    weighted by the assumption-based ``p_deploy`` and priced by the cost model). Token Binding
    has no deployable flow, so its curve stays at 0.
    """
    p = params or ModelParameters.from_reference()
    fam = family_of(mechanism)
    exp = (
        exposure
        if exposure is not None
        else exposure_by_mechanism(
            flows,
            services,
            p,
            mechanisms=[mechanism],
            view="upgraded",
            authorization_servers=authorization_servers,
        )
    )
    d = deployability(
        flows, services, p, mechanisms=[fam], authorization_servers=authorization_servers
    ).reset_index(drop=True)
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
            "basis": ["assumption"],
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
            "as": _as_codes(flows)[ok],
            "as_change": d["as_change"].to_numpy()[ok],
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
    first_as = f[f["as_change"]].drop_duplicates("as")
    new_as = np.bincount(first_as["step"].to_numpy(dtype=np.int64), minlength=len(per_rs))
    hop_paths = f.groupby("step")["hops"].max().reindex(range(len(per_rs)), fill_value=0).to_numpy()
    comps = per_rs["rs_change"].to_numpy(dtype=np.int64) + new_clients + new_as + hop_paths
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
    out["basis"] = "assumption"
    return pd.concat([base, out], ignore_index=True)


def _as_codes(flows: pd.DataFrame) -> npt.NDArray[np.int64]:
    """Integer code of each flow's authorization server (``as-default`` when not named)."""
    if "authorization_server" not in flows.columns:
        return np.zeros(len(flows), dtype=np.int64)
    codes, uniq = str_codes(flows["authorization_server"])
    named = np.array([str(u).strip() or DEFAULT_AS for u in uniq], dtype=str)
    _, remap = np.unique(named, return_inverse=True)
    return np.asarray(remap, dtype=np.int64)[codes]


def _mean(values: FloatArray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _best_client_share(tl: pd.DataFrame, component: str) -> tuple[float, str]:
    """Highest dated Token Binding share of ``component`` and the date it held from."""
    sub = tl[(tl["mechanism"] == "token_binding") & (tl["component"] == component)]
    if sub.empty:
        return 0.0, ""
    i = int(np.argmax(sub["share"].to_numpy(dtype=float)))
    row = sub.iloc[i]
    return float(row["share"]), str(pd.Timestamp(row["date"]).date())


def token_binding_counterfactual(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    authorization_servers: pd.DataFrame | None = None,
    *,
    timeline: pd.DataFrame | None = None,
    families: Sequence[str] = ("token_binding", "dpop", "mtls"),
) -> pd.DataFrame:
    """Why Token Binding failed, from the all-hops computation on this inventory.

    Every family is put at **Token Binding's best historical client support**: the maximum
    dated share in ``adoption_timeline.csv`` for ``token_binding`` ``client_browser`` (browser
    SPAs) and ``client_other`` (every other client kind) -- an assumption-based share. Every
    authorization server and every resource server is assumed to support every family. What is
    left is the client's structural limit (a browser cannot use mTLS, RFC 8705 §6.4) and the
    path, from the inventory (:func:`~tokenlib.analysis.models.support.structural_support`):

    * Token Binding: every hop must pass TLS through (a TLS-terminating CDN, load balancer or
      gateway breaks it; draft-ietf-tokbind-ttrp expired), so the product over hops drives its
      deployable flows to ~0 on any inventory whose paths terminate TLS;
    * DPoP: any path (headers are forwarded, RFC 9449 §4) -- it needs only the client, the RS
      and the AS, so its counterfactual does not depend on the hops;
    * mTLS: no hop may terminate TLS without forwarding the certificate (RFC 8705 §6.5, RFC 9440).

    Columns, one row per family: ``family``, ``client_share`` (mean client factor),
    ``as_share`` and ``rs_share`` (1.0, assumed), ``hops_share`` (mean over flows of the product
    over hops, 0/1 per flow), ``deployable_share`` (mean over flows of client x AS x RS x hops),
    ``deployable_share_today`` (:func:`deployable_share` with the inventory's real support, for
    comparison), ``client_share_browser``, ``client_share_other`` (the shares used and the dates
    they held from: ``client_date_browser``, ``client_date_other``), ``n_flows`` and ``basis``
    (``"assumption"``: the client side rests on assumed shares; the hops come from the
    inventory). Certificate management is not a factor here (the counterfactual is about the
    path).
    """
    tl = timeline if timeline is not None else load_adoption_timeline()
    cb, db = _best_client_share(tl, "client_browser")
    co, do = _best_client_share(tl, "client_other")
    browser = is_in(flows["client_kind"], "browser_spa")
    kind_share = np.where(browser, cb, co)
    n = len(flows)
    fams = [family_of(f) for f in families]
    ast = (
        resolve_authorization_servers(flows, authorization_servers)
        if any(f in ("mtls", "dpop") for f in fams)
        else authorization_servers
    )
    rows = []
    sups = structural_supports(flows, services, ast, families=fams, views=("upgraded",))
    for fam in fams:
        sup = sups[(fam, "upgraded")]
        if fam == "token_binding":
            # Token Binding's own client support is the counterfactual itself; only its path
            # rule (and AS/RS, assumed here) is taken from structural_support.
            client_ok, path_ok = np.ones(n, dtype=bool), sup.path
        else:
            client_ok, path_ok = sup.client, sup.path
        client = kind_share * client_ok
        as_share = rs_share = 1.0  # every AS and RS assumed to support the family
        hops = path_ok.astype(float)
        deploy = client * as_share * rs_share * hops
        rows.append(
            {
                "family": fam,
                "client_share": _mean(client),
                "as_share": as_share,
                "rs_share": rs_share,
                "hops_share": _mean(hops),
                "deployable_share": _mean(deploy),
                "deployable_share_today": deployable_share(
                    flows, services, ast, family=fam, view="today"
                ),
                "client_share_browser": cb,
                "client_share_other": co,
                "client_date_browser": db,
                "client_date_other": do,
                "n_flows": n,
                "basis": "assumption",
            }
        )
    return pd.DataFrame(rows)
