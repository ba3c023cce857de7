"""Per-flow recommendations derived from the exposure model, with policy rules kept apart.

**Model choice.** For each flow the candidates are *keep* (today's mechanism; for a bearer flow
that is bearer with compensating controls), ``mtls``, ``dpop_shared_cache`` and
``dpop_nonce_shared_cache``. Each is scored by the token-theft exposure, metric ``usable``
(:mod:`tokenlib.analysis.models`), evaluated on counterfactual frames in which the flow's
resource server verifies the binding, its authorization server issues bound tokens and, for
mTLS, terminating hops forward the certificate (RFC 9440) and certificates are managed -- the
changes whose likelihood ``deploy.deployability``'s ``p_deploy`` prices. A candidate is
*deployable* when ``p_deploy >= A22`` and *worth it* when it removes at least A21 of the flow's
exposure; the choice is the eligible candidate with the lowest exposure, the cheaper one when
several are within A21 of the best (keep costs nothing). Bearer is "accepted as residual risk"
only when no deployable candidate removes at least A21.

**Policy rules** (labelled ``policy`` in the reasons, not model outputs):

* RFC 9449 §11.2 -- "SHOULD NOT issue long-lived DPoP constrained access tokens" without
  nonces: a DPoP choice for an access token living longer than A20 becomes
  ``dpop_nonce_shared_cache``.
* Compliance flags (``policy_flags``), which hold whatever the ranking says: see
  :data:`POLICY_FLAGS` (FAPI 2.0, RFC 9700 §2.2.2, RFC 9449 §11.2) and :data:`OWASP_NHI_TOP10`.

**Cost** per candidate: ``controls`` module's cost model (engineer-days x A18e; client change
A18a shared by a client's flows, RS change A18b, hop A18c and shared-store/nonce A18d shared by
an RS's flows, authorization-server change ``controls.AS_CHANGE_PARAM`` shared by an AS's
flows, certificate automation A18a; per-request CPU A19a-c over A18g at A18f).

**Robustness**: the share of joint draws (``uncertainty.draw_parameters``: every assumption,
thresholds A20-A22 included) in which the flow's recommendation stays the same; each draw
builds one :class:`FlowContext` for the counterfactual frames (plus one for the flows bound
today, whose *keep* exposure needs their real frames).

Reasons are generated from model outputs (the share each candidate removes, which component
blocks it, which changes it needs); priority ranks by ``p_deploy * exposure_removed /
cost_usd``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tokenlib.analysis._csv import write_csv
from tokenlib.analysis._diskcache import cached
from tokenlib.analysis._groups import distinct_rows
from tokenlib.analysis._paths import as_str, features, is_in, service_lookup, str_codes
from tokenlib.analysis.controls import AS_CHANGE_PARAM, control
from tokenlib.analysis.deploy import deployability
from tokenlib.analysis.models import MECHANISMS, FlowContext, exposure_arrays
from tokenlib.analysis.models.context import privilege_class
from tokenlib.analysis.models.support import DEFAULT_AS, resolve_authorization_servers
from tokenlib.analysis.params import ModelParameters
from tokenlib.analysis.uncertainty import DEFAULT_DRAWS, draw_parameters

__all__ = [
    "CANDIDATES",
    "FAPI_WORDS",
    "OWASP_NHI_SOURCE",
    "OWASP_NHI_TOP10",
    "POLICY_FLAGS",
    "RECOMMENDATIONS",
    "candidate_exposures",
    "export_recommendations",
    "recommend",
    "recommendation_summary",
]

FloatArray = npt.NDArray[np.floating[Any]]
BoolArray = npt.NDArray[np.bool_]

#: Candidates of the model choice, in tie-break order (keep first: it costs nothing).
CANDIDATES: tuple[str, ...] = ("keep", "mtls", "dpop_shared_cache", "dpop_nonce_shared_cache")
#: Values of ``recommended`` (a user contract).
RECOMMENDATIONS: tuple[str, ...] = ("mtls", "dpop", "dpop_nonce", "bearer")
_FAMILY = {"mtls": "mtls", "dpop_shared_cache": "dpop", "dpop_nonce_shared_cache": "dpop"}
_REC_OF = {"mtls": "mtls", "dpop_shared_cache": "dpop", "dpop_nonce_shared_cache": "dpop_nonce"}
_LABEL = {
    "keep": "today's mechanism",
    "mtls": "mTLS",
    "dpop_shared_cache": "DPoP",
    "dpop_nonce_shared_cache": "DPoP + nonces",
}

#: Words of a scope or service id that make a flow "financial-style" (FAPI-grade).
FAPI_WORDS: tuple[str, ...] = (
    "payment", "payments", "pay", "ledger", "billing", "invoice", "bank", "banking",
    "transfer", "finance", "financial", "account", "accounts", "card", "wallet",
)  # fmt: skip

#: Compliance flags: id -> (rule, source). They hold regardless of the model's ranking.
POLICY_FLAGS: dict[str, tuple[str, str]] = {
    "fapi2_sender_constraining_required": (
        "FAPI-grade flow (resource-server sensitivity 5, or a financial-style scope or service: "
        "FAPI_WORDS) without an enforced sender-constrained access token today",
        "FAPI 2.0 Security Profile (OpenID Foundation, Final, 2025-02): authorization servers "
        "shall only issue sender-constrained access tokens, using mTLS (RFC 8705) or DPoP "
        "(RFC 9449)",
    ),
    "rfc9700_public_refresh_token_unprotected": (
        "a public client's refresh token is neither rotated nor sender-constrained (enforced "
        "DPoP or mTLS binding at an authorization server that binds refresh tokens)",
        "RFC 9700 §2.2.2: refresh tokens for public clients MUST be sender-constrained or use "
        "refresh token rotation",
    ),
    "rfc9449_long_lived_without_nonce": (
        "a DPoP flow whose access token outlives A20 while its resource server does not "
        "require server nonces",
        "RFC 9449 §11.2: SHOULD NOT issue long-lived DPoP constrained access tokens without "
        "server-provided nonces (A20 is the policy threshold for 'long-lived')",
    ),
}

#: OWASP Top 10 Non-Human Identities Risks (2025), verified against the project's list.
OWASP_NHI_SOURCE = (
    "OWASP Top 10 Non-Human Identities Risks - 2025, "
    "https://owasp.org/www-project-non-human-identities-top-10/2025/top-10-2025 "
    "(OWASP/www-project-non-human-identities-top-10, 2025/docs/top-10-2025.md)"
)
OWASP_NHI_TOP10: dict[int, str] = {
    1: "Improper Offboarding",
    2: "Secret Leakage",
    3: "Vulnerable Third-Party NHI",
    4: "Insecure Authentication",
    5: "Overprivileged NHI",
    6: "Insecure Cloud Deployment Configurations",
    7: "Long-Lived Secrets",
    8: "Environment Isolation",
    9: "NHI Reuse",
    10: "Human Use of NHI",
}
#: Finding (on a non-human identity: a workload or a client_credentials grant) -> NHI item.
OWASP_NHI_FINDINGS: dict[str, tuple[int, str]] = {
    "token_in_storage_channel": (2, "a token or key can leak through a stored channel"),
    "third_party_holds_credentials": (3, "a partner integrator stores the credentials"),
    "bearer_or_secret_authentication": (
        4,
        "the client authenticates with a shared secret or presents an unbound bearer token",
    ),
    "admin_or_unrestricted_token": (
        5,
        "administrative scopes, or a token every service of the issuer accepts",
    ),
    "long_lived_credential": (
        7,
        "access token over A20, a static refresh token or a manually managed certificate",
    ),
    "client_across_environments": (8, "the same client_id is used in several environments"),
    "client_across_kinds": (9, "the same client_id is used by several kinds of client"),
    "human_uses_workload_grant": (10, "a human-operated client uses a client_credentials grant"),
}


# --------------------------------------------------------------------------- frames


_TERMINATE = re.compile(r":terminate(?=>|$)")


def _capability_frames(
    flows: pd.DataFrame, services: pd.DataFrame, ases: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every RS verifies mTLS and DPoP, every AS issues both (and binds refresh tokens), every
    terminating hop forwards the certificate (RFC 9440) and certificates are managed. Only the
    candidates' own family reads each change, so one frame set scores all three."""
    f = flows.copy(deep=False)  # only two columns change; they are replaced, not written into
    codes, uniq = str_codes(flows["path"])
    fixed = np.array(
        [_TERMINATE.sub(":terminate_forward_cert", str(u)) for u in uniq], dtype=object
    )
    f["path"] = fixed[codes] if len(uniq) else np.array([], dtype=object)
    cm = f["cert_management"]
    none = is_in(cm, "none")
    if none.any():
        if isinstance(cm.dtype, pd.CategoricalDtype) and "automated_pki" not in cm.cat.categories:
            cm = cm.cat.add_categories(["automated_pki"])
        f["cert_management"] = cm.mask(pd.Series(none, index=cm.index), "automated_pki")
    s = services.copy()
    s["supports_mtls"] = True
    s["supports_dpop"] = True
    a = ases.copy()
    for col in ("issues_dpop", "issues_mtls", "binds_refresh_tokens"):
        a[col] = True
    return f, s, a


