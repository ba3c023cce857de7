"""What an attacker can do with each stolen artefact: mechanism x scenario window mixtures.

One function per scenario; its docstring states, mechanism by mechanism, the window it gives
and the RFC section that rule follows. :func:`components` dispatches; :func:`max_replays`
gives the structural replay bound of one captured proof or token. The mathematics of the
shapes is in ``_math``; per-flow facts come from :class:`~.context.FlowContext`.

Shared rules (domain brief §1.2, §1.4):

* A stolen access token has ``R = L - U`` left (``U ~ Uniform(0, L)``); with probability
  ``rho`` a revocation bites ``D`` after theft (A1a/A1b, A29).
* A bound token works like a bearer token with probability ``b = (1 - e) + e * k``
  (``bypass``): the RS does not enforce the binding (``e``, see
  :meth:`FlowContext.enforcement`; RFC 9449 §7.2 downgrade) or the thief also holds what the
  binding needs (``k``: the key, A4, where it can be taken together with the token; for mTLS also
  a ``Client-Cert`` header injected at a forwarding hop, A3, RFC 9440 §4 "does not fail safe").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tokenlib.analysis.models._math import Component, ProofWindow, ShiftedUniform
from tokenlib.analysis.models.context import FlowContext
from tokenlib.analysis.models.mechanisms import Mechanism, Scenario, View, mechanism, scenario

__all__ = ["bypass", "cell_key", "components", "key_term", "max_replays", "scenario_weight"]

FloatArray = npt.NDArray[np.floating[Any]]
Theft = Literal["at_rest", "in_transit", "live"]


def _arr(x: FloatArray | float, n: int) -> FloatArray:
    return np.asarray(np.broadcast_to(np.asarray(x, dtype=float), (n,)))


def _su(ctx: FlowContext, w: Any, c: Any, a: Any, rho: Any) -> ShiftedUniform:
    n = ctx.n
    return ShiftedUniform(
        _arr(w, n), _arr(c, n), _arr(a, n), _arr(rho, n), ctx.params.revocation_delay_s
    )


def _token(ctx: FlowContext, w: Any) -> ShiftedUniform:
    """The rest of an access token's life, ``R = L - U``, revocable (RFC 6750 §1.2)."""
    return _su(ctx, w, 0.0, ctx.lifetime, ctx.rho)


def _proof(ctx: FlowContext, w: Any, window: Any, delay: Any) -> ProofWindow:
    n = ctx.n
    return ProofWindow(_arr(w, n), _arr(window, n), _arr(delay, n), ctx.lifetime)


def key_term(ctx: FlowContext, mech: Mechanism, theft: Theft) -> FloatArray:
    """Probability ``k`` that the thief can satisfy the binding without the client.

    ``at_rest``: the key is taken too only where the flow has a key-bearing channel (A4);
    ``in_transit``: never (a key does not cross the wire, RFC 9449 §11.1); ``live``: A4 (the
    thief runs on the client and may read an extractable key, RFC 9700 §4.10.1). mTLS adds the
    chance that a forwarding hop accepts an injected certificate header (A3 per
    ``terminate_forward_cert`` hop, RFC 9440 §4), independent of the key:
    ``1 - (1 - k)(1 - p_inj_path)``.
    """
    if theft == "at_rest":
        k = ctx.p_key * ctx.key_channel
    elif theft == "in_transit":
        k = np.zeros(ctx.n)
    else:
        k = ctx.p_key
    if mech.family == "mtls":
        inj = 1.0 - (1.0 - ctx.params.p_inj) ** ctx.n_forward_cert
        k = 1.0 - (1.0 - k) * (1.0 - inj)  # key theft and injection are independent events
    return np.asarray(k)


def bypass(ctx: FlowContext, mech: Mechanism, view: View, theft: Theft) -> FloatArray:
    """Probability ``b = (1 - e) + e k`` that the stolen token works like a bearer token."""
    if not mech.bound:
        return np.ones(ctx.n)
    e = ctx.enforcement(mech, view)
    return np.asarray(np.clip((1.0 - e) + e * key_term(ctx, mech, theft), 0.0, 1.0))


def _kappa(ctx: FlowContext, mech: Mechanism) -> FloatArray:
    """Probability a captured proof is accepted at least once more (RFC 9449 §11.1).

    No jti store: 1. Per-instance stores: 1 when the RS has several instances (the replay
    lands on another one), else only if the attacker beats the legitimate request (A11).
    Shared store: only if the attacker is first (A11).
    """
    store = ctx.jti_store(mech)
    first = ctx.params.p_attacker_first
    return np.asarray(
        np.where(store == 0, 1.0, np.where((store == 1) & (ctx.instances > 1), 1.0, first))
    )


