"""Replay windows per flow x binding mechanism x theft scenario (domain brief §1.2 and §1.4).

A replay window ``W`` is the time during which a thief can use what was stolen. For every
(flow, mechanism, scenario) it is a *mixture*: with weight ``w_k`` it follows component
``k``, with the remaining weight it is 0 (replay impossible). Two component kinds cover every
cell of the brief's attacker-capability matrix:

* ``su``: ``W = c + a*V`` with ``V ~ Uniform(0, 1)``, and with probability ``rho`` capped by the
  revocation delay ``D`` (brief §1.4.1: bearer AT ``L - U`` is ``c=0, a=L``; an RT without
  rotation is ``c=L, a=A_RT`` (§1.4.2); rotation is ``c=L, a=L`` (§1.4.3, E = 1.5 L)).
* ``proof``: ``W = min(max(0, P - delta), L - U)`` with ``delta ~ Uniform(0, Delta)`` the proof
  leak delay (A8) and ``P`` the iat past tolerance or the nonce lifetime (§1.4.4).

Sender-constrained tokens are bearer-like with weight
``b = (1 - e) + e * min(1, p_key + p_inj)`` (§1.4.6; the §2.3 form ``p_key + (1-e) + p_inj``
capped at 1 is its union upper bound). ``p_key`` (A4, by key storage) counts for a copy at rest
only when the flow has a channel where a key can sit next to the token (config files, CI
secrets, crash dumps, integrator or browser storage; a log line or HAR file never holds it), never
for a capture in transit, and fully for a live client compromise.

``e`` is the probability the RS enforces ``cnf``. For the mechanism family a flow uses today it
is the inventory's ``binding_enforced`` (0 for mTLS behind a hop that drops the certificate).
For a mechanism the flow does not use yet the row describes it *as deployed*: RS upgraded and
enforcing with probability A2 (``e_rs``; RFC 9449 §7.2 downgrade otherwise), terminating hops
reconfigured to forward the certificate for mTLS (each forwarding hop adds injection risk A3);
the cost of getting there is in ``deploy.py``. Token Binding rows describe the protection *if it
were deployed* on all-passthrough paths (``e = 0`` behind any terminating hop: no TTRP
standard); ``deploy.py`` shows that it cannot be.

Closed forms give ``E[W]``, ``P(W > 0)`` and ``P(W > t)``; ``sample_windows`` draws the same
mixture with a seeded generator so tests can check one against the other.

Exposure (documented metric, unit "sensitivity-weighted replay hours")::

    exposure(f, m) = v(rs_f) * (1 + requests_per_day_f) ** A16
                     * sum_s  w_s * applies_s(f) * E[W_{f,m,s}] / 3600

``v`` = RS sensitivity 1..5, ``w_s`` = relative scenario weights A17a-f, ``applies_s`` = 1 when
the flow has a channel that makes the scenario possible (at rest: any stored-token channel; in
transit: proxy_logs or har_files; refresh-token scenarios: the flow's own refresh mode; live
compromise, key exfiltration and issuer-key compromise: always).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tokenlib.analysis._paths import (
    BoolArray,
    FloatArray,
    as_str,
    categorical,
    channel_matrix,
    features,
    is_in,
    map_values,
    require_columns,
    service_lookup,
    str_codes,
)
from tokenlib.analysis.params import ModelParameters
from tokenlib.analysis.schema import EXPOSURE_CHANNELS

__all__ = [
    "DPOP_MECHANISMS",
    "MECHANISMS",
    "SCENARIOS",
    "TOKEN_THEFT_SCENARIOS",
    "current_mechanism",
    "exposure_by_mechanism",
    "exposure_by_scenario",
    "proof_replay_window",
    "replay_by_client_path",
    "replay_windows",
    "sample_windows",
    "simulate_windows",
    "window_survival",
]

MECHANISMS = (
    "bearer",
    "mtls",
    "dpop_no_cache",
    "dpop_per_instance_cache",
    "dpop_shared_cache",
    "dpop_nonce",
    "token_binding",
)
TOKEN_THEFT_SCENARIOS = (
    "at_rest_copy",
    "in_transit_token_and_proof",
    "live_client_compromise",
    "refresh_token_theft_no_rotation",
    "refresh_token_theft_rotation",
)
SCENARIOS = (
    "at_rest_copy",
    "in_transit_token_and_proof",
    "live_client_compromise",
    "key_exfiltration",
    "refresh_token_theft_no_rotation",
    "refresh_token_theft_rotation",
    "issuer_key_compromise",
)
DPOP_MECHANISMS = MECHANISMS[2:6]
# Every channel but proxy_logs, which only ever sees a token in transit.
_AT_REST_CHANNELS = tuple(c for c in EXPOSURE_CHANNELS if c != "proxy_logs")
_IN_TRANSIT_CHANNELS = ("proxy_logs", "har_files")
# Channels where a private key can sit next to the token (a log line or HAR file never holds it).
_KEY_CHANNELS = (
    "config_files",
    "ci_secrets",
    "crash_dumps",
    "integrator_storage",
    "browser_storage",
)


@dataclass(frozen=True, slots=True)
class _Comp:
    """One mixture component over all flows (arrays broadcast to ``n``)."""

    kind: str  # "su" or "proof"
    w: FloatArray
    a: FloatArray  # su: spread; proof: P (tolerance)
    b: FloatArray  # su: shift c; proof: Delta (leak delay bound)
    rho: FloatArray  # su: revocation probability; proof: L (AT lifetime cap)
    d: float  # su: revocation delay


@dataclass(frozen=True, slots=True)
class _Ctx:
    """Per-flow arrays the formulas need, computed once."""

    n: int
    L: FloatArray
    rho: FloatArray
    rho_rt: float
    D: float
    A_rt: FloatArray
    has_rt: BoolArray
    rotating: BoolArray
    public: BoolArray
    browser: BoolArray
    client_credentials: BoolArray
    p_key: FloatArray
    coresident: BoolArray
    p_key_tb: FloatArray
    p_inj_path: FloatArray
    n_tnf: FloatArray
    n_term: FloatArray
    instances: FloatArray
    iat_past: FloatArray
    cert_life: FloatArray
    sup_mtls: BoolArray
    sup_dpop: BoolArray
    binding: np.ndarray
    enforced: BoolArray
    sensitivity: FloatArray
    rpd: FloatArray
    client_path: np.ndarray
    at_rest: BoolArray
    in_transit: BoolArray
    current: np.ndarray
    current_code: np.ndarray
    params: ModelParameters


def current_mechanism(flows: pd.DataFrame, services: pd.DataFrame) -> pd.Series:
    """The mechanism (one of ``MECHANISMS``) each flow uses today.

    ``binding`` bearer/mtls map directly; a DPoP flow maps by its RS: ``requires_nonce`` ->
    ``dpop_nonce``, else ``jti_cache`` shared/per_instance/none -> the cache variant.
    """
    pos, svc = service_lookup(flows, services)
    out = _current_array(flows, pos, svc)
    return pd.Series(categorical(out, MECHANISMS), index=flows.index, name="mechanism")


def _current_codes(flows: pd.DataFrame, pos: np.ndarray, svc: pd.DataFrame) -> np.ndarray:
    """Index into ``MECHANISMS`` of each flow's mechanism today."""
    cache = np.asarray(as_str(svc["jti_cache"]))[pos]
    nonce = svc["requires_nonce"].to_numpy(dtype=bool)[pos]
    dpop = np.where(
        nonce,
        MECHANISMS.index("dpop_nonce"),
        np.where(
            cache == "shared",
            MECHANISMS.index("dpop_shared_cache"),
            np.where(
                cache == "per_instance",
                MECHANISMS.index("dpop_per_instance_cache"),
                MECHANISMS.index("dpop_no_cache"),
            ),
        ),
    )
    return np.asarray(
        np.where(
            is_in(flows["binding"], "dpop"),
            dpop,
            np.where(is_in(flows["binding"], "mtls"), MECHANISMS.index("mtls"), 0),
        ),
        dtype=np.int64,
    )


