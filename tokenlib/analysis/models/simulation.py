"""Discrete-event simulation of token and proof theft: an independent check of the closed form.

``simulate`` plays, for every flow and trial, the events behind one mechanism x scenario cell
and measures what the attacker obtained. It shares no code with the closed form (it imports
only the typed mechanism/scenario definitions and the parameter object): it parses paths and
channels, derives the authorization servers and decides enforceability itself, from the raw
inventory columns. Agreement between the two within sampling error is the check.

Events per flow and trial (all times in seconds, the theft at time 0):

* **Token.** An access token of lifetime ``L`` is stolen at age ``U ~ Uniform(0, L)`` and
  expires ``R = L - U`` later. With probability ``rho`` (A1b ``rho_introspection`` when the RS
  introspects or the token is opaque, else A1a ``rho_jwt``; refresh tokens always A1b) the
  theft is noticed and the stolen artefact is revoked ``D`` (A29 ``revocation_delay_s``) after
  the theft.
* **Support.** The mechanism is *enforceable* on the flow in the view (MODELS.md "Support
  views") when the client can hold its key (mTLS: not a browser, RFC 8705 §3 needs a TLS client
  certificate; Token Binding: no client today, RFC 8471), the authorization server issues
  bound tokens (``issues_dpop``/``issues_mtls``, RFC 9449 §5-6, RFC 8705 §3), the RS supports it
  (``today``: ``supports_*``, Token Binding nowhere; ``upgraded``: every RS) and the path carries
  it (mTLS: every terminating hop forwards the certificate; Token Binding: every hop passes TLS
  through; DPoP is a header and crosses any hop). Otherwise the mechanism plays out as bearer
  (RFC 9449 §7.2: a bound token accepted as bearer).
* **Enforcement.** The RS checks ``cnf`` in a trial with probability 1 or 0 for the family the
  flow uses today (``binding_enforced``), A2 ``e_rs`` for a mechanism the flow would adopt, 1
  when the RS refuses bearer tokens (``supports_bearer`` false).
* **Key.** The client's private key is taken with the theft with probability A4 (by
  ``key_storage``; a flow holding no key yet gets its platform's default: browser A4a, mobile
  A4d, others A4b): in a copy at rest only when a key-bearing channel exists (config files, CI
  secrets, crash dumps, integrator or browser storage), never in transit, always exposed to a
  live compromise. For mTLS each ``terminate_forward_cert`` hop independently lets an attacker
  inject a certificate header with probability A3 (RFC 8705 §3 with a TLS-terminating proxy).
  A token works like a bearer token when the RS does not enforce, or the key was taken, or a
  header was injected.
* **Proof capture (in transit, DPoP; RFC 9449 §11.1).** The legitimate request carrying the
  proof reached one of the RS's ``N`` instances ``delta ~ Uniform(0, A8)`` before the capture;
  the proof is accepted until ``iat + iat_past_s`` (D1 default when missing or 0) or, with
  server nonces, until the nonce it carries expires ``T_n`` (D3) after the legitimate request
  (the RS hands a fresh nonce with each response, §8-9), and never after the token's ``exp``
  or revocation. With probability A11 the attacker's first attempt beats the legitimate
  request. The attacker then retries every ``RETRY_S`` seconds, each attempt routed to a
  uniformly random instance; an instance accepts the proof unless its jti store already holds
  the proof's ``jti``: no store (accepted every time), one store per instance (each instance
  accepts it once) or one store shared by all instances (accepted once overall).
  ``dpop_nonce`` uses the RS's own ``jti_cache``; nonces are not a replay cache (§11.1).
* **Live compromise (RFC 9449 §11.2, §11.4).** A browser client's attacker starts a silent new
  flow with its own key with probability A12 and keeps it up to ``Uniform(0, A9)`` (no
  revocation). Otherwise the attacker reads the token and pre-generates proofs for every future
  second up to ``exp`` (``ath`` binds them to this token); with server nonces the pre-generated
  proofs carry the nonce current when the attacker loses the client, which the RS rotates every
  ``T_n`` on a clock of uniformly random phase, so they die at the next rotation. mTLS and
  Token Binding keys never leave a live client unless taken (A4).
* **Credential store (RFC 9700 §4.10.1).** A ``client_credentials`` client's credential mints
  tokens until revoked (revocation certain, at ``D``); with enforceable mTLS the credential is a
  certificate that expires ``cert_life * V`` after the theft (A14 by ``cert_management``), the
  last token living ``L`` longer. Other clients lose their refresh token (``L + A_RT * V``, A7
  when the lifetime is 0) or, without one, the access token.
* **Refresh token (RFC 9700 §4.14, RFC 9449 §5, RFC 8705 §4/§7.1).** A confidential client's
  refresh token needs the client credentials (A13); a public client's needs the key (A4) only
  when the mechanism is enforceable and the AS binds public clients' refresh tokens. It works
  ``A_RT * V`` more, the last access token ``L`` longer; with rotation the legitimate client's
  next refresh at ``L * V`` kills it unless the attacker persists first (A5).
  Flows without a refresh token have nothing to steal (window 0).
* **Issuer key (RFC 9700 §4.9).** The forger mints tokens with its own ``cnf`` for S2 seconds.
* **Attacker.** Uses what it stole after ``T ~ A23a * Exp(mean A23b) + (1 - A23a) * Exp(mean
  A23c)``; the theft is *usable when used* when ``T`` falls inside the usable window.

Measured per trial: the usable window ``W`` (from the theft until the last moment an attempt
would be accepted; 0 when no attempt of the attacker is ever accepted), and for the cell the
largest number of further acceptances of the captured, already-used proof or token. That count
is *structural*, like the export column: the attempt process runs with the binding enforced
whenever the flow can enforce it, no key taken and no header injected (those only widen
``W``); ``inf`` when the attacker's attempts were never refused (bearer, not enforceable, an
attacker who signs or mints: live compromise, credential store, issuer key).

Choices where MODELS.md is silent (written here so a disagreement can be judged):

* the theft moment of a proof capture is the capture: the token's age is uniform at the
  capture and the legitimate request happened ``delta`` earlier, as the cell formula
  ``min(max(0, P - delta), R)`` does;
* the revocation delay also caps proof windows (it is far longer than any proof window with the
  bundled values, so this never shows);
* key theft and header injection are independent events, so the token alone works with
  probability ``1 - (1 - k)(1 - p_inj_path)``; MODELS.md's ``min(1, k + p_inj_path)`` is that
  union's upper bound (the two differ by ``k * p_inj_path``, below the sampling error with the
  bundled A3 = 0.01).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from tokenlib.analysis.models.mechanisms import Mechanism, Scenario
from tokenlib.analysis.models.mechanisms import mechanism as resolve_mechanism
from tokenlib.analysis.models.mechanisms import scenario as resolve_scenario
from tokenlib.analysis.params import ModelParameters

__all__ = ["RETRY_S", "SIMULATION_COLUMNS", "simulate"]

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]

#: Seconds between two attempts of the attacker (one retry per round trip).
RETRY_S = 0.01
#: Output columns of ``simulate``.
SIMULATION_COLUMNS = (
    "flow_id",
    "sim_p_replay",
    "sim_expected_window_s",
    "sim_p_usable",
    "sim_max_replays",
    "se_p_replay",
    "se_expected_window_s",
    "se_p_usable",
)

_KEY_CHANNELS = frozenset(
    {"config_files", "ci_secrets", "crash_dumps", "integrator_storage", "browser_storage"}
)
_HOP_MODES = frozenset({"passthrough", "terminate", "terminate_forward_cert"})
_STORES = {"none": 0, "per_instance": 1, "shared": 2}
_NONE, _PER_INSTANCE, _SHARED = 0, 1, 2
_MAX_ATTEMPTS_BASE = 64


def _strings(frame: pd.DataFrame, column: str, default: str) -> npt.NDArray[np.str_]:
    if column not in frame.columns:
        return np.full(len(frame), default, dtype=object).astype(str)
    col = frame[column]
    values = col.astype(object).where(col.notna(), default)
    return np.asarray(values.astype(str).to_numpy(), dtype=str)


def _bools(frame: pd.DataFrame, column: str, default: bool) -> Bools:
    if column not in frame.columns:
        return np.full(len(frame), default, dtype=bool)
    col = frame[column]
    return np.asarray(col.astype(object).where(col.notna(), default).astype(bool), dtype=bool)


def _floats(frame: pd.DataFrame, column: str, default: float) -> Floats:
    if column not in frame.columns:
        return np.full(len(frame), default, dtype=float)
    return np.asarray(
        pd.to_numeric(frame[column], errors="coerce").fillna(default), dtype=np.float64
    )


def _hop_modes(path: str) -> list[str]:
    path = path.strip()
    if path in ("", "nan", "None"):
        return []
    modes = []
    for hop in path.split(">"):
        _, sep, mode = hop.strip().partition(":")
        if not sep or mode not in _HOP_MODES:
            raise ValueError(f"path {path!r}: hop {hop!r} is not kind:mode")
        modes.append(mode)
    return modes


def _authorization_servers(
    flows: pd.DataFrame, as_ids: npt.NDArray[np.str_], frame: pd.DataFrame | None
) -> tuple[Bools, Bools, Bools]:
    """Per flow: the AS issues DPoP-bound tokens, certificate-bound tokens, binds public RTs.

    Without a frame every AS that appears in ``flows.authorization_server`` is derived as
    MODELS.md says: it issues DPoP (mTLS) tokens when one of its flows uses that binding, and
    binds refresh tokens when it issues DPoP tokens.
    """
    binding = _strings(flows, "binding", "bearer")
    if frame is None:
        ids = sorted(set(as_ids.tolist()))
        dpop = {a: bool(np.any((as_ids == a) & (binding == "dpop"))) for a in ids}
        mtls = {a: bool(np.any((as_ids == a) & (binding == "mtls"))) for a in ids}
        binds = dict(dpop)
    else:
        if "as_id" not in frame.columns:
            raise ValueError("authorization_servers is missing column(s): as_id")
        ids = [str(a) for a in frame["as_id"]]
        d_frame = _bools(frame, "issues_dpop", False)
        m_frame = _bools(frame, "issues_mtls", False)
        dpop = dict(zip(ids, d_frame.tolist(), strict=True))
        mtls = dict(zip(ids, m_frame.tolist(), strict=True))
        if "binds_refresh_tokens" in frame.columns:
            binds = dict(
                zip(ids, _bools(frame, "binds_refresh_tokens", False).tolist(), strict=True)
            )
        else:
            binds = dict(dpop)
        for col, derived in (("issues_dpop", "dpop"), ("issues_mtls", "mtls")):
            if col not in frame.columns:
                target = dpop if derived == "dpop" else mtls
                for a in ids:
                    target[a] = bool(np.any((as_ids == a) & (binding == derived)))
    unknown = sorted(set(as_ids.tolist()) - set(dpop))
    if unknown:
        raise KeyError(f"flows.authorization_server {unknown[0]!r} is not in authorization_servers")
    return (
        np.array([dpop[a] for a in as_ids], dtype=bool),
        np.array([mtls[a] for a in as_ids], dtype=bool),
        np.array([binds[a] for a in as_ids], dtype=bool),
    )


@dataclass(frozen=True, slots=True)
class _Flows:
    """Raw per-flow facts read from the frames (arrays of length ``F``)."""

    flow_id: npt.NDArray[np.object_]
    lifetime: Floats
    rho: Floats
    has_rt: Bools
    rt_lifetime: Floats
    public: Bools
    browser: Bools
    mobile: Bools
    client_credentials: Bools
    key_storage: npt.NDArray[np.str_]
    key_channel: Bools
    binding: npt.NDArray[np.str_]
    binding_enforced: Bools
    n_forward_cert: Ints
    n_terminate_plain: Ints
    n_terminating: Ints
    cert_management: npt.NDArray[np.str_]
    instances: Ints
    jti_cache: Ints
    iat_past: Floats
    rs_mtls: Bools
    rs_dpop: Bools
    rs_bearer: Bools
    as_dpop: Bools
    as_mtls: Bools
    as_binds_rt: Bools


def _read(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    authorization_servers: pd.DataFrame | None,
    p: ModelParameters,
) -> _Flows:
    for col in ("flow_id", "resource_server", "access_token_lifetime_s"):
        if col not in flows.columns:
            raise ValueError(f"flows is missing column(s): {col}")
    if "service_id" not in services.columns:
        raise ValueError("services is missing column(s): service_id")
    svc_ids = [str(s) for s in services["service_id"]]
    where = {s: i for i, s in enumerate(svc_ids)}
    rs = _strings(flows, "resource_server", "")
    missing = [r for r in rs if r not in where]
    if missing:
        raise KeyError(f"flows.resource_server {missing[0]!r} is not in services.service_id")
    pos = np.array([where[r] for r in rs], dtype=np.int64)

    kind = _strings(flows, "client_kind", "service")
    refresh = _strings(flows, "refresh_token", "none")
    introspects = _bools(flows, "rs_introspects", False) | (
        _strings(flows, "token_format", "jwt") == "opaque"
    )
    channels = [
        {c.strip() for c in ch.split(";") if c.strip()}
        for ch in _strings(flows, "exposure_channels", "")
    ]
    hops = [_hop_modes(path) for path in _strings(flows, "path", "")]
    as_ids = _strings(flows, "authorization_server", "as-default")
    as_dpop, as_mtls, as_binds = _authorization_servers(flows, as_ids, authorization_servers)
    cache = _strings(services, "jti_cache", "none")
    bad = sorted(set(cache.tolist()) - set(_STORES))
    if bad:
        raise ValueError(f"services.jti_cache {bad[0]!r} is not one of {', '.join(_STORES)}")
    iat = _floats(services, "iat_past_s", 0.0)[pos]
    return _Flows(
        flow_id=np.asarray(_strings(flows, "flow_id", ""), dtype=object),
        lifetime=_floats(flows, "access_token_lifetime_s", 0.0),
        rho=np.where(introspects, p.rho_introspection, p.rho_jwt),
        has_rt=refresh != "none",
        rt_lifetime=_floats(flows, "refresh_token_lifetime_s", 0.0),
        public=_strings(flows, "client_type", "confidential") == "public",
        browser=kind == "browser_spa",
        mobile=kind == "mobile_app",
        client_credentials=_strings(flows, "grant_type", "") == "client_credentials",
        key_storage=_strings(flows, "key_storage", "none"),
        key_channel=np.array([bool(c & _KEY_CHANNELS) for c in channels], dtype=bool),
        binding=_strings(flows, "binding", "bearer"),
        binding_enforced=_bools(flows, "binding_enforced", False),
        n_forward_cert=np.array([h.count("terminate_forward_cert") for h in hops], dtype=np.int64),
        n_terminate_plain=np.array([h.count("terminate") for h in hops], dtype=np.int64),
        n_terminating=np.array([sum(m != "passthrough" for m in h) for h in hops], dtype=np.int64),
        cert_management=_strings(flows, "cert_management", "none"),
        instances=np.maximum(_floats(services, "instances", 1.0), 1.0).astype(np.int64)[pos],
        jti_cache=np.array([_STORES[c] for c in cache], dtype=np.int64)[pos],
        iat_past=np.where(np.isfinite(iat) & (iat > 0), iat, p.dpop_iat_past_default_s),
        rs_mtls=_bools(services, "supports_mtls", False)[pos],
        rs_dpop=_bools(services, "supports_dpop", False)[pos],
        rs_bearer=_bools(services, "supports_bearer", True)[pos],
        as_dpop=as_dpop,
        as_mtls=as_mtls,
        as_binds_rt=as_binds,
    )


def _enforceable(fl: _Flows, mech: Mechanism, view: str) -> Bools:
    """Structural support of ``mech`` on each flow: client, AS, RS and path (MODELS.md)."""
    upgraded = view == "upgraded"
    n = len(fl.lifetime)
    if mech.family == "bearer":
        return np.zeros(n, dtype=bool)
    if mech.family == "mtls":
        client = ~fl.browser  # a browser app cannot present a TLS client certificate
        issuer = fl.as_mtls
        rs = np.ones(n, dtype=bool) if upgraded else fl.rs_mtls
        path = fl.n_terminate_plain == 0  # every terminating hop forwards the certificate
        return np.asarray(client & issuer & rs & path, dtype=bool)
    if mech.family == "dpop":
        rs = np.ones(n, dtype=bool) if upgraded else fl.rs_dpop
        return np.asarray(fl.as_dpop & rs, dtype=bool)
    # Token Binding: no client supports it today (browsers removed it), every hop must pass
    # TLS through, and only an upgraded RS would support it.
    client = np.zeros(n, dtype=bool)
    rs = np.ones(n, dtype=bool) if upgraded else np.zeros(n, dtype=bool)
    return np.asarray(client & rs & (fl.n_terminating == 0), dtype=bool)


def _enforcement(fl: _Flows, mech: Mechanism, able: Bools, p: ModelParameters) -> Floats:
    """Probability the RS checks ``cnf`` in a trial."""
    same_family = fl.binding == mech.family
    e = np.where(same_family, fl.binding_enforced.astype(float), p.e_rs)
    e = np.where(~fl.rs_bearer, 1.0, e)
    return np.asarray(np.where(able, e, 0.0), dtype=np.float64)


def _p_key(fl: _Flows, p: ModelParameters) -> Floats:
    """A4 by key storage; a flow holding no key gets its platform's default."""
    by_storage = {
        "software": p.p_key_software,
        "webcrypto_non_extractable": p.p_key_non_extractable,
        "platform_keystore": p.p_key_platform,
        "hsm_tpm": p.p_key_hsm,
    }
    default = np.where(
        fl.browser, p.p_key_non_extractable, np.where(fl.mobile, p.p_key_platform, p.p_key_software)
    )
    return np.array(
        [by_storage.get(ks, d) for ks, d in zip(fl.key_storage, default, strict=True)],
        dtype=np.float64,
    )