def _acceptance_window(ctx: FlowContext, mech: Mechanism) -> FloatArray:
    """How long after creation a proof is accepted: the nonce lifetime when nonces are
    required (D3, RFC 9449 §8), else the RS's iat past tolerance (D1 default, §4.3)."""
    if mech.nonce:
        return np.full(ctx.n, ctx.params.nonce_lifetime_s)
    return ctx.iat_past


def at_rest_copy(ctx: FlowContext, mech: Mechanism, view: View) -> list[Component]:
    """A copy of the access token from storage, logs, HAR or config files.

    * bearer: ``R`` (RFC 6750 §1.2: any holder may use it).
    * mTLS, DPoP (every variant), Token Binding: ``R`` with probability ``b`` — the RS does
      not enforce ``cnf`` (RFC 9449 §7.2) or the key lay next to the token (RFC 9700
      §4.10.1); else 0, the token alone is refused (RFC 8705 §3, RFC 9449 §7.1).
    """
    return [_token(ctx, bypass(ctx, mech, view, "at_rest"))]


def in_transit_token_and_proof(ctx: FlowContext, mech: Mechanism, view: View) -> list[Component]:
    """A request recorded on its way (proxy logs, HAR files): the token and, for DPoP, a proof.

    * bearer: ``R``.
    * mTLS, Token Binding: ``R`` with probability ``b`` (no key crosses the wire); else 0, a
      TLS handshake cannot be replayed (RFC 8705 §3; RFC 9449 §11 contrasts it).
    * DPoP: ``R`` with probability ``b``; else the captured proof, for its own method and URL
      only (§4.3), accepted until ``P`` seconds after its creation (iat tolerance, or the nonce
      lifetime with nonces, §8) and while the token lives (``ath``, §4.3), captured ``delta ~
      U(0, A8)`` after creation: ``min(max(0, P - delta), R)`` with probability ``kappa``
      (no jti store 1; per-instance stores 1 on several instances; shared store A11, §11.1).
      With ``dpop_nonce`` the jti store is the RS's own: nonces bound *when* a proof is
      accepted, not *how often* (§11.1).
    """
    b = bypass(ctx, mech, view, "in_transit")
    comps: list[Component] = [_token(ctx, b)]
    if mech.proofs:
        enforced = ctx.enforceable(mech, view)
        w = np.where(enforced, (1.0 - b) * _kappa(ctx, mech), 0.0)
        comps.append(
            _proof(ctx, w, _acceptance_window(ctx, mech), ctx.params.proof_leak_delay_max_s)
        )
    return comps


def live_client_compromise(ctx: FlowContext, mech: Mechanism, view: View) -> list[Component]:
    """The attacker controls the client while it runs (XSS, malware), then loses it.

    * browser clients, every mechanism: with probability A12 a silent new authorization flow
      bound to the attacker's own key, usable for the remaining AS session ``U(0, A9)``
      (draft-ietf-oauth-browser-based-apps; RFC 9449 §11.4: no binding helps).
    * bearer: ``R`` (reads the token).
    * DPoP without nonces: ``R`` — proofs pre-generated for future use remain valid until the
      token expires (``ath``, RFC 9449 §11.2).
    * DPoP with nonces: ``R`` with probability ``b``; else pre-generated proofs die when the
      nonce rotates: ``min(U(0, T_n), R)`` (RFC 9449 §11.2, §8).
    * mTLS, Token Binding: ``R`` with probability ``b`` (key read from the client); else 0 —
      without the key the token is useless once the client is offline (RFC 9700 §4.10.1).
    """
    p = ctx.params
    nf = np.where(ctx.browser, p.p_new_flow, 0.0)
    comps: list[Component] = [_su(ctx, nf, 0.0, p.as_session_max_s, 0.0)]
    rest = 1.0 - nf
    if not mech.bound or (mech.proofs and not mech.nonce):
        comps.append(_token(ctx, rest))
        return comps
    b = bypass(ctx, mech, view, "live")
    comps.append(_token(ctx, rest * b))
    if mech.proofs:
        enforced = ctx.enforceable(mech, view)
        tn = p.nonce_lifetime_s
        comps.append(_proof(ctx, np.where(enforced, rest * (1.0 - b), 0.0), tn, tn))
    return comps