def _current_array(flows: pd.DataFrame, pos: np.ndarray, svc: pd.DataFrame) -> np.ndarray:
    return np.asarray(np.array(MECHANISMS, dtype=object)[_current_codes(flows, pos, svc)])


def _context(flows: pd.DataFrame, services: pd.DataFrame, params: ModelParameters) -> _Ctx:
    require_columns(flows, services)
    p = params
    n = len(flows)
    pos, svc = service_lookup(flows, services)
    feats = features(flows)
    browser = is_in(flows["client_kind"], "browser_spa")
    mobile = is_in(flows["client_kind"], "mobile_app")
    # A key the client would hold under a new mechanism: keep today's storage, or the platform
    # default for clients that hold none yet (browser: WebCrypto non-extractable, mobile: keystore).
    pk_map = {
        s: p.p_key_for(s)
        for s in ("software", "webcrypto_non_extractable", "platform_keystore", "hsm_tpm")
    }
    p_key = map_values(flows["key_storage"], pk_map, np.nan)
    default_pk = np.where(
        browser, p.p_key_non_extractable, np.where(mobile, p.p_key_platform, p.p_key_software)
    )
    p_key = np.where(np.isnan(p_key), default_pk, p_key)
    p_key_tb = np.where(browser, p.p_key_non_extractable, p_key)
    n_fc = feats["n_forward_cert"].to_numpy(dtype=float)
    rt_life = flows["refresh_token_lifetime_s"].to_numpy(dtype=float)
    has_rt = ~is_in(flows["refresh_token"], "none")
    introspects = flows["rs_introspects"].to_numpy(dtype=bool) | is_in(
        flows["token_format"], "opaque"
    )
    # A new mTLS deployment is assumed to come with automated issuance (cert_management none).
    cert_life = map_values(
        flows["cert_management"],
        {
            "spiffe": p.cert_lifetime_spiffe_s,
            "automated_pki": p.cert_lifetime_automated_s,
            "none": p.cert_lifetime_automated_s,
        },
        p.cert_lifetime_manual_s,
    )
    chans = channel_matrix(flows)
    at_rest = np.zeros(n, dtype=bool)
    for c in _AT_REST_CHANNELS:
        at_rest |= chans[c]
    in_transit = np.zeros(n, dtype=bool)
    for c in _IN_TRANSIT_CHANNELS:
        in_transit |= chans[c]
    coresident = np.zeros(n, dtype=bool)
    for c in _KEY_CHANNELS:
        coresident |= chans[c]
    iat_past = svc["iat_past_s"].to_numpy(dtype=float)[pos]
    iat_past = np.where(np.isfinite(iat_past) & (iat_past > 0), iat_past, p.dpop_iat_past_default_s)
    current_code = _current_codes(flows, pos, svc)
    current = np.asarray(np.array(MECHANISMS, dtype=object)[current_code])
    return _Ctx(
        n=n,
        L=flows["access_token_lifetime_s"].to_numpy(dtype=float),
        rho=np.where(introspects, p.rho_introspection, p.rho_jwt),
        rho_rt=p.rho_introspection,
        D=p.revocation_delay_s,
        A_rt=np.where(has_rt & (rt_life <= 0), p.rt_absolute_default_s, rt_life),
        has_rt=has_rt,
        rotating=is_in(flows["refresh_token"], "rotating"),
        public=is_in(flows["client_type"], "public"),
        browser=browser,
        client_credentials=is_in(flows["grant_type"], "client_credentials"),
        p_key=p_key,
        coresident=coresident,
        p_key_tb=p_key_tb,
        p_inj_path=np.where(
            is_in(flows["binding"], "mtls"),
            1.0 - (1.0 - p.p_inj) ** n_fc,
            1.0 - (1.0 - p.p_inj) ** (n_fc + feats["n_terminate_no_forward"].to_numpy(dtype=float)),
        ),
        n_tnf=feats["n_terminate_no_forward"].to_numpy(dtype=float),
        n_term=feats["n_terminating"].to_numpy(dtype=float),
        instances=svc["instances"].to_numpy(dtype=float)[pos],
        iat_past=iat_past,
        cert_life=cert_life,
        sup_mtls=svc["supports_mtls"].to_numpy(dtype=bool)[pos],
        sup_dpop=svc["supports_dpop"].to_numpy(dtype=bool)[pos],
        binding=np.where(
            is_in(flows["binding"], "mtls"), 1, np.where(is_in(flows["binding"], "dpop"), 2, 0)
        ),
        enforced=flows["binding_enforced"].to_numpy(dtype=bool),
        sensitivity=svc["sensitivity"].to_numpy(dtype=float)[pos],
        rpd=flows["requests_per_day"].to_numpy(dtype=float),
        client_path=as_str(feats["client_path"]),
        at_rest=at_rest,
        in_transit=in_transit,
        current=current,
        current_code=current_code,
        params=p,
    )