class _Trials:
    """Random draws of one cell: shape ``(F, n)``."""

    def __init__(self, rng: np.random.Generator, n_flows: int, n: int) -> None:
        self.rng = rng
        self.shape = (n_flows, n)

    def uniform(self) -> Floats:
        return self.rng.random(self.shape)

    def happens(self, p: Floats | float) -> Bools:
        col = np.asarray(p, dtype=np.float64)
        if col.ndim == 1:
            col = col[:, None]
        return np.asarray(self.rng.random(self.shape) < col, dtype=bool)

    def instance(self, n_instances: Ints) -> Ints:
        return np.asarray(
            np.floor(self.rng.random(self.shape) * n_instances[:, None]).astype(np.int64)
        )


@dataclass(frozen=True, slots=True)
class _ProofRun:
    attacker_accepted: Bools
    close: Floats
    further: Floats  # largest further acceptances per flow (inf when never refused)


def _capture_proof(
    tr: _Trials,
    store: Ints,
    instances: Ints,
    accept_for: Floats,
    remaining: Floats,
    revoked_at: Floats,
    p: ModelParameters,
) -> _ProofRun:
    """One captured proof replayed against the RS's instances (RFC 9449 §11.1).

    ``accept_for``: seconds after the legitimate request during which the RS accepts the proof
    (iat window or nonce validity). Times are relative to the capture.
    """
    delta = tr.uniform() * p.proof_leak_delay_max_s
    close = np.minimum(np.minimum(accept_for[:, None] - delta, remaining), revoked_at)
    attacker_first = tr.happens(p.p_attacker_first)
    st = store[:, None]
    n_inst = np.broadcast_to(instances[:, None], tr.shape)
    seen = np.zeros(tr.shape, dtype=np.int64)  # instances (or the shared store) holding the jti
    accepted = np.zeros(tr.shape, dtype=np.int64)  # legitimate + attacker acceptances
    by_attacker = np.zeros(tr.shape, dtype=np.int64)
    refused = np.zeros(tr.shape, dtype=np.int64)
    in_window = np.zeros(tr.shape, dtype=np.int64)

    def arrive(mask: Bools, route: Ints) -> Bools:
        """Requests with the proof reach instance ``route`` where ``mask``; True if accepted.

        Instances are exchangeable, so they are relabelled as they see the jti: those holding
        it are ``0 .. seen-1`` (per-instance stores); a shared store holds it once ``seen``.
        """
        fresh = np.where(st == _NONE, True, np.where(st == _PER_INSTANCE, route >= seen, seen == 0))
        ok = np.asarray(mask & fresh, dtype=bool)
        seen[...] += ok & (st != _NONE)
        accepted[...] += ok
        refused[...] += mask & ~fresh
        return ok

    arrive(~attacker_first, tr.instance(instances))
    max_attempts = _MAX_ATTEMPTS_BASE + 30 * int(instances.max(initial=1))
    for k in range(max_attempts):
        saturated = (
            ((st == _NONE) & (in_window > n_inst))
            | ((st == _PER_INSTANCE) & (seen >= n_inst))
            | ((st == _SHARED) & (seen >= 1))
        )
        active = (k * RETRY_S < close) & ~saturated
        if k > 0 and not active.any():
            break
        by_attacker += arrive(active, tr.instance(instances))
        in_window += active
        if k == 0:  # the attacker who raced the legitimate request is followed by it
            arrive(attacker_first, tr.instance(instances))
    unbounded = ((in_window > n_inst) & (refused == 0)).any(axis=1)
    further = np.maximum(accepted - 1, 0).max(axis=1).astype(np.float64)
    return _ProofRun(
        attacker_accepted=by_attacker > 0,
        close=np.maximum(close, 0.0),
        further=np.where(unbounded, np.inf, further),
    )