def key_exfiltration(ctx: FlowContext, mech: Mechanism, view: View) -> list[Component]:
    """The client's credential store is copied: tokens, refresh token, key, client credential.

    Every binding is bearer-equivalent here: the thief holds the key (RFC 9700 §4.10.1).
    * client_credentials grant: mTLS — where the client can hold a certificate and the AS
      authenticates with it (RFC 8705 §2), the certificate *is* the client credential: new
      tokens until it expires, ``L + U(0, cert lifetime)`` (A14a-c), always capped by the
      revocation delay; otherwise, and for every other mechanism, a client secret or signing
      key mints until revoked, ``D``.
    * otherwise a refresh token mints for ``L + U(0, A_RT)`` (RFC 9700 §4.14); without one the
      access token's ``R``.
    The likelihood of this scenario follows the key storage and channels
    (:func:`scenario_weight`), not the mechanism.
    """
    p = ctx.params
    cc = ctx.client_credentials.astype(float)
    rt = (1.0 - cc) * ctx.has_rt
    comps: list[Component] = [
        _su(ctx, rt, ctx.lifetime, ctx.rt_lifetime, p.rho_introspection),
        _token(ctx, (1.0 - cc) * ~ctx.has_rt),
    ]
    if mech.family == "mtls":
        # the certificate is the client credential where the client can hold one and the AS
        # authenticates with it (tls_client_auth, RFC 8705 §2); the RS path plays no part
        sup = ctx.support[("mtls", view)]
        cert = cc * (sup.client & sup.authorization_server)
        comps.append(_su(ctx, cert, ctx.lifetime, ctx.cert_lifetime, 1.0))
        comps.append(_su(ctx, cc - cert, p.revocation_delay_s, 0.0, 0.0))
    else:
        comps.append(_su(ctx, cc, p.revocation_delay_s, 0.0, 0.0))
    return comps


def _rt_use(ctx: FlowContext, mech: Mechanism, view: View) -> FloatArray:
    """Probability a stolen refresh token can be redeemed.

    Confidential clients: the thief also needs the client credentials, A13, whatever the
    binding (RFC 6749 §6, RFC 9449 §5, RFC 8705 §7.1). Public clients: a bearer refresh token
    works as it is; one bound to the key (RFC 9449 §5, RFC 8705 §4) needs the key (A4), where
    the AS binds refresh tokens (``binds_refresh_tokens``) and the mechanism is enforceable on
    the flow.
    """
    p = ctx.params
    if not mech.bound:
        public = np.ones(ctx.n)
    else:
        bound = ctx.enforceable(mech, view) & ctx.as_binds_rt
        public = np.where(bound, ctx.p_key, 1.0)
    use = np.where(ctx.public, public, p.p_client_cred)
    return np.asarray(np.where(ctx.has_rt, use, 0.0))


def refresh_token_theft_no_rotation(
    ctx: FlowContext, mech: Mechanism, view: View
) -> list[Component]:
    """A refresh token without rotation: ``L + U(0, A_RT)`` with the redeem probability
    (RFC 9700 §4.14; the idle timeout does not stop an active attacker)."""
    use = _rt_use(ctx, mech, view)
    return [_su(ctx, use, ctx.lifetime, ctx.rt_lifetime, ctx.params.rho_introspection)]


def refresh_token_theft_rotation(ctx: FlowContext, mech: Mechanism, view: View) -> list[Component]:
    """A rotating refresh token (RFC 9700 §4.14.2): it dies at the next legitimate refresh,
    ``L + U(0, L)``, unless the thief keeps the client from refreshing (persistent theft, A5,
    draft-ietf-oauth-browser-based-apps): then ``L + U(0, A_RT)``."""
    use = _rt_use(ctx, mech, view)
    p = ctx.params
    rho = p.rho_introspection
    return [
        _su(ctx, use * (1.0 - p.pi_persist), ctx.lifetime, ctx.lifetime, rho),
        _su(ctx, use * p.pi_persist, ctx.lifetime, ctx.rt_lifetime, rho),
    ]


def issuer_key_compromise(ctx: FlowContext, mech: Mechanism, view: View) -> list[Component]:
    """The AS signing key is stolen (Storm-0558 class): the forger writes its own ``cnf``, so
    no binding helps; tokens are minted for S2 seconds (RFC 9700 §4.9)."""
    return [_su(ctx, 1.0, ctx.params.issuer_key_window_s, 0.0, 0.0)]