def _enforcement(ctx: _Ctx, mech: str) -> FloatArray:
    """Probability ``e`` that the flow's RS enforces the binding of ``mech``.

    Today's mechanism family: the inventory's ``binding_enforced`` (0 for mTLS behind a hop that
    drops the certificate). A mechanism the flow would adopt: A2 (``e_rs``), the RS being
    upgraded and, for mTLS, terminating hops reconfigured to forward the certificate as
    ``deploy.deployability`` plans; Token Binding only on all-passthrough paths (no TTRP).
    """
    e = np.full(ctx.n, ctx.params.e_rs)
    if mech == "mtls":
        same = ctx.binding == 1
        observed = np.where(ctx.n_tnf == 0, ctx.enforced.astype(float), 0.0)
    elif mech in DPOP_MECHANISMS:
        same = ctx.binding == 2
        observed = ctx.enforced.astype(float)
    elif mech == "token_binding":
        return np.asarray(np.where(ctx.n_term == 0, e, 0.0))
    else:
        return np.zeros(ctx.n)
    return np.asarray(np.where(same, observed, e))


def _key_term(ctx: _Ctx, mech: str, theft: str) -> FloatArray:
    """Probability the thief also holds the key (plus, for mTLS, can inject a certificate).

    ``theft``: ``at_rest`` (A4 where a key-bearing channel exists, else 0), ``in_transit``
    (never: a key does not cross the wire) or ``live`` (A4: the thief runs on the client).
    """
    pk = ctx.p_key_tb if mech == "token_binding" else ctx.p_key
    if theft == "at_rest":
        pk = pk * ctx.coresident
    elif theft == "in_transit":
        pk = np.zeros(ctx.n)
    if mech == "mtls":
        return np.asarray(np.minimum(1.0, pk + ctx.p_inj_path))
    return np.asarray(pk)


def _bypass(ctx: _Ctx, mech: str, theft: str = "at_rest") -> FloatArray:
    """Weight with which the token alone (or with the key) works like a bearer token."""
    if mech == "bearer":
        return np.ones(ctx.n)
    e = _enforcement(ctx, mech)
    k = _key_term(ctx, mech, theft)
    return np.asarray(np.minimum(1.0, (1.0 - e) + e * np.minimum(1.0, k)))


def _su(
    w: FloatArray | float,
    c: FloatArray | float,
    a: FloatArray | float,
    rho: FloatArray | float,
    d: float,
    n: int,
) -> _Comp:
    f = np.broadcast_to
    return _Comp(
        "su",
        np.asarray(f(np.asarray(w, dtype=float), (n,))),
        np.asarray(f(np.asarray(a, dtype=float), (n,))),
        np.asarray(f(np.asarray(c, dtype=float), (n,))),
        np.asarray(f(np.asarray(rho, dtype=float), (n,))),
        d,
    )


def _proof(
    w: FloatArray | float, P: FloatArray | float, delta: FloatArray | float, L: FloatArray, n: int
) -> _Comp:
    f = np.broadcast_to
    return _Comp(
        "proof",
        np.asarray(f(np.asarray(w, dtype=float), (n,))),
        np.asarray(f(np.asarray(P, dtype=float), (n,))),
        np.asarray(f(np.asarray(delta, dtype=float), (n,))),
        np.asarray(L, dtype=float),
        0.0,
    )


def _proof_kappa(ctx: _Ctx, mech: str) -> FloatArray:
    """Probability that a captured proof can be replayed at least once (jti cache variants)."""
    pf = ctx.params.p_attacker_first
    if mech == "dpop_no_cache":
        return np.ones(ctx.n)
    if mech == "dpop_per_instance_cache":
        return np.where(ctx.instances > 1, 1.0, pf)
    return np.full(ctx.n, pf)


def max_proof_replays(ctx: _Ctx, mech: str) -> FloatArray:
    """Upper bound on replays of one captured proof (brief §1.4.4); NaN for non-DPoP."""
    if mech == "dpop_no_cache":
        return np.full(ctx.n, np.inf)
    if mech == "dpop_per_instance_cache":
        return np.asarray(np.maximum(ctx.instances - 1.0, 1.0))
    if mech in ("dpop_shared_cache", "dpop_nonce"):
        return np.ones(ctx.n)
    return np.full(ctx.n, np.nan)