def _time_to_use(tr: _Trials, p: ModelParameters) -> Floats:
    fast = tr.happens(p.ttu_fast_share)
    mean = np.where(fast, p.ttu_fast_mean_s, p.ttu_slow_mean_s)
    return np.asarray(tr.rng.exponential(1.0, tr.shape) * mean, dtype=np.float64)


def _cell(
    fl: _Flows, mech: Mechanism, scen: Scenario, view: str, p: ModelParameters, tr: _Trials
) -> tuple[Floats, Floats]:
    """Usable windows ``W`` (F, n) and the structural replay count per flow."""
    nf = len(fl.lifetime)
    inf = np.full(nf, np.inf)
    zero = np.zeros(nf)
    able = _enforceable(fl, mech, view)
    e = _enforcement(fl, mech, able, p)
    p_key = _p_key(fl, p)
    L = fl.lifetime[:, None]
    D = p.revocation_delay_s
    remaining = L * (1.0 - tr.uniform())  # R = L - U, U ~ Uniform(0, L)
    revoked_at = np.where(tr.happens(fl.rho), D, np.inf)
    token = np.minimum(remaining, revoked_at)
    enforced = tr.happens(e)
    injected = np.zeros(tr.shape, dtype=bool)
    if mech.family == "mtls":
        for hop in range(int(fl.n_forward_cert.max(initial=0))):
            injected |= (fl.n_forward_cert[:, None] > hop) & tr.happens(p.p_inj)
    # Further acceptances of the stolen token alone: none where the RS can enforce the binding
    # at all (e > 0); an observed-unenforced or unsupported binding replays without limit.
    checked = e > 0
    token_alone = np.where(checked, zero, inf)

    def bypass(key_taken: Bools) -> Bools:
        return np.asarray(~enforced | key_taken | injected, dtype=bool)

    sid = scen.id
    if sid == "at_rest_copy":
        key = fl.key_channel[:, None] & tr.happens(p_key)
        return np.where(bypass(key), token, 0.0), token_alone
    if sid == "in_transit_token_and_proof":
        free = bypass(np.zeros(tr.shape, dtype=bool))
        if mech.family != "dpop":
            return np.where(free, token, 0.0), token_alone
        store = (
            fl.jti_cache
            if mech.jti_store == "inventory"
            else np.full(nf, _STORES[str(mech.jti_store)], dtype=np.int64)
        )
        accept_for = np.full(nf, p.nonce_lifetime_s) if mech.nonce else fl.iat_past
        run = _capture_proof(tr, store, fl.instances, accept_for, remaining, revoked_at, p)
        proof = np.where(run.attacker_accepted, run.close, 0.0)
        return np.where(free, token, proof), np.where(checked, run.further, inf)
    if sid == "live_client_compromise":
        new_flow = fl.browser[:, None] & tr.happens(p.p_new_flow)
        session = tr.uniform() * p.as_session_max_s
        free = bypass(tr.happens(p_key))
        if mech.family == "bearer" or (mech.family == "dpop" and not mech.nonce):
            w = token  # the token is read; DPoP proofs are pre-generated up to exp (§11.2)
        elif mech.family == "dpop":
            until_rotation = p.nonce_lifetime_s * (1.0 - tr.uniform())
            w = np.where(free, token, np.minimum(until_rotation, token))
        else:
            w = np.where(free, token, 0.0)
        return np.where(new_flow, session, w), inf
    if sid == "key_exfiltration":
        v = tr.uniform()
        rt_revoked = np.where(tr.happens(p.rho_introspection), D, np.inf)
        a_rt = np.where(fl.rt_lifetime > 0, fl.rt_lifetime, p.rt_absolute_default_s)[:, None]
        refresh = np.minimum(L + a_rt * v, rt_revoked)
        cert_life = np.array(
            [
                {
                    "spiffe": p.cert_lifetime_spiffe_s,
                    "manual": p.cert_lifetime_manual_s,
                }.get(c, p.cert_lifetime_automated_s)
                for c in fl.cert_management
            ],
            dtype=np.float64,
        )[:, None]
        # The certificate is the client credential wherever the client can hold one and the
        # AS accepts it (tls_client_auth, RFC 8705 §2): the RS path plays no part.
        cert_client = ~fl.browser & fl.as_mtls
        cert = np.where(
            cert_client[:, None] & (mech.family == "mtls"), np.minimum(L + cert_life * v, D), D
        )
        other = np.where(fl.has_rt[:, None], refresh, token)
        return np.where(fl.client_credentials[:, None], cert, other), inf
    if sid.startswith("refresh_token_theft"):
        needs_key = able & fl.as_binds_rt
        usable = (
            np.where(
                fl.public[:, None],
                np.where(needs_key[:, None], tr.happens(p_key), True),
                tr.happens(p.p_client_cred),
            )
            & fl.has_rt[:, None]
        )
        v = tr.uniform()
        rt_revoked = np.where(tr.happens(p.rho_introspection), D, np.inf)
        a_rt = np.where(fl.rt_lifetime > 0, fl.rt_lifetime, p.rt_absolute_default_s)[:, None]
        lives = L + a_rt * v
        if sid == "refresh_token_theft_rotation":
            persists = tr.happens(p.pi_persist)
            lives = np.where(persists, lives, L + L * tr.uniform())
        return np.where(usable, np.minimum(lives, rt_revoked), 0.0), token_alone
    if sid == "issuer_key_compromise":
        return np.full(tr.shape, p.issuer_key_window_s), inf
    raise ValueError(f"no simulation for scenario {sid!r}")