def _usable(ctx: FlowContext, mechs: Sequence[str]) -> dict[str, FloatArray]:
    """Token-theft exposure, metric usable, view today, of each mechanism and of "current"."""
    return exposure_arrays(
        ctx, mechs, view="today", group="token_theft", metric="usable", current=not mechs
    )


@dataclass(frozen=True, slots=True)
class _Inputs:
    flows: pd.DataFrame
    services: pd.DataFrame
    ases: pd.DataFrame
    cf: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]
    bound: npt.NDArray[np.int64]
    #: index into ``MECHANISMS`` of each flow's mechanism today (bearer flows: 0)
    current_code: npt.NDArray[np.int64]
    #: the caller's context of ``flows`` (its parameters' exposures are reused), if any
    context: FlowContext | None


def _inputs(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    ases: pd.DataFrame,
    context: FlowContext | None,
) -> _Inputs:
    bound = np.flatnonzero(~is_in(flows["binding"], "bearer"))
    current = np.zeros(len(flows), dtype=np.int64)
    if context is not None:
        current = np.asarray(context.current_code, dtype=np.int64)
    elif len(bound):  # today's mechanism needs no parameters: read it off the bound flows only
        sub = FlowContext.build(flows.iloc[bound], services, authorization_servers=ases)
        current[bound] = sub.current_code
    cf = _capability_frames(flows, services, ases)
    return _Inputs(flows, services, ases, cf, bound, current, context)