def _components(ctx: _Ctx, mech: str, scen: str) -> list[_Comp]:
    if mech not in MECHANISMS:
        raise ValueError(f"unknown mechanism {mech!r}; expected one of {MECHANISMS}")
    if scen not in SCENARIOS:
        raise ValueError(f"unknown scenario {scen!r}; expected one of {SCENARIOS}")
    p, n, L = ctx.params, ctx.n, ctx.L
    D = ctx.D
    by = _bypass(ctx, mech, "at_rest")
    is_dpop = mech in DPOP_MECHANISMS

    def at(w: FloatArray | float) -> _Comp:
        return _su(w, 0.0, L, ctx.rho, D, n)

    if scen == "at_rest_copy":
        return [at(by)]
    if scen == "in_transit_token_and_proof":
        by = _bypass(ctx, mech, "in_transit")
        comps = [at(by)]
        if is_dpop:
            tol = np.full(n, p.nonce_lifetime_s) if mech == "dpop_nonce" else ctx.iat_past
            comps.append(
                _proof((1 - by) * _proof_kappa(ctx, mech), tol, p.proof_leak_delay_max_s, L, n)
            )
        return comps
    if scen == "live_client_compromise":
        by = _bypass(ctx, mech, "live")
        nf = np.where(ctx.browser, p.p_new_flow, 0.0)
        comps = [_su(nf, 0.0, p.as_session_max_s, 0.0, D, n)]
        if mech == "bearer" or mech in DPOP_MECHANISMS[:3]:
            # Bearer: read the token. DPoP without nonces: pre-generate proofs up to exp (§11.2).
            comps.append(at(1 - nf))
        elif mech == "dpop_nonce":
            comps.append(at((1 - nf) * by))
            tn = p.nonce_lifetime_s
            comps.append(_proof((1 - nf) * (1 - by), tn, tn, L, n))
        else:  # mtls, token_binding: usable offline only if the key left or the RS ignores cnf
            comps.append(at((1 - nf) * by))
        return comps
    if scen == "key_exfiltration":
        # The client's key store is copied: token, refresh token, private key and client
        # credentials. With client_credentials an mTLS certificate *is* the client credential:
        # new tokens until it expires (capped by D); a client secret never expires (window D).
        # Otherwise the refresh token (if any) is usable, else the access token.
        cc = ctx.client_credentials.astype(float)
        rtw = (1.0 - cc) * ctx.has_rt
        comps = [_su(rtw, L, ctx.A_rt, ctx.rho_rt, D, n), at((1.0 - cc) * ~ctx.has_rt)]
        if mech == "mtls":
            comps.append(_su(cc, L, ctx.cert_life, 1.0, D, n))
        else:
            comps.append(_su(cc, D, 0.0, 0.0, D, n))
        return comps
    if scen.startswith("refresh_token_theft"):
        # Confidential clients: the RT needs the client credentials (A13) whatever the binding
        # (RFC 9449 §5, RFC 8705 §7.1). Public clients: bearer RTs are usable as they are, bound
        # ones only with the key (A4).
        if mech == "bearer":
            use = np.where(ctx.public, 1.0, p.p_client_cred)
        elif mech == "token_binding":
            use = np.where(ctx.public, ctx.p_key_tb, p.p_client_cred)
        else:
            use = np.where(ctx.public, ctx.p_key, p.p_client_cred)
        use = np.where(ctx.has_rt, use, 0.0)
        if scen == "refresh_token_theft_no_rotation":
            return [_su(use, L, ctx.A_rt, ctx.rho_rt, D, n)]
        return [
            _su(use * (1 - p.pi_persist), L, L, ctx.rho_rt, D, n),
            _su(use * p.pi_persist, L, ctx.A_rt, ctx.rho_rt, D, n),
        ]
    # issuer_key_compromise: the forger mints its own cnf; no binding helps.
    return [_su(1.0, p.issuer_key_window_s, 0.0, 0.0, D, n)]


# ---- closed forms ---------------------------------------------------------------------


def _su_mean(c: FloatArray, a: FloatArray, rho: FloatArray, d: float) -> FloatArray:
    plain = c + a / 2.0
    x = d - c
    safe_a = np.where(a > 0, a, 1.0)
    capped = np.where(x <= 0, d, np.where(x >= a, plain, c + x - x * x / (2.0 * safe_a)))
    return (1.0 - rho) * plain + rho * capped


def _g_int(x: FloatArray, L: FloatArray) -> FloatArray:
    """Antiderivative of g(x) = E[min(x, Uniform(0, L))]."""
    Ls = np.where(L > 0, L, 1.0)
    below = x * x / 2.0 - x**3 / (6.0 * Ls)
    above = Ls * Ls / 3.0 + (x - Ls) * Ls / 2.0
    return np.where(x <= Ls, below, above)


def _g(x: FloatArray, L: FloatArray) -> FloatArray:
    Ls = np.where(L > 0, L, 1.0)
    return np.where(x <= Ls, x - x * x / (2.0 * Ls), Ls / 2.0)


def _proof_mean(P: FloatArray, delta: FloatArray, L: FloatArray) -> FloatArray:
    lo = np.maximum(0.0, P - delta)
    safe = np.where(delta > 0, delta, 1.0)
    mean = np.where(delta > 0, (_g_int(P, L) - _g_int(lo, L)) / safe, _g(P, L))
    return np.where(L > 0, mean, 0.0)