_BY_SCENARIO: dict[str, Callable[[FlowContext, Mechanism, View], list[Component]]] = {
    "at_rest_copy": at_rest_copy,
    "in_transit_token_and_proof": in_transit_token_and_proof,
    "live_client_compromise": live_client_compromise,
    "key_exfiltration": key_exfiltration,
    "refresh_token_theft_no_rotation": refresh_token_theft_no_rotation,
    "refresh_token_theft_rotation": refresh_token_theft_rotation,
    "issuer_key_compromise": issuer_key_compromise,
}


def components(
    ctx: FlowContext, mech: Mechanism | str, scen: Scenario | str, view: View = "today"
) -> list[Component]:
    """The window mixture of one mechanism x scenario cell for every flow."""
    return _BY_SCENARIO[scenario(scen).id](ctx, mechanism(mech), view)


def cell_key(mech: Mechanism | str, scen: Scenario | str) -> tuple[object, ...]:
    """Cells with equal keys have identical mixtures (one evaluation serves all of them).

    Read off the scenario functions above: only a captured proof depends on the jti store and
    the nonce; live compromise on whether the mechanism stops offline use (DPoP without nonces
    does not, like bearer); the credential store only on whether a certificate is the client
    credential; the issuer key on nothing; the others on the family.
    """
    m, s = mechanism(mech), scenario(scen)
    if s.id == "in_transit_token_and_proof":
        return (s.id, m.id)
    if s.id == "live_client_compromise":
        bearer_like = not m.bound or (m.proofs and not m.nonce)
        return (s.id, "bearer" if bearer_like else m.family, m.nonce)
    if s.id == "key_exfiltration":
        return (s.id, m.family == "mtls")
    if s.id == "issuer_key_compromise":
        return (s.id,)
    return (s.id, m.family)


def scenario_weight(ctx: FlowContext, scen: Scenario | str) -> FloatArray:
    """Relative likelihood of a scenario per flow (A17a-f), 0 where it cannot happen.

    At rest: a stored-token channel; in transit: proxy logs or HAR files; refresh scenarios:
    the flow's own refresh mode; live compromise and issuer key: always. The credential
    store's likelihood follows how extractable the key is (A4 by key storage) and whether a
    channel holds it (else A26).
    """
    s = scenario(scen)
    p = ctx.params
    ones = np.ones(ctx.n)
    if s.id == "at_rest_copy":
        return np.asarray(p.w_at_rest_copy * ctx.at_rest)
    if s.id == "in_transit_token_and_proof":
        return np.asarray(p.w_in_transit_token_and_proof * ctx.in_transit)
    if s.id == "live_client_compromise":
        return np.asarray(p.w_live_client_compromise * ones)
    if s.id == "key_exfiltration":
        reach = np.where(ctx.key_channel, 1.0, p.p_store_no_channel)
        return np.asarray(p.w_key_exfiltration * ctx.p_key * reach)
    if s.id == "refresh_token_theft_no_rotation":
        return np.asarray(p.w_refresh_token_theft * (ctx.has_rt & ~ctx.rotating))
    if s.id == "refresh_token_theft_rotation":
        return np.asarray(p.w_refresh_token_theft * ctx.rotating)
    return np.asarray(p.w_issuer_key_compromise * ones)


def max_replays(
    ctx: FlowContext, mech: Mechanism | str, scen: Scenario | str, view: View = "today"
) -> FloatArray:
    """Further acceptances of one captured, already-used proof or token (``inf`` unbounded).

    Structural: assumes the binding is enforced wherever it can be (enforcement probability
    above 0). Bearer, a mechanism the flow cannot enforce in ``view``, or one the inventory
    observed unenforced (``binding_enforced`` false): ``inf`` (RFC 9449 §7.2). Token-only
    scenarios (at rest, refresh tokens): 0, the token alone is refused. A captured proof
    (in transit): no jti store ``inf``; per-instance stores ``N - 1``; shared store 0 (RFC 9449
    §11.1; nonces do not change the count). Live compromise, credential store, issuer key:
    ``inf`` — the attacker signs or mints rather than replays.
    """
    m, s = mechanism(mech), scenario(scen)
    inf = np.full(ctx.n, np.inf)
    if not m.bound:
        return inf
    if s.id in ("live_client_compromise", "key_exfiltration", "issuer_key_compromise"):
        return inf
    ok = ctx.enforcement(m, view) > 0
    if s.id != "in_transit_token_and_proof" or not m.proofs:
        return np.asarray(np.where(ok, 0.0, np.inf))
    store = ctx.jti_store(m)
    by_store = np.where(
        store == 0, np.inf, np.where(store == 1, np.maximum(ctx.instances - 1.0, 0.0), 0.0)
    )
    return np.asarray(np.where(ok, by_store, np.inf))