def _exposures(inp: _Inputs, p: ModelParameters) -> FloatArray:
    """``(n, 4)`` token-theft exposure of each candidate (``CANDIDATES`` order)."""
    f, s, a = inp.cf
    ctx = FlowContext.build(f, s, p, authorization_servers=a)
    out = np.empty((ctx.n, len(CANDIDATES)))
    # keep = bearer for flows that are bearer today (bearer cells read none of the changes)
    arrays = _usable(ctx, ["bearer", *CANDIDATES[1:]])
    out[:, 0] = arrays["bearer"]
    for j, m in enumerate(CANDIDATES[1:], start=1):
        out[:, j] = arrays[m]
    if len(inp.bound):
        if inp.context is not None and inp.context.params == p:
            out[inp.bound, 0] = _usable(inp.context, [])["current"][inp.bound]
        else:
            sub = inp.flows.iloc[inp.bound]
            cb = FlowContext.build(sub, inp.services, p, authorization_servers=inp.ases)
            out[inp.bound, 0] = _usable(cb, [])["current"]
    return out


def candidate_exposures(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    authorization_servers: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Token-theft exposure (usable) of each candidate per flow: ``exposure_keep`` (today),
    ``exposure_mtls``, ``exposure_dpop_shared_cache``, ``exposure_dpop_nonce_shared_cache``
    (after the RS, AS, hop and certificate changes the candidate needs)."""
    p = params or ModelParameters.from_reference()
    ases = resolve_authorization_servers(flows, authorization_servers)
    e = _exposures(_inputs(flows, services, ases, None), p)
    data: dict[str, Any] = {"flow_id": np.asarray(as_str(flows["flow_id"]))}
    for j, c in enumerate(CANDIDATES):
        data[f"exposure_{c}"] = e[:, j]
    return pd.DataFrame(data, index=flows.index)


# --------------------------------------------------------------------------- costs


@dataclass(frozen=True, slots=True)
class _CostModel:
    """Per candidate: engineer-day coefficients by parameter and CPU parameters."""

    days: tuple[dict[str, FloatArray], ...]
    cpu: tuple[tuple[str, ...], ...]
    rpd: FloatArray
    new: tuple[BoolArray, ...]

    def cost(self, p: ModelParameters) -> FloatArray:
        n = len(self.rpd)
        out = np.zeros((n, len(self.days)))
        for j, (coef, cpu, new) in enumerate(zip(self.days, self.cpu, self.new, strict=True)):
            d = np.zeros(n)
            for name, c in coef.items():
                d += c * float(getattr(p, name))
            sec = sum(float(getattr(p, x)) for x in cpu)
            per_req = np.where(new, sec * self.rpd * p.horizon_days * p.cpu_usd_per_core_hour, 0.0)
            out[:, j] = d * p.engineer_day_usd + per_req / 3600.0
        return out


def _family_rows(dep: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The deployability rows of mTLS and of DPoP, one per flow each, split once."""
    mech = dep["mechanism"]
    return {fam: dep[is_in(mech, fam)] for fam in ("mtls", "dpop")}


def _per_client_nunique(client: npt.NDArray[np.int64], other: npt.NDArray[np.int64]) -> FloatArray:
    """For each row, how many distinct ``other`` values its client has (integer codes)."""
    if not len(client):
        return np.zeros(0)
    k = int(other.max()) + 1
    pairs = np.unique(client * k + other)
    return np.bincount(pairs // k, minlength=int(client.max()) + 1)[client].astype(float)


def _share(codes: npt.NDArray[np.int64]) -> FloatArray:
    return np.bincount(codes)[codes].astype(float) if len(codes) else np.zeros(0)


def _as_codes(flows: pd.DataFrame) -> npt.NDArray[np.int64]:
    if "authorization_server" not in flows.columns:
        return np.zeros(len(flows), dtype=np.int64)
    codes, uniq = str_codes(flows["authorization_server"])
    named = np.array([str(u).strip() or DEFAULT_AS for u in uniq], dtype=object)
    _, inv = np.unique(named.astype(str), return_inverse=True)
    return np.asarray(inv, dtype=np.int64).reshape(-1)[codes]


_DPOP_CPU = ("dpop_sign_cost_s", "dpop_verify_cost_s")


def _cost_model(
    flows: pd.DataFrame, services: pd.DataFrame, fam_rows: dict[str, pd.DataFrame]
) -> _CostModel:
    n = len(flows)
    per_client = _share(str_codes(flows["client_id"])[0])
    per_rs = _share(str_codes(flows["resource_server"])[0])
    per_as = _share(_as_codes(flows))
    pos, svc = service_lookup(flows, services)
    shared = np.asarray(as_str(svc["jti_cache"]))[pos] == "shared"
    nonce = svc["requires_nonce"].to_numpy(dtype=bool)[pos]
    cm_none = is_in(flows["cert_management"], "none")

    def d(fam: str, name: str) -> FloatArray:
        return np.asarray(fam_rows[fam][name].to_numpy(dtype=float))

    def add(coef: dict[str, FloatArray], name: str, value: FloatArray) -> None:
        coef[name] = coef.get(name, np.zeros(n)) + value

    zero: dict[str, FloatArray] = {}
    m_new = d("mtls", "client_change") > 0
    mtls: dict[str, FloatArray] = {}
    add(mtls, "cost_client_change_days", d("mtls", "client_change") / per_client)
    add(mtls, "cost_client_change_days", (cm_none & m_new) / per_client)  # cert automation
    add(mtls, "cost_rs_change_days", d("mtls", "rs_change") / per_rs)
    add(mtls, "cost_hop_change_days", d("mtls", "hop_changes") / per_rs)
    add(mtls, AS_CHANGE_PARAM, d("mtls", "as_change") / per_as)
    d_new = d("dpop", "client_change") > 0
    dpop: dict[str, FloatArray] = {}
    add(dpop, "cost_client_change_days", d("dpop", "client_change") / per_client)
    add(dpop, "cost_rs_change_days", d("dpop", "rs_change") / per_rs)
    add(dpop, AS_CHANGE_PARAM, d("dpop", "as_change") / per_as)
    add(dpop, "cost_nonce_days", (~shared) / per_rs)  # shared jti store
    dpop_n = dict(dpop)
    add(dpop_n, "cost_nonce_days", (~nonce) / per_rs)  # server nonces
    return _CostModel(
        days=(zero, mtls, dpop, dpop_n),
        cpu=((), ("mtls_request_cost_s",), _DPOP_CPU, _DPOP_CPU),
        rpd=flows["requests_per_day"].to_numpy(dtype=float),
        new=(np.zeros(n, dtype=bool), m_new, d_new, d_new),
    )


# --------------------------------------------------------------------------- choice


def _choose(
    e: FloatArray,
    cost: FloatArray,
    p_dep: FloatArray,
    lifetime: FloatArray,
    p: ModelParameters,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], BoolArray]:
    """(model choice, final choice after the policy rule, policy rule applied) per flow."""
    keep = e[:, 0]
    safe = np.where(keep > 0, keep, 1.0)
    rel = np.where(keep[:, None] > 0, (keep[:, None] - e) / safe[:, None], 0.0)
    ok = p_dep >= p.min_p_deploy
    ok[:, 0] = True
    eligible = ok & (rel >= p.min_relative_reduction)
    eligible[:, 0] = True
    masked = np.where(eligible, e, np.inf)
    best = masked.min(axis=1)
    near = eligible & (e <= (best + p.min_relative_reduction * keep)[:, None] + 1e-12)
    score = np.where(near, cost, np.inf)
    tied = near & (score <= score.min(axis=1)[:, None] + 1e-9)
    # cheapest among the near-best; ties by lower exposure, then CANDIDATES order
    choice = np.asarray(np.argmin(np.where(tied, e, np.inf), axis=1), dtype=np.int64)
    policy = (choice == 2) & (lifetime > p.nonce_lifetime_threshold_s) & eligible[:, 3]
    final = np.where(policy, 3, choice).astype(np.int64)
    return choice, final, np.asarray(policy)


# --------------------------------------------------------------------------- flags


def _fapi_grade(flows: pd.DataFrame, sensitivity: FloatArray) -> BoolArray:
    words = set(FAPI_WORDS)

    def financial(text: str) -> bool:
        toks = re.split(r"[\s:./_\-]+", text.lower())
        return any(t in words for t in toks)

    out = sensitivity >= 5
    for col in ("scopes", "resource_server"):
        if col in flows.columns:
            codes, uniq = str_codes(flows[col])
            hit = np.array([financial(str(u)) for u in uniq], dtype=bool)
            out = out | (hit[codes] if len(uniq) else np.zeros(0, dtype=bool))
    return np.asarray(out)


def _policy_flags(
    flows: pd.DataFrame, services: pd.DataFrame, ases: pd.DataFrame, p: ModelParameters
) -> pd.Categorical:
    n = len(flows)
    pos, svc = service_lookup(flows, services)
    sens = svc["sensitivity"].to_numpy(dtype=float)[pos]
    binding = as_str(flows["binding"])
    enforced = flows["binding_enforced"].to_numpy(dtype=bool)
    rs_ok = np.where(
        binding == "dpop",
        svc["supports_dpop"].to_numpy(dtype=bool)[pos],
        np.where(binding == "mtls", svc["supports_mtls"].to_numpy(dtype=bool)[pos], False),
    )
    constrained = (binding != "bearer") & enforced & rs_ok
    life = flows["access_token_lifetime_s"].to_numpy(dtype=float)
    public = is_in(flows["client_type"], "public")
    static = is_in(flows["refresh_token"], "static")
    as_ids = pd.Index(np.asarray(ases["as_id"].astype(str), dtype=object))
    codes, uniq = str_codes(
        flows["authorization_server"]
        if "authorization_server" in flows.columns
        else pd.Series([DEFAULT_AS] * n)
    )
    rows = as_ids.get_indexer(np.array([str(u).strip() or DEFAULT_AS for u in uniq], dtype=object))
    binds = (
        ases["binds_refresh_tokens"].to_numpy(dtype=bool)
        if "binds_refresh_tokens" in ases
        else np.zeros(len(ases), dtype=bool)
    )
    as_binds = (
        np.where(rows >= 0, binds[np.clip(rows, 0, None)], False)[codes]
        if len(uniq)
        else np.zeros(0, dtype=bool)
    )
    nonce = svc["requires_nonce"].to_numpy(dtype=bool)[pos]
    flags: list[tuple[str, BoolArray]] = [
        ("fapi2_sender_constraining_required", _fapi_grade(flows, sens) & ~constrained),
        ("rfc9700_public_refresh_token_unprotected", public & static & ~(constrained & as_binds)),
        (
            "rfc9449_long_lived_without_nonce",
            (binding == "dpop") & (life > p.nonce_lifetime_threshold_s) & ~nonce,
        ),
    ]
    # OWASP NHI findings apply to non-human identities
    nhi = is_in(flows["actor"], "workload") | is_in(flows["grant_type"], "client_credentials")
    ccodes, cuniq = str_codes(flows["exposure_channels"])
    stored_u = np.array(
        [bool(set(str(c).split(";")) - {"", "proxy_logs"}) for c in cuniq], dtype=bool
    )
    stored = stored_u[ccodes] if len(cuniq) else np.zeros(0, dtype=bool)
    secret = is_in(flows["client_type"], "confidential") & is_in(flows["cert_management"], "none")
    secret &= is_in(flows["binding"], "bearer")
    scodes, suniq = str_codes(flows["scopes"])
    priv_u = np.array([privilege_class(str(u)) == "admin" for u in suniq], dtype=bool)
    priv = priv_u[scodes] if len(suniq) else np.zeros(0, dtype=bool)
    unrestricted = ~flows["audience_restricted"].to_numpy(dtype=bool)
    long_lived = (life > p.nonce_lifetime_threshold_s) | static
    long_lived |= is_in(flows["cert_management"], "manual")
    client = str_codes(flows["client_id"])[0]
    env = (
        str_codes(flows["environment"])[0]
        if "environment" in flows.columns
        else np.zeros(n, dtype=np.int64)
    )
    per_env = _per_client_nunique(client, env)
    per_kind = _per_client_nunique(client, str_codes(flows["client_kind"])[0])
    findings = {
        "token_in_storage_channel": stored,
        "third_party_holds_credentials": is_in(flows["client_kind"], "partner_integrator"),
        "bearer_or_secret_authentication": secret | (binding == "bearer"),
        "admin_or_unrestricted_token": priv | unrestricted,
        "long_lived_credential": long_lived,
        "client_across_environments": per_env > 1,
        "client_across_kinds": per_kind > 1,
        "human_uses_workload_grant": is_in(flows["actor"], "human")
        & is_in(flows["grant_type"], "client_credentials"),
    }
    for name, mask in findings.items():
        item = OWASP_NHI_FINDINGS[name][0]
        flags.append((f"owasp_nhi_{item}", nhi & mask))
    bits = np.zeros(n, dtype=np.int64)
    for j, (_, m) in enumerate(flags):
        bits |= np.asarray(m, dtype=np.int64) << j
    names = [f for f, _ in flags]
    bcodes, buniq = pd.factorize(bits)
    texts = [
        ";".join(dict.fromkeys(nm for j, nm in enumerate(names) if int(u) >> j & 1)) for u in buniq
    ]
    cats = pd.Index(texts).unique()
    return pd.Categorical.from_codes(np.asarray(cats.get_indexer(texts))[bcodes], categories=cats)


# --------------------------------------------------------------------------- reasons


def _pct(x: float) -> str:
    return f"{x:.0%}"


def _reasons(
    *,
    final: npt.NDArray[np.int64],
    model_choice: npt.NDArray[np.int64],
    e: FloatArray,
    p_dep: FloatArray,
    policy: BoolArray,
    fam_rows: dict[str, pd.DataFrame],
    flows: pd.DataFrame,
    current_code: npt.NDArray[np.int64],
    p: ModelParameters,
) -> pd.Categorical:
    keep = e[:, 0]
    rel = np.where(
        keep[:, None] > 0, (keep[:, None] - e) / np.where(keep > 0, keep, 1.0)[:, None], 0.0
    )
    eligible = (p_dep >= p.min_p_deploy) & (rel >= p.min_relative_reduction)

    def col(fam: str, name: str) -> npt.NDArray[Any]:
        return np.asarray(fam_rows[fam][name].to_numpy())

    def text(series: Any) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
        c, u = str_codes(series)
        return c, (u[c] if len(u) else np.array([], dtype=object))

    blocked_code, blocked = {}, {}
    for fam in ("mtls", "dpop"):
        blocked_code[fam], blocked[fam] = text(fam_rows[fam]["blocked_by"])
    as_change = {fam: col(fam, "as_change").astype(bool) for fam in ("mtls", "dpop")}
    rs_change = {fam: col(fam, "rs_change").astype(bool) for fam in ("mtls", "dpop")}
    hops = col("mtls", "hop_changes").astype(int)
    if "authorization_server" in flows.columns:
        as_code, as_id = text(flows["authorization_server"])
    else:
        as_code = np.zeros(len(flows), dtype=np.int64)
        as_id = np.full(len(flows), DEFAULT_AS, dtype=object)
    rs = text(flows["resource_server"])[1]
    current = np.asarray([m.id for m in MECHANISMS], dtype=object)[current_code]
    life = flows["access_token_lifetime_s"].to_numpy(dtype=float)
    # Speed: the text depends only on what it displays, which repeats across flows; build it
    # once per distinct displayed input (1,000,000 flows: ~60 s per row -> a few seconds).
    km_all = np.asarray(model_choice, dtype=np.int64)
    best_all = np.where(eligible[:, 1:], rel[:, 1:], -np.inf).max(axis=1)
    at_best = rel[np.arange(len(final)), km_all] + 1e-9 >= best_all

    mtls_k = km_all == 1
    inverse, first = distinct_rows(
        [
            final,
            km_all,
            at_best,
            current_code,
            policy,
            np.where(policy, np.round(life), 0.0),  # shown only for the policy rule
            np.where(mtls_k, as_change["mtls"], as_change["dpop"]),
            np.where(mtls_k, rs_change["mtls"], rs_change["dpop"]),
            hops,
            as_code,
            blocked_code["mtls"],
            blocked_code["dpop"],
            np.round(rel[np.arange(len(final)), km_all] * 100.0),
            np.round(rel[np.arange(len(final)), final] * 100.0),
            *(p_dep[:, j] >= p.min_p_deploy for j in range(1, len(CANDIDATES))),
        ]
    )
    texts = np.empty(len(first), dtype=object)
    for slot, i in enumerate(first):
        texts[slot] = _reason_for(
            int(i),
            final=final,
            model_choice=model_choice,
            rel=rel,
            p_dep=p_dep,
            at_best=at_best,
            blocked=blocked,
            as_change=as_change,
            rs_change=rs_change,
            hops=hops,
            as_id=as_id,
            rs=rs,
            life=life,
            policy=policy,
            current=current,
            p=p,
        )
    cats = sorted(set(texts))
    slot_of = {t: i for i, t in enumerate(cats)}
    remap = np.fromiter((slot_of[t] for t in texts), dtype=np.int64, count=len(texts))
    return pd.Categorical.from_codes(remap[inverse], categories=pd.Index(cats))


def _reason_for(
    i: int,
    *,
    final: npt.NDArray[np.int64],
    model_choice: npt.NDArray[np.int64],
    rel: FloatArray,
    p_dep: FloatArray,
    at_best: BoolArray,
    blocked: dict[str, npt.NDArray[Any]],
    as_change: dict[str, BoolArray],
    rs_change: dict[str, BoolArray],
    hops: npt.NDArray[Any],
    as_id: npt.NDArray[Any],
    rs: npt.NDArray[Any],
    life: FloatArray,
    policy: BoolArray,
    current: npt.NDArray[Any],
    p: ModelParameters,
) -> str:
    """The reasons of one flow, in words, from the model's outputs for it."""
    parts: list[str] = []
    cand = []
    for j in range(1, len(CANDIDATES)):
        c = CANDIDATES[j]
        fam = _FAMILY[c]
        if p_dep[i, j] < p.min_p_deploy:
            why = f"{_LABEL[c]} not deployable (p_deploy below A22 {p.min_p_deploy:.2f}"
            if blocked[fam][i]:
                why += f"; blocked today by the {blocked[fam][i]}"
            cand.append(why + ")")
    if cand:
        parts.append("; ".join(cand))
    k = int(final[i])
    if k == 0:
        if current[i] == "bearer":
            parts.append(
                "no deployable candidate removes at least A21 "
                f"({_pct(p.min_relative_reduction)}) of this flow's exposure: bearer is "
                "accepted as residual risk with compensating controls"
            )
        else:
            parts.append(
                f"keeps {current[i]}: no deployable candidate removes at least A21 "
                f"({_pct(p.min_relative_reduction)}) more"
            )
    else:
        km = int(model_choice[i])
        c = CANDIDATES[km]
        fam = _FAMILY[c]
        if at_best[i]:
            why = "the lowest exposure among deployable candidates"
        else:
            why = f"within A21 ({_pct(p.min_relative_reduction)}) of the best and cheaper"
        parts.append(f"model choice: {_LABEL[c]}, {why} ({_pct(rel[i, km])} removed)")
        needs = []
        if as_change[fam][i]:
            what = (
                "DPoP-bound tokens (RFC 9449 §5)"
                if fam == "dpop"
                else ("certificate-bound tokens (RFC 8705 §3)")
            )
            needs.append(f"authorization server {as_id[i]} must issue {what} (costed)")
        if rs_change[fam][i]:
            needs.append(f"resource server {rs[i]} must verify the binding (RFC 9449 §7.2)")
        if fam == "mtls" and hops[i] > 0:
            needs.append(f"{hops[i]} hop(s) must forward the client certificate (RFC 9440)")
        if needs:
            parts.append("requires: " + "; ".join(needs))
        if policy[i]:
            parts.append(
                f"policy (RFC 9449 §11.2): access-token lifetime {life[i]:.0f} s > A20 "
                f"{p.nonce_lifetime_threshold_s:.0f} s, so DPoP with server nonces "
                f"({_pct(rel[i, k])} removed)"
            )
    return "model (token theft, usable share): " + "; ".join(parts)


def _compensating(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    ases: pd.DataFrame,
    residual: BoolArray,
    p: ModelParameters,
) -> pd.Categorical:
    ids = ("short_lifetime", "rt_rotation", "audience_restriction", "token_exchange", "bff")
    bits = np.zeros(len(flows), dtype=np.int64)
    for j, cid in enumerate(ids):
        c = control(cid)
        bits |= np.asarray(c.applies(flows, services, ases, p), dtype=np.int64) << j
    texts_by = [f"{control(c).label} ({control(c).source})" for c in ids]
    review = "review this accepted risk at the next access review and alert on token reuse"
    bits = np.where(residual, bits | (1 << len(ids)), 0)
    codes, uniq = pd.factorize(bits)
    texts = [
        "; ".join(
            [t for j, t in enumerate(texts_by) if int(u) >> j & 1]
            + ([review] if int(u) >> len(ids) & 1 else [])
        )
        for u in uniq
    ]
    cats = pd.Index(texts).unique()
    return pd.Categorical.from_codes(np.asarray(cats.get_indexer(texts))[codes], categories=cats)


# --------------------------------------------------------------------------- main


def recommend(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    authorization_servers: pd.DataFrame | None = None,
    deploy: pd.DataFrame | None = None,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    parameter_draws: Sequence[ModelParameters] | None = None,
    context: FlowContext | None = None,
) -> pd.DataFrame:
    """One recommendation per flow, derived from the exposure model (module docstring).

    Columns: ``flow_id, client_id, client_kind, resource_server, client_path,
    current_mechanism, recommended`` (mtls/dpop/dpop_nonce/bearer), ``model_mechanism`` (the
    mechanism id scored), ``p_deploy, exposure_current, exposure_after, exposure_removed,
    cost_usd, value_per_usd, priority`` (1 = do first; bearer rows last), ``reasons``,
    ``blockers`` (deployability reasons of the rejected families, where the flow keeps its
    mechanism), ``compensating_controls`` (bearer rows), ``robustness`` (share of ``draws``
    joint parameter draws, or of ``parameter_draws``, in which the same ``model_mechanism`` is
    chosen; NaN with ``draws=0``) and ``policy_flags`` (``;``-separated, :data:`POLICY_FLAGS`
    and ``owasp_nhi_<n>``, :data:`OWASP_NHI_TOP10`); then ``removed_share_<candidate>`` for
    mtls, dpop_shared_cache and dpop_nonce_shared_cache: the share of the flow's token-theft
    exposure each candidate would remove (negative when worse than today). With robustness
    draws, cached on disk when ``TOKENLIB_CACHE_DIR`` is set
    (:mod:`tokenlib.analysis._diskcache`); without them it is cheaper to recompute.
    ``context``: the :class:`FlowContext` of these flows the caller already built (the
    ``context=`` keyword of the model functions); today's exposures under ``params`` are then
    read from it instead of being recomputed.
    """
    p = params or ModelParameters.from_reference()
    pds = None if parameter_draws is None else list(parameter_draws)
    if context is not None and context.n != len(flows):
        raise ValueError(f"context describes {context.n} flows, flows has {len(flows)}")

    def run() -> pd.DataFrame:
        return _recommend(
            flows, services, p, authorization_servers, deploy, draws, seed, pds, context
        )

    if not pds and (pds is not None or draws <= 0):
        return run()
    # the context is derived from the other key parts, so it does not enter the key
    return cached(
        "recommend",
        run,
        key_parts=(flows, services, p, authorization_servers, deploy, draws, seed, pds),
    )


def _recommend(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    p: ModelParameters,
    authorization_servers: pd.DataFrame | None,
    deploy: pd.DataFrame | None,
    draws: int,
    seed: int,
    parameter_draws: Sequence[ModelParameters] | None,
    context: FlowContext | None = None,
) -> pd.DataFrame:
    ases = resolve_authorization_servers(flows, authorization_servers)
    n = len(flows)
    dep = (
        deploy
        if deploy is not None
        else deployability(
            flows, services, p, mechanisms=["mtls", "dpop"], authorization_servers=ases
        )
    )

    fam_rows = _family_rows(dep)

    def dcol(fam: str, name: str) -> FloatArray:
        return np.asarray(fam_rows[fam][name].to_numpy(dtype=float))

    p_dep = np.column_stack(
        [np.ones(n), dcol("mtls", "p_deploy"), dcol("dpop", "p_deploy"), dcol("dpop", "p_deploy")]
    )
    inp = _inputs(flows, services, ases, context)
    cm = _cost_model(flows, services, fam_rows)
    life = flows["access_token_lifetime_s"].to_numpy(dtype=float)
    e = _exposures(inp, p)
    cost = cm.cost(p)
    model_choice, final, policy = _choose(e, cost, p_dep, life, p)

    robustness = np.full(n, np.nan)
    ps = (
        list(parameter_draws)
        if parameter_draws is not None
        else (draw_parameters(p, n=draws, seed=seed) if draws > 0 else [])
    )
    if ps:
        same = np.zeros(n)
        for pd_ in ps:
            ed = _exposures(inp, pd_)
            _, fd, _ = _choose(ed, cm.cost(pd_), p_dep, life, pd_)
            same += fd == final
        robustness = same / len(ps)

    mech_ids = [m.id for m in MECHANISMS]
    current_code = inp.current_code
    rows = np.arange(n)
    # codes into MECHANISMS of each candidate ("keep" is today's mechanism)
    cand_mech = np.array([-1, *(mech_ids.index(c) for c in CANDIDATES[1:])], dtype=np.int64)
    model_code = np.where(final == 0, current_code, cand_mech[final])
    # what is recommended when the flow keeps today's mechanism, by today's mechanism
    kept_rec = np.array(
        [
            RECOMMENDATIONS.index(
                m.family + ("_nonce" if m.nonce else "")
                if m.family in ("mtls", "dpop")
                else "bearer"
            )
            for m in MECHANISMS
        ],
        dtype=np.int64,
    )
    cand_rec = np.array([-1, *(RECOMMENDATIONS.index(_REC_OF[c]) for c in CANDIDATES[1:])])
    rec_code = np.where(final == 0, kept_rec[current_code], cand_rec[final])
    after = e[rows, final]
    removed = e[:, 0] - after
    cost_chosen = cost[rows, final]
    p_chosen = p_dep[rows, final]
    value = np.where(
        cost_chosen > 0, p_chosen * removed / np.where(cost_chosen > 0, cost_chosen, 1.0), 0.0
    )
    residual = rec_code == RECOMMENDATIONS.index("bearer")
    order = np.lexsort((-value, residual))
    priority = np.empty(n, dtype=np.int64)
    priority[order] = np.arange(1, n + 1)
    reasons = _reasons(
        final=final,
        model_choice=model_choice,
        e=e,
        p_dep=p_dep,
        policy=policy,
        fam_rows=fam_rows,
        flows=flows,
        current_code=current_code,
        p=p,
    )
    (mc, mu), (dc, du) = (str_codes(fam_rows[fam]["reasons"]) for fam in ("mtls", "dpop"))
    # one blocker text per distinct (mTLS reasons, DPoP reasons) pair, shown for kept flows
    pair = np.where(final == 0, mc * max(len(du), 1) + dc, -1)
    pcodes, puniq = pd.factorize(pair, sort=False)
    ptexts = [
        "" if u < 0 else f"mtls: {mu[u // max(len(du), 1)]} | dpop: {du[u % max(len(du), 1)]}"
        for u in puniq
    ]
    pcats = pd.Index(sorted(set(ptexts)))
    blockers = pd.Categorical.from_codes(
        np.asarray(pcats.get_indexer(ptexts), dtype=np.int64)[pcodes], categories=pcats
    )
    feats = features(flows)
    out = pd.DataFrame(
        {
            "flow_id": flows["flow_id"].array,
            "client_id": flows["client_id"].array,
            "client_kind": flows["client_kind"].array,
            "resource_server": flows["resource_server"].array,
            "client_path": feats["client_path"].array,
            "current_mechanism": pd.Categorical.from_codes(current_code, categories=mech_ids),
            "recommended": pd.Categorical.from_codes(rec_code, categories=list(RECOMMENDATIONS)),
            "model_mechanism": pd.Categorical.from_codes(model_code, categories=mech_ids),
            "p_deploy": p_chosen,
            "exposure_current": e[:, 0],
            "exposure_after": after,
            "exposure_removed": removed,
            "cost_usd": cost_chosen,
            "value_per_usd": value,
            "priority": priority,
            "reasons": reasons,
            "blockers": blockers,
            "compensating_controls": _compensating(flows, services, ases, residual, p),
            "robustness": robustness,
            "policy_flags": _policy_flags(flows, services, ases, p),
        },
        index=flows.index,
    )
    keep = np.where(e[:, 0] > 0, e[:, 0], 1.0)
    for j, cand in enumerate(CANDIDATES[1:], start=1):
        out[f"removed_share_{cand}"] = np.where(e[:, 0] > 0, (e[:, 0] - e[:, j]) / keep, 0.0)
    out.attrs["model_choice"] = np.asarray(CANDIDATES, dtype=object)[model_choice]
    return out


def recommendation_summary(rec: pd.DataFrame) -> pd.DataFrame:
    """Counts, exposure removed and median robustness per ``client_path x recommended``."""
    total = float(rec["exposure_current"].sum())
    g = rec.groupby(["client_path", "recommended"], observed=True).agg(
        n_flows=("flow_id", "size"),
        exposure_current=("exposure_current", "sum"),
        exposure_removed=("exposure_removed", "sum"),
        cost_usd=("cost_usd", "sum"),
        median_robustness=("robustness", "median"),
    )
    g["share_of_total_removed"] = g["exposure_removed"] / total if total else 0.0
    return g.reset_index()


def export_recommendations(rec: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write recommendations as CSV for an access review, sorted by priority, atomically.

    Text cells that a spreadsheet would read as a formula are neutralised
    (:func:`tokenlib.analysis._csv.write_csv`); numbers stay numbers.
    """
    data = rec.sort_values("priority") if "priority" in rec.columns else rec
    return write_csv(data, path)
