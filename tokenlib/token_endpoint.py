"""The authorization server side of DPoP: proofs at the token endpoint (RFC 9449 §5, §8, §10).

:class:`TokenEndpoint` checks the ``DPoP`` header of a token request and tells the AS
which key to bind: pass :attr:`TokenRequest.jkt` to ``Issuer.issue(jkt=...)`` and
answer with :func:`token_response` (``token_type`` ``DPoP``, §5). Errors are rendered
for a token endpoint: HTTP 400 with an RFC 6749 §5.2 JSON body (``error.json_body()``)
and no ``WWW-Authenticate``; a required or stale AS nonce gives ``use_dpop_nonce``
with a fresh ``DPoP-Nonce`` header (§8).

Code and refresh-token binding: :func:`check_dpop_jkt` enforces the ``dpop_jkt``
authorization request parameter (§10, also for PAR, §10.1); :func:`refresh_token_jkt`
says which key a refresh token issued to a public client is bound to and
:func:`check_refresh_token_binding` enforces it when the token is used (§5). Mismatches
at the token endpoint are ``invalid_grant`` (RFC 6749 §5.2): the grant itself belongs to
another key.

Pushed authorization requests (§10.1): a second endpoint,
``TokenEndpoint(par_url, endpoint="par")``, verifies a ``DPoP`` header there (with
``dpop_jkt=`` when the client also sent that parameter; a mismatch is
``invalid_request``, RFC 9126 §2.3 — there is no grant yet); store the returned ``jkt``
with the request and pass it as ``dpop_jkt`` to the token request.

Replay store (RFC 9449 §11.1): :meth:`TokenEndpoint.check` records nothing;
:meth:`TokenEndpoint.record` stores the proof's ``jti`` owned by the authenticated
client once client authentication succeeded, so unauthenticated requests cannot fill
the store and one client only fills its own quota.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

from tokenlib._headers import Headers, collect, multiple_dpop_fields
from tokenlib._htu import normalize_htu
from tokenlib._time import Now, resolve_now
from tokenlib.dpop import DPoPPolicy, DPoPProof, check_proof, replay_detected, replay_key
from tokenlib.errors import (
    InvalidDPoPProof,
    InvalidGrant,
    InvalidRequest,
    TokenError,
    UseDPoPNonce,
)
from tokenlib.nonce import NonceManager
from tokenlib.replay import (
    MemoryReplayCache,
    NoReplayCheck,
    ReplayCache,
    check_acceptance_window,
    is_async_replay_cache,
)

__all__ = [
    "TOKEN_ENDPOINT_MAX_PER_CLIENT",
    "InvalidGrant",
    "TokenEndpoint",
    "TokenRequest",
    "check_dpop_jkt",
    "check_jkt_syntax",
    "check_refresh_token_binding",
    "refresh_token_jkt",
    "token_response",
]


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """The DPoP outcome of a token request.

    ``jkt`` is the key to bind issued tokens to (``None``: no proof, issue Bearer);
    ``token_type`` is what the response must say; ``response_headers`` may carry a
    rotated ``DPoP-Nonce`` (§8.2) to add to the 200 response.
    """

    proof: DPoPProof | None
    jkt: str | None
    token_type: Literal["DPoP", "Bearer"]
    response_headers: dict[str, str] = field(default_factory=dict)


#: Default replay store of a :class:`TokenEndpoint`: 100,000 live proofs, at most 1,000
#: per authenticated client inside the acceptance window (≈ 2.8 token requests per
#: second sustained per client over the default 360 s window).
TOKEN_ENDPOINT_MAX_PER_CLIENT: Final = 1_000


class TokenEndpoint:
    """Verify DPoP proofs sent to one token endpoint (or one PAR endpoint).

    ``url``: the endpoint's public URL (the ``htu`` clients must use; never derived from
    request headers). ``require_nonce``: demand AS nonces from ``nonce_manager`` (a
    random-secret one is created when omitted). ``replay_cache`` defaults to a private
    :class:`~tokenlib.replay.MemoryReplayCache` with a per-client quota of
    :data:`TOKEN_ENDPOINT_MAX_PER_CLIENT` live proofs (``None`` means that default, never
    "no replay check"). ``endpoint``: ``"token"`` (default) or ``"par"`` for a pushed
    authorization request endpoint (RFC 9126), where a ``dpop_jkt`` mismatch is
    ``invalid_request`` (RFC 9126 §2.3, RFC 9449 §10.1) — a PAR request carries no grant.

    Order at the endpoint (RFC 9449 §11.1 and this module's flood tests): call
    :meth:`check` first (it answers nonce demands and bad proofs without recording
    anything), authenticate the client, then :meth:`record` with the authenticated
    ``client_id`` — or call :meth:`verify` (both steps) after client authentication. An
    unauthenticated request then never adds a replay-store entry, and one client's
    flood only fills its own quota (:class:`~tokenlib.errors.ReplayQuotaExceeded`).
    """

    def __init__(
        self,
        url: str,
        *,
        replay_cache: ReplayCache | None = None,
        policy: DPoPPolicy | None = None,
        require_nonce: bool = False,
        nonce_manager: NonceManager | None = None,
        endpoint: Literal["token", "par"] = "token",
    ) -> None:
        if endpoint not in ("token", "par"):
            raise ValueError("endpoint must be 'token' or 'par'")
        self.url = normalize_htu(url)
        self.endpoint: Literal["token", "par"] = endpoint
        if isinstance(cast(object, replay_cache), NoReplayCheck):
            raise ValueError(
                "a TokenEndpoint always checks replays (RFC 9449 §11.1); pass a replay "
                "store, or None for a private MemoryReplayCache"
            )
        if replay_cache is not None and is_async_replay_cache(replay_cache):
            raise TypeError("TokenEndpoint needs a synchronous ReplayCache")
        self.replay_cache: ReplayCache = (
            MemoryReplayCache(max_per_owner=TOKEN_ENDPOINT_MAX_PER_CLIENT)
            if replay_cache is None
            else replay_cache
        )
        self.policy = DPoPPolicy() if policy is None else policy
        check_acceptance_window(
            self.replay_cache, self.policy.acceptance_window, server="TokenEndpoint"
        )
        if require_nonce and nonce_manager is None:
            nonce_manager = NonceManager.with_random_secret()
        self.require_nonce = require_nonce
        self.nonce_manager = nonce_manager

    def __repr__(self) -> str:
        return (
            f"TokenEndpoint(url={self.url!r}, endpoint={self.endpoint!r}, "
            f"require_nonce={self.require_nonce})"
        )

    def _render(self, err: TokenError, moment: float) -> TokenError:
        if isinstance(err, UseDPoPNonce) and err.details.get("presented") is None:
            err.description = "Authorization server requires nonce in DPoP proof"  # Fig. 20
        headers_out: dict[str, str] = {}
        if self.require_nonce and self.nonce_manager is not None:
            headers_out = self.nonce_manager.response_headers(now=moment)
        return err.with_context(endpoint="token", headers=headers_out)

    def verify(
        self,
        headers: Headers,
        *,
        method: str = "POST",
        require_dpop: bool = False,
        dpop_jkt: str | None = None,
        refresh_token_jkt: str | None = None,
        client_id: str | None = None,
        now: Now = None,
    ) -> TokenRequest:
        """:meth:`check` then :meth:`record`: call it once the client is authenticated.

        ``client_id``: the authenticated client, the owner of the replay-store entry (its
        quota). ``None`` (public clients) uses the proof's ``jkt``; only do that after
        the grant itself (e.g. a refresh token bound to that key) was validated.
        """
        moment = resolve_now(now)
        request = self.check(
            headers,
            method=method,
            require_dpop=require_dpop,
            dpop_jkt=dpop_jkt,
            refresh_token_jkt=refresh_token_jkt,
            now=moment,
        )
        self.record(request, client_id=client_id, now=moment)
        return request

    def check(
        self,
        headers: Headers,
        *,
        method: str = "POST",
        require_dpop: bool = False,
        dpop_jkt: str | None = None,
        refresh_token_jkt: str | None = None,
        now: Now = None,
    ) -> TokenRequest:
        """Check the request's ``DPoP`` header (RFC 9449 §4.3, §5) without recording it.

        ``require_dpop``: the client registered ``dpop_bound_access_tokens`` (§5.2) — a
        request without a proof is refused. ``dpop_jkt``: the value from the
        authorization (or PAR) request the code was issued for (§10); at a PAR endpoint
        the ``dpop_jkt`` parameter of the request itself (§10.1), which a proof, when
        present, must match. ``refresh_token_jkt``: the key a presented refresh token is
        bound to (§5). Raises a :class:`~tokenlib.errors.TokenError` rendered for a token
        endpoint. Call :meth:`record` once the client is authenticated.
        """
        moment = resolve_now(now)
        par = self.endpoint == "par"
        if par and refresh_token_jkt is not None:
            raise ValueError("a PAR request carries no refresh token")
        try:
            _, values = collect(headers)
            if len(values) > 1:
                raise multiple_dpop_fields(len(values))
            if not values:
                if par and dpop_jkt is not None:
                    # §10.1: the dpop_jkt parameter alone binds the code to that key.
                    check_jkt_syntax(dpop_jkt)
                    return TokenRequest(proof=None, jkt=dpop_jkt, token_type="DPoP")  # noqa: S106
                if dpop_jkt is not None or refresh_token_jkt is not None:
                    raise InvalidGrant(
                        "the grant is bound to a DPoP key but no DPoP proof was presented",
                        details={"check": "dpop_header", "rfc": "RFC 9449 §5, §10"},
                    )
                if require_dpop:
                    raise InvalidDPoPProof(
                        "this client must send a DPoP proof with every token request",
                        details={"check": "dpop_header", "rfc": "RFC 9449 §5.2"},
                    )
                return TokenRequest(proof=None, jkt=None, token_type="Bearer")  # noqa: S106
            proof = check_proof(
                values[0],
                htm=method,
                htu=self.url,
                nonce=self.nonce_manager if self.require_nonce else None,
                now=moment,
                policy=self.policy,
            )
            if dpop_jkt is not None:
                check_dpop_jkt(dpop_jkt, proof, par=par)
            if refresh_token_jkt is not None:
                check_refresh_token_binding(refresh_token_jkt, proof)
        except TokenError as err:
            raise self._render(err, moment) from None
        response_headers: dict[str, str] = {}
        if self.require_nonce and self.nonce_manager is not None:
            response_headers = self.nonce_manager.response_headers(proof.nonce, now=moment)
        return TokenRequest(
            proof=proof,
            jkt=proof.jkt,
            token_type="DPoP",  # noqa: S106 - a token type name, not a secret
            response_headers=response_headers,
        )

    def record(self, request: TokenRequest, *, client_id: str | None, now: Now = None) -> None:
        """Record the proof of a checked request (RFC 9449 §11.1), owned by ``client_id``.

        Call only after client authentication succeeded, so an unauthenticated flood
        adds nothing. Raises :class:`~tokenlib.errors.ReplayDetected` for a used ``jti``
        and :class:`~tokenlib.errors.ReplayQuotaExceeded` (429) when this client holds
        its quota of live proofs; nothing happens for a request without a proof.
        """
        proof = request.proof
        if proof is None:
            return
        if client_id is not None and (not isinstance(client_id, str) or not client_id):
            raise ValueError("client_id must be a non-empty str or None")
        moment = resolve_now(now)
        try:
            fresh = self.replay_cache.check_and_store(
                replay_key(proof.jkt, proof.jti),
                expires_at=proof.replay_expires_at,
                now=moment,
                owner=client_id if client_id is not None else proof.jkt,
            )
            if not fresh:
                raise replay_detected(proof)
        except TokenError as err:
            raise self._render(err, moment) from None


def check_dpop_jkt(dpop_jkt: str, proof: DPoPProof, *, par: bool = False) -> None:
    """RFC 9449 §10: the proof's key thumbprint must equal the ``dpop_jkt`` the
    authorization (or PAR) request named; compared in constant time.

    At the token endpoint a mismatch is ``invalid_grant`` (the code belongs to another
    key). With ``par=True`` — the proof and the ``dpop_jkt`` parameter arrive together in
    one pushed authorization request — it is ``invalid_request``: there is no grant yet
    (RFC 9126 §2.3, RFC 9449 §10.1).
    """
    if not isinstance(dpop_jkt, str) or not hmac.compare_digest(
        dpop_jkt.encode(), proof.jkt.encode()
    ):
        details = {
            "check": "dpop_jkt",
            "expected": dpop_jkt if isinstance(dpop_jkt, str) else None,
            "presented": proof.jkt,
            "rfc": "RFC 9449 §10.1, RFC 9126 §2.3" if par else "RFC 9449 §10",
        }
        if par:
            raise InvalidRequest(
                "the DPoP proof key does not match the dpop_jkt parameter",
                details=details,
                endpoint="token",
            )
        raise InvalidGrant(
            "the DPoP proof key does not match the dpop_jkt of the authorization request",
            details=details,
        )


_JKT: Final = re.compile(r"\A[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]\Z")


def check_jkt_syntax(dpop_jkt: object) -> str:
    """A ``dpop_jkt`` parameter is an RFC 7638 SHA-256 thumbprint: 43 base64url
    characters (RFC 9449 §10); anything else is ``invalid_request``."""
    if not isinstance(dpop_jkt, str) or _JKT.match(dpop_jkt) is None:
        raise InvalidRequest(
            "the dpop_jkt parameter is not a base64url SHA-256 JWK thumbprint",
            details={"check": "dpop_jkt", "rfc": "RFC 9449 §10"},
            endpoint="token",
        )
    return dpop_jkt


def refresh_token_jkt(proof: DPoPProof | None, *, public_client: bool) -> str | None:
    """The key to bind a refresh token to (RFC 9449 §5): the proof's ``jkt`` for a
    public client; ``None`` for a confidential client (already sender-constrained by
    its client authentication) or when no proof was sent."""
    if proof is None or not public_client:
        return None
    return proof.jkt


def check_refresh_token_binding(bound_jkt: str, proof: DPoPProof | None) -> None:
    """RFC 9449 §5: a refresh token bound to ``bound_jkt`` is only usable with a proof
    made with that same key."""
    if proof is None:
        raise InvalidGrant(
            "the refresh token is bound to a DPoP key; a DPoP proof is required",
            details={"check": "refresh_token_binding", "expected": bound_jkt, "presented": None},
        )
    if not hmac.compare_digest(bound_jkt.encode(), proof.jkt.encode()):
        raise InvalidGrant(
            "the refresh token is bound to a different DPoP key",
            details={
                "check": "refresh_token_binding",
                "expected": bound_jkt,
                "presented": proof.jkt,
                "rfc": "RFC 9449 §5",
            },
        )


def token_response(
    access_token: str,
    *,
    token_type: Literal["DPoP", "Bearer"],
    expires_in: int,
    refresh_token: str | None = None,
    scope: str | None = None,
) -> dict[str, Any]:
    """An RFC 6749 §5.1 access token response; ``token_type`` ``DPoP`` tells the client
    the token is bound to its key (RFC 9449 §5). Send it with ``Cache-Control:
    no-store``."""
    if token_type not in ("DPoP", "Bearer"):
        raise ValueError("token_type must be 'DPoP' or 'Bearer'")
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": token_type,
        "expires_in": expires_in,
    }
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    if scope is not None:
        body["scope"] = scope
    return body
