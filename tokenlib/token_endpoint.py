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
are ``invalid_grant`` (RFC 6749 §5.2): the grant itself belongs to another key.

Pushed authorization requests (§10.1): a second :class:`TokenEndpoint` for the PAR URL
verifies a ``DPoP`` header there (with ``dpop_jkt=`` when the client also sent that
parameter); store the returned ``jkt`` with the request and pass it as ``dpop_jkt`` to
the token request.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any, Literal

from tokenlib._headers import Headers, collect, multiple_dpop_fields
from tokenlib._htu import normalize_htu
from tokenlib._time import Now, resolve_now
from tokenlib.dpop import DPoPPolicy, DPoPProof, verify_proof
from tokenlib.errors import (
    InvalidDPoPProof,
    InvalidGrant,
    TokenError,
    UseDPoPNonce,
)
from tokenlib.nonce import NonceManager
from tokenlib.replay import MemoryReplayCache, ReplayCache

__all__ = [
    "InvalidGrant",
    "TokenEndpoint",
    "TokenRequest",
    "check_dpop_jkt",
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


class TokenEndpoint:
    """Verify DPoP proofs sent to one token endpoint.

    ``url``: the endpoint's public URL (the ``htu`` clients must use; never derived from
    request headers). ``require_nonce``: demand AS nonces from ``nonce_manager`` (a
    random-secret one is created when omitted). ``replay_cache`` defaults to a private
    :class:`~tokenlib.replay.MemoryReplayCache`.
    """

    def __init__(
        self,
        url: str,
        *,
        replay_cache: ReplayCache | None = None,
        policy: DPoPPolicy | None = None,
        require_nonce: bool = False,
        nonce_manager: NonceManager | None = None,
    ) -> None:
        self.url = normalize_htu(url)
        self.replay_cache: ReplayCache = (
            MemoryReplayCache() if replay_cache is None else replay_cache
        )
        self.policy = DPoPPolicy() if policy is None else policy
        if require_nonce and nonce_manager is None:
            nonce_manager = NonceManager.with_random_secret()
        self.require_nonce = require_nonce
        self.nonce_manager = nonce_manager

    def __repr__(self) -> str:
        return f"TokenEndpoint(url={self.url!r}, require_nonce={self.require_nonce})"

    def verify(
        self,
        headers: Headers,
        *,
        method: str = "POST",
        require_dpop: bool = False,
        dpop_jkt: str | None = None,
        refresh_token_jkt: str | None = None,
        now: Now = None,
    ) -> TokenRequest:
        """Check the request's ``DPoP`` header (RFC 9449 §4.3, §5).

        ``require_dpop``: the client registered ``dpop_bound_access_tokens`` (§5.2) — a
        request without a proof is refused. ``dpop_jkt``: the value from the
        authorization (or PAR) request the code was issued for (§10).
        ``refresh_token_jkt``: the key a presented refresh token is bound to (§5).
        Raises a :class:`~tokenlib.errors.TokenError` rendered for a token endpoint.
        """
        moment = resolve_now(now)
        try:
            _, values = collect(headers)
            if len(values) > 1:
                raise multiple_dpop_fields(len(values))
            if not values:
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
            proof = verify_proof(
                values[0],
                htm=method,
                htu=self.url,
                nonce=self.nonce_manager if self.require_nonce else None,
                now=moment,
                replay_cache=self.replay_cache,
                policy=self.policy,
            )
            if dpop_jkt is not None:
                check_dpop_jkt(dpop_jkt, proof)
            if refresh_token_jkt is not None:
                check_refresh_token_binding(refresh_token_jkt, proof)
        except TokenError as err:
            if isinstance(err, UseDPoPNonce) and err.details.get("presented") is None:
                err.description = "Authorization server requires nonce in DPoP proof"  # Fig. 20
            headers_out: dict[str, str] = {}
            if self.require_nonce and self.nonce_manager is not None:
                headers_out = self.nonce_manager.response_headers(now=moment)
            raise err.with_context(endpoint="token", headers=headers_out) from None
        response_headers: dict[str, str] = {}
        if self.require_nonce and self.nonce_manager is not None:
            response_headers = self.nonce_manager.response_headers(proof.nonce, now=moment)
        return TokenRequest(
            proof=proof,
            jkt=proof.jkt,
            token_type="DPoP",  # noqa: S106 - a token type name, not a secret
            response_headers=response_headers,
        )


def check_dpop_jkt(dpop_jkt: str, proof: DPoPProof) -> None:
    """RFC 9449 §10: the proof's key thumbprint must equal the ``dpop_jkt`` the
    authorization (or PAR) request named; compared in constant time."""
    if not isinstance(dpop_jkt, str) or not hmac.compare_digest(
        dpop_jkt.encode(), proof.jkt.encode()
    ):
        raise InvalidGrant(
            "the DPoP proof key does not match the dpop_jkt of the authorization request",
            details={
                "check": "dpop_jkt",
                "expected": dpop_jkt if isinstance(dpop_jkt, str) else None,
                "presented": proof.jkt,
                "rfc": "RFC 9449 §10",
            },
        )


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