def proof_replay_window(
    tolerance_s: float | FloatArray,
    leak_delay_max_s: float | FloatArray,
    lifetime_s: float | FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Closed form for one captured DPoP proof (brief §1.4.4), no jti cache.

    ``W = min(max(0, P - delta), L - U)`` with ``delta ~ U(0, leak_delay_max_s)`` and
    ``U ~ U(0, L)``. Returns ``(E[W], P(W > 0))``; e.g. Keycloak ``P = 25 s`` bounds W by 25 s.
    """
    P = np.atleast_1d(np.asarray(tolerance_s, dtype=float))
    dl = np.atleast_1d(np.asarray(leak_delay_max_s, dtype=float))
    L = np.atleast_1d(np.asarray(lifetime_s, dtype=float))
    P, dl, L = np.broadcast_arrays(P, dl, L)
    cp = _Comp("proof", np.ones(P.shape), P, dl, L, 0.0)
    return _comp_mean(cp), _comp_p_pos(cp)


def _comp_mean(cp: _Comp) -> FloatArray:
    if cp.kind == "su":
        return _su_mean(cp.b, cp.a, cp.rho, cp.d)
    return _proof_mean(cp.a, cp.b, cp.rho)


def _comp_p_pos(cp: _Comp) -> FloatArray:
    if cp.kind == "su":
        return ((cp.b > 0) | (cp.a > 0)).astype(float) * (1.0 if cp.d > 0 else 0.0)
    safe = np.where(cp.b > 0, cp.b, 1.0)
    px = np.where(cp.b > 0, np.clip(cp.a / safe, 0.0, 1.0), (cp.a > 0).astype(float))
    return px * (cp.rho > 0)


def _comp_surv(cp: _Comp, t: FloatArray) -> FloatArray:
    """P(W_k > t); ``t`` broadcasts against the flow axis (shape (n,) or (n, m))."""
    if cp.kind == "su":
        c, a = cp.b[:, None], cp.a[:, None]
        safe = np.where(a > 0, a, 1.0)
        base = np.where(t < c, 1.0, np.where(a > 0, np.clip(1.0 - (t - c) / safe, 0.0, 1.0), 0.0))
        rho = cp.rho[:, None]
        return base * ((1.0 - rho) + rho * (t < cp.d))
    P, dl, L = cp.a[:, None], cp.b[:, None], cp.rho[:, None]
    safe = np.where(dl > 0, dl, 1.0)
    px = np.where(dl > 0, np.clip((P - t) / safe, 0.0, 1.0), (t < P).astype(float))
    sL = np.where(L > 0, L, 1.0)
    return px * np.clip(1.0 - t / sL, 0.0, 1.0) * (L > 0)


def _mixture_stats(comps: Sequence[_Comp]) -> tuple[FloatArray, FloatArray]:
    mean = np.zeros_like(comps[0].w)
    ppos = np.zeros_like(comps[0].w)
    for cp in comps:
        mean += cp.w * _comp_mean(cp)
        ppos += cp.w * _comp_p_pos(cp)
    return mean, np.clip(ppos, 0.0, 1.0)


def _mixture_surv(comps: Sequence[_Comp], t: FloatArray) -> FloatArray:
    out = np.zeros(np.broadcast_shapes((comps[0].w.shape[0], 1), np.shape(t)))
    for cp in comps:
        out += cp.w[:, None] * _comp_surv(cp, t)
    return out


def _upper(comps: Sequence[_Comp]) -> FloatArray:
    hi = np.zeros_like(comps[0].w)
    for cp in comps:
        hi = np.maximum(hi, cp.b + cp.a if cp.kind == "su" else cp.a)
    return hi


def _conditional_quantiles(
    comps: Sequence[_Comp], ppos: FloatArray, qs: Sequence[float]
) -> list[FloatArray]:
    """Quantiles of W given W > 0, by vectorised bisection on the closed-form survival."""
    out = []
    hi0 = _upper(comps) + 1.0
    for q in qs:
        target = ppos * (1.0 - q)
        lo, hi = np.zeros_like(hi0), hi0.copy()
        for _ in range(48):
            mid = (lo + hi) / 2.0
            s = _mixture_surv(comps, mid[:, None])[:, 0]
            above = s > target
            lo = np.where(above, mid, lo)
            hi = np.where(above, hi, mid)
        out.append(np.where(ppos > 0, hi, 0.0))
    return out


def _check_frames(flows: pd.DataFrame, services: pd.DataFrame) -> None:
    require_columns(flows, services)


def replay_windows(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanisms: Iterable[str] = MECHANISMS,
    scenarios: Iterable[str] = SCENARIOS,
    quantiles: bool = True,
) -> pd.DataFrame:
    """Tidy long table: one row per flow x mechanism x scenario.

    Columns: ``flow_id, client_path, current_mechanism, mechanism, scenario, possible,
    p_replay, expected_window_s`` (unconditional, zeros included),
    ``expected_window_if_possible_s``,
    ``p50_s``/``p90_s`` (quantiles given replay is possible; NaN when ``quantiles=False``) and
    ``max_proof_replays`` (per captured DPoP proof: inf without cache, N-1 per-instance, 1
    shared/nonce; NaN for other mechanisms).
    """
    _check_frames(flows, services)
    params = params or ModelParameters.from_reference()
    ctx = _context(flows, services, params)
    mechs, scens = list(mechanisms), list(scenarios)
    cells = [(m, sc) for m in mechs for sc in scens]
    k, n = len(cells), ctx.n
    names = [
        "p_replay",
        "expected_window_s",
        "expected_window_if_possible_s",
        "p50_s",
        "p90_s",
        "max_proof_replays",
    ]
    block = np.empty((k * n, len(names)), order="F")
    mech_codes = np.empty(k, dtype=np.int64)
    scen_codes = np.empty(k, dtype=np.int64)
    for i, (mech, scen) in enumerate(cells):
        comps = _components(ctx, mech, scen)
        mean, ppos = _mixture_stats(comps)
        rows = slice(i * n, (i + 1) * n)
        block[rows, 0] = ppos
        block[rows, 1] = mean
        block[rows, 2] = np.divide(mean, ppos, out=np.zeros(n), where=ppos > 0)
        if quantiles:
            p50, p90 = _conditional_quantiles(comps, ppos, (0.5, 0.9))
            block[rows, 3] = p50
            block[rows, 4] = p90
        else:
            block[rows, 3:5] = np.nan
        block[rows, 5] = max_proof_replays(ctx, mech)
        mech_codes[i] = MECHANISMS.index(mech)
        scen_codes[i] = SCENARIOS.index(scen)
    fcodes, fids = str_codes(flows["flow_id"])
    pcodes, puniq = str_codes(ctx.client_path)
    i8 = np.int8
    out = pd.DataFrame(block, columns=names, copy=False)
    out.insert(0, "possible", block[:, 0] > 0)
    cat = pd.Categorical.from_codes
    out.insert(0, "scenario", cat(np.repeat(scen_codes.astype(i8), n), categories=list(SCENARIOS)))
    out.insert(
        0, "mechanism", cat(np.repeat(mech_codes.astype(i8), n), categories=list(MECHANISMS))
    )
    out.insert(
        0,
        "current_mechanism",
        cat(np.tile(ctx.current_code.astype(i8), k), categories=list(MECHANISMS)),
    )
    out.insert(
        0,
        "client_path",
        cat(np.tile(pcodes.astype(i8), k), categories=pd.Index(puniq, dtype=object)),
    )
    fdt = np.int32 if len(fids) < 2**31 - 1 else np.int64
    out.insert(
        0, "flow_id", cat(np.tile(fcodes.astype(fdt), k), categories=pd.Index(fids, dtype=object))
    )
    return out


def sample_windows(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanism: str,
    scenario: str,
    n: int = 10_000,
    seed: int = 0,
) -> FloatArray:
    """Seeded Monte Carlo draws of ``W`` (seconds), shape ``(len(flows), n)``."""
    params = params or ModelParameters.from_reference()
    ctx = _context(flows, services, params)
    comps = _components(ctx, mechanism, scenario)
    rng = np.random.default_rng(seed)
    nf = ctx.n
    pick = rng.random((nf, n))
    cum = np.zeros(nf)
    out = np.zeros((nf, n))
    for cp in comps:
        lo, cum = cum, cum + cp.w
        sel = (pick >= lo[:, None]) & (pick < cum[:, None])
        u1 = rng.random((nf, n))
        u2 = rng.random((nf, n))
        if cp.kind == "su":
            w = cp.b[:, None] + cp.a[:, None] * u1
            revoked = u2 < cp.rho[:, None]
            w = np.where(revoked, np.minimum(w, cp.d), w)
            w = w if cp.d > 0 else np.zeros_like(w)
        else:
            x = np.maximum(0.0, cp.a[:, None] - cp.b[:, None] * u1)
            w = np.minimum(x, cp.rho[:, None] * u2)
        out = np.where(sel, w, out)
    return out


def _row_conditional_quantiles(s: FloatArray, qs: Sequence[float]) -> FloatArray:
    """Per-row quantiles of the positive draws (NaN for rows without any)."""
    srt = np.sort(s, axis=1)
    m = s.shape[1]
    k = (srt <= 0).sum(axis=1)
    out = np.full((len(qs), s.shape[0]), np.nan)
    has = k < m
    for i, q in enumerate(qs):
        idx = np.clip(np.floor(k + q * (m - k - 1)).astype(np.int64), 0, m - 1)
        vals = np.take_along_axis(srt, idx[:, None], axis=1)[:, 0]
        out[i] = np.where(has, vals, np.nan)
    return out


def simulate_windows(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanism: str,
    scenario: str,
    n: int = 10_000,
    seed: int = 0,
    chunk: int = 2_000_000,
) -> pd.DataFrame:
    """Monte Carlo summary per flow next to the closed form (for checking and for plots).

    Columns: ``flow_id, mc_mean_s, mc_p_replay, mc_p50_s, mc_p90_s`` (quantiles given W > 0),
    ``expected_window_s, p_replay`` (closed form). Flows are processed in chunks so memory
    stays near ``chunk`` draws.
    """
    params = params or ModelParameters.from_reference()
    step = max(1, chunk // max(n, 1))
    rows = []
    for start in range(0, len(flows), step):
        sub = flows.iloc[start : start + step]
        s = sample_windows(
            sub, services, params, mechanism=mechanism, scenario=scenario, n=n, seed=seed + start
        )
        pos = s > 0
        q = _row_conditional_quantiles(s, (0.5, 0.9))
        ctx = _context(sub, services, params)
        mean, ppos = _mixture_stats(_components(ctx, mechanism, scenario))
        rows.append(
            pd.DataFrame(
                {
                    "flow_id": sub["flow_id"].array,
                    "mc_mean_s": s.mean(axis=1),
                    "mc_p_replay": pos.mean(axis=1),
                    "mc_p50_s": q[0],
                    "mc_p90_s": q[1],
                    "expected_window_s": mean,
                    "p_replay": ppos,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def window_survival(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    scenario: str = "at_rest_copy",
    mechanisms: Iterable[str] = MECHANISMS,
    t: Sequence[float] | FloatArray | None = None,
    by: str | None = "client_path",
) -> pd.DataFrame:
    """Mean survival curve ``P(W > t)`` over the flows of each group (closed form).

    Returns long rows ``group, mechanism, t_s, survival`` (``group`` = "all" when ``by`` is None;
    ``by`` may be ``client_path`` or any flows column). Default ``t`` is log-spaced 1 s-30 d.
    """
    params = params or ModelParameters.from_reference()
    ctx = _context(flows, services, params)
    tt = np.asarray(t if t is not None else np.logspace(0, np.log10(30 * 86400), 60), dtype=float)
    if by is None:
        groups = np.full(ctx.n, "all", dtype=object)
    elif by == "client_path":
        groups = ctx.client_path
    else:
        groups = as_str(flows[by])
    codes, uniq = pd.factorize(np.asarray(groups, dtype=object), sort=True)
    codes = np.asarray(codes, dtype=np.int64)
    counts = np.bincount(codes, minlength=len(uniq)).astype(float)
    rows = []
    for mech in mechanisms:
        comps = _components(ctx, mech, scenario)
        # Flows with identical component parameters share one survival evaluation.
        cols = [codes.astype(float)]
        for c in comps:
            cols += [c.w, c.a, c.b, c.rho]
        frame = pd.DataFrame(np.column_stack(cols))
        inv = frame.groupby(list(frame.columns), sort=False).ngroup().to_numpy()
        first = np.unique(inv, return_index=True)[1]
        weight = np.bincount(inv).astype(float)
        sub = [_Comp(c.kind, c.w[first], c.a[first], c.b[first], c.rho[first], c.d) for c in comps]
        acc = np.zeros((len(uniq), len(tt)))
        for start in range(0, len(first), 50_000):
            sl = slice(start, start + 50_000)
            part = [_Comp(c.kind, c.w[sl], c.a[sl], c.b[sl], c.rho[sl], c.d) for c in sub]
            surv = _mixture_surv(part, tt[None, :])
            g = codes[first[sl]]
            ind = sp.csr_matrix((weight[sl], (g, np.arange(len(g)))), shape=(len(uniq), len(g)))
            acc += ind @ surv
        acc /= counts[:, None]
        for gi, g_name in enumerate(uniq):
            rows.append(
                pd.DataFrame({"group": g_name, "mechanism": mech, "t_s": tt, "survival": acc[gi]})
            )
    return pd.concat(rows, ignore_index=True)


def _scenario_weights(ctx: _Ctx) -> dict[str, FloatArray]:
    p = ctx.params
    ones = np.ones(ctx.n)
    return {
        "at_rest_copy": p.w_at_rest_copy * ctx.at_rest,
        "in_transit_token_and_proof": p.w_in_transit_token_and_proof * ctx.in_transit,
        "live_client_compromise": p.w_live_client_compromise * ones,
        "key_exfiltration": p.w_key_exfiltration * ones,
        "refresh_token_theft_no_rotation": p.w_refresh_token_theft * (ctx.has_rt & ~ctx.rotating),
        "refresh_token_theft_rotation": p.w_refresh_token_theft * ctx.rotating,
        "issuer_key_compromise": p.w_issuer_key_compromise * ones,
    }


def _canonical(mech: str, scen: str) -> str:
    """Mechanisms whose mixture is identical for a scenario share one evaluation."""
    if mech in DPOP_MECHANISMS and scen != "in_transit_token_and_proof":
        if scen == "live_client_compromise":
            return "dpop_nonce" if mech == "dpop_nonce" else "dpop_no_cache"
        return "dpop_no_cache"
    return mech


def _exposures(
    ctx: _Ctx, mechs: Sequence[str], weights: dict[str, FloatArray]
) -> tuple[dict[str, FloatArray], dict[str, FloatArray]]:
    """(total, token-theft-only) exposure per mechanism, sharing identical evaluations."""
    scale = ctx.sensitivity * (1.0 + ctx.rpd) ** ctx.params.traffic_exponent / 3600.0
    cache: dict[tuple[str, str], FloatArray] = {}
    total: dict[str, FloatArray] = {}
    theft: dict[str, FloatArray] = {}
    for mech in mechs:
        t_all = np.zeros(ctx.n)
        t_theft = np.zeros(ctx.n)
        for scen, w in weights.items():
            if not np.any(w):
                continue
            key = (_canonical(mech, scen), scen)
            if key not in cache:
                cache[key] = w * _mixture_stats(_components(ctx, key[0], scen))[0]
            t_all += cache[key]
            if scen in TOKEN_THEFT_SCENARIOS:
                t_theft += cache[key]
        total[mech] = t_all * scale
        theft[mech] = t_theft * scale
    return total, theft


def exposure_by_mechanism(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanisms: Iterable[str] = MECHANISMS,
    scenarios: Iterable[str] | None = None,
    theft_columns: bool = False,
) -> pd.DataFrame:
    """Replay exposure per flow today and under each mechanism (see the module docstring).

    Columns: ``flow_id, client_path, current_mechanism, exposure_current`` and one
    ``exposure_<mechanism>`` column per mechanism (same index as ``flows``). ``scenarios``
    restricts the sum to some theft scenarios (default: all, with weights A17a-f).
    ``theft_columns=True`` adds ``theft_exposure_current`` and ``theft_exposure_<mechanism>``:
    the part from ``TOKEN_THEFT_SCENARIOS`` (what a binding can address).
    """
    _check_frames(flows, services)
    params = params or ModelParameters.from_reference()
    ctx = _context(flows, services, params)
    weights = _scenario_weights(ctx)
    if scenarios is not None:
        keep = set(scenarios)
        unknown = keep - set(SCENARIOS)
        if unknown:
            raise ValueError(f"unknown scenario(s) {sorted(unknown)}; expected {SCENARIOS}")
        weights = {k: v for k, v in weights.items() if k in keep}
    mechs = list(mechanisms)
    for m in mechs:
        if m not in MECHANISMS:
            raise ValueError(f"unknown mechanism {m!r}; expected one of {MECHANISMS}")
    cur_codes = ctx.current_code
    present = [
        MECHANISMS[i] for i in np.flatnonzero(np.bincount(cur_codes, minlength=len(MECHANISMS)))
    ]
    needed = list(dict.fromkeys([*mechs, *present]))
    total, theft = _exposures(ctx, needed, weights)
    cur = np.zeros(ctx.n)
    cur_theft = np.zeros(ctx.n)
    for m in present:
        sel = cur_codes == MECHANISMS.index(m)
        cur[sel] = total[m][sel]
        cur_theft[sel] = theft[m][sel]
    data: dict[str, object] = {
        "flow_id": flows["flow_id"].array,
        "client_path": categorical(ctx.client_path),
        "current_mechanism": pd.Categorical.from_codes(cur_codes, categories=list(MECHANISMS)),
        "exposure_current": cur,
    }
    for m in mechs:
        data[f"exposure_{m}"] = total[m]
    if theft_columns:
        data["theft_exposure_current"] = cur_theft
        for m in mechs:
            data[f"theft_exposure_{m}"] = theft[m]
    return pd.DataFrame(data, index=flows.index)


def replay_by_client_path(windows: pd.DataFrame) -> pd.DataFrame:
    """Map replay exposure by client path (the article's advice) from ``replay_windows`` output.

    One row per ``client_path x mechanism x scenario`` with ``n_flows``, ``share_possible``,
    ``mean_p_replay``, ``mean_window_s``, ``median_window_s``, ``p90_window_s`` (over flows of
    the unconditional expected window) and ``is_current_share`` (share of flows using it today).
    """
    cp = windows["client_path"]
    cp = cp if isinstance(cp.dtype, pd.CategoricalDtype) else cp.astype("category")

    def codes_of(col: str, cats: tuple[str, ...]) -> np.ndarray:
        c = windows[col]
        if isinstance(c.dtype, pd.CategoricalDtype) and tuple(c.cat.categories) == cats:
            return np.asarray(c.cat.codes)
        return np.asarray(pd.Categorical(c, categories=list(cats)).codes)

    c_m = codes_of("mechanism", MECHANISMS)
    c_s = codes_of("scenario", SCENARIOS)
    c_cur = codes_of("current_mechanism", MECHANISMS)
    nkey = len(cp.cat.categories) * len(MECHANISMS) * len(SCENARIOS)
    kt = np.int16 if nkey < 32_000 else np.int32
    key = (np.asarray(cp.cat.codes).astype(kt) * len(MECHANISMS) + c_m) * len(SCENARIOS) + c_s
    key = key.astype(kt, copy=False)
    order = np.argsort(key, kind="stable")  # radix sort on small integers
    ks = key[order]
    vals = windows["expected_window_s"].to_numpy(dtype=float)[order]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    ends = np.r_[starts[1:], len(ks)]
    counts = np.bincount(key, minlength=nkey).astype(float)

    def mean_of(x: np.ndarray) -> np.ndarray:
        return np.asarray(
            np.bincount(key, weights=x.astype(float), minlength=nkey) / np.maximum(counts, 1)
        )

    m_poss = mean_of(windows["possible"].to_numpy(dtype=bool))
    m_p = mean_of(windows["p_replay"].to_numpy(dtype=float))
    m_w = mean_of(windows["expected_window_s"].to_numpy(dtype=float))
    m_cur = mean_of(c_m == c_cur)
    rows = []
    cats = list(cp.cat.categories)
    for a, b in zip(starts, ends, strict=True):
        k = int(ks[a])
        q50, q90 = np.quantile(vals[a:b], [0.5, 0.9])
        rest, si = divmod(k, len(SCENARIOS))
        ci, mi = divmod(rest, len(MECHANISMS))
        rows.append(
            (
                cats[ci],
                MECHANISMS[mi],
                SCENARIOS[si],
                int(counts[k]),
                m_poss[k],
                m_p[k],
                m_w[k],
                q50,
                q90,
                m_cur[k],
            )
        )
    out = pd.DataFrame(
        rows,
        columns=[
            "client_path",
            "mechanism",
            "scenario",
            "n_flows",
            "share_possible",
            "mean_p_replay",
            "mean_window_s",
            "median_window_s",
            "p90_window_s",
            "is_current_share",
        ],
    )
    out["mechanism"] = pd.Categorical(out["mechanism"], categories=list(MECHANISMS))
    out["scenario"] = pd.Categorical(out["scenario"], categories=list(SCENARIOS))
    return out.sort_values(["client_path", "mechanism", "scenario"], ignore_index=True)


def exposure_by_scenario(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanisms: Iterable[str] = ("mtls", "dpop_shared_cache", "dpop_nonce"),
) -> pd.DataFrame:
    """Where today's replay exposure comes from, and how much of each part a binding removes.

    One row per theft scenario (index): ``token_theft`` (True for the scenarios a binding
    can address, ``TOKEN_THEFT_SCENARIOS``), ``exposure_current`` (summed over flows, as in
    :func:`exposure_by_mechanism`), ``share_of_today`` (of the total) and, per mechanism,
    ``removed_by_<mechanism>``: the share of that scenario's exposure removed if every
    flow moved to the mechanism (NaN where a scenario carries no exposure). It explains a
    headline: key exfiltration is bearer-equivalent under every binding (domain brief
    §1.2), so where it dominates the weighted sum, binding moves the total less than it
    moves a copied token's window.
    """
    _check_frames(flows, services)
    params = params or ModelParameters.from_reference()
    mechs = list(mechanisms)
    for m in mechs:
        if m not in MECHANISMS:
            raise ValueError(f"unknown mechanism {m!r}; expected one of {MECHANISMS}")
    ctx = _context(flows, services, params)
    weights = _scenario_weights(ctx)
    cur_codes = ctx.current_code
    present = [
        MECHANISMS[i] for i in np.flatnonzero(np.bincount(cur_codes, minlength=len(MECHANISMS)))
    ]
    rows = []
    for scen in SCENARIOS:
        total, _ = _exposures(ctx, list(dict.fromkeys([*mechs, *present])), {scen: weights[scen]})
        current = sum(float(total[m][cur_codes == MECHANISMS.index(m)].sum()) for m in present)
        row: dict[str, object] = {
            "scenario": scen,
            "token_theft": scen in TOKEN_THEFT_SCENARIOS,
            "exposure_current": current,
        }
        for m in mechs:
            row[f"removed_by_{m}"] = 1 - float(total[m].sum()) / current if current else np.nan
        rows.append(row)
    out = pd.DataFrame(rows).set_index("scenario")
    grand = out["exposure_current"].sum()
    out.insert(2, "share_of_today", out["exposure_current"] / grand if grand else np.nan)
    return out