def simulate(
    flows: pd.DataFrame,
    services: pd.DataFrame,
    params: ModelParameters | None = None,
    *,
    mechanism: str | Mechanism,
    scenario: str | Scenario,
    view: str = "today",
    authorization_servers: pd.DataFrame | None = None,
    n: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Simulate ``n`` thefts per flow for one mechanism x scenario cell in one support view.

    Returns one row per flow: ``flow_id``, ``sim_p_replay`` (share of thefts with any usable
    time), ``sim_expected_window_s``, ``sim_p_usable`` (share where the attacker's time-to-use
    falls inside the usable window), ``sim_max_replays`` (largest number of further acceptances
    of the captured, already-used proof or token; ``inf`` when the attacker's attempts were
    never refused) and the standard errors ``se_p_replay``, ``se_expected_window_s``,
    ``se_p_usable``. Seeded (``numpy.random.default_rng(seed)``): the same call gives the same
    frame. The event semantics are in the module docstring.
    """
    mech = resolve_mechanism(mechanism)
    scen = resolve_scenario(scenario)
    if view not in ("today", "upgraded"):
        raise ValueError(f"unknown view {view!r}; expected today or upgraded")
    if n < 2:
        raise ValueError("n must be at least 2")
    p = params if params is not None else ModelParameters.from_reference()
    fl = _read(flows, services, authorization_servers, p)
    nf = len(fl.lifetime)
    if nf == 0:
        return pd.DataFrame(
            {c: pd.Series(dtype=object if c == "flow_id" else float) for c in SIMULATION_COLUMNS}
        )
    tr = _Trials(np.random.default_rng(seed), nf, n)
    # Time-to-use first: cells that play out alike (a mechanism scored as bearer) see the
    # same attacker.
    t = _time_to_use(tr, p)
    w, further = _cell(fl, mech, scen, view, p, tr)
    used = t < w
    live = w > 0
    root = np.sqrt(n)
    p_replay = live.mean(axis=1)
    p_usable = used.mean(axis=1)
    return pd.DataFrame(
        {
            "flow_id": fl.flow_id,
            "sim_p_replay": p_replay,
            "sim_expected_window_s": w.mean(axis=1),
            "sim_p_usable": p_usable,
            "sim_max_replays": further,
            "se_p_replay": np.sqrt(p_replay * (1.0 - p_replay) / n),
            "se_expected_window_s": w.std(axis=1, ddof=1) / root,
            "se_p_usable": np.sqrt(p_usable * (1.0 - p_usable) / n),
        }
    )
