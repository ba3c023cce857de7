"""A deliberately weak resource server, for showing what :mod:`tokenlib.probe` finds.

NEVER deploy this. :class:`WeakResourceServer` is an ASGI app that verifies access tokens
and DPoP proofs with tokenlib's core, but with the mistakes deployed servers have made
(each one selectable, all on by default):

``bearer_downgrade``
    accepts a DPoP-bound token sent with the ``Bearer`` scheme and no proof (RFC 9449 §7.2
    says refuse; Keycloak #36476).
``no_replay_store``
    records no proof ``jti``: a captured proof is accepted again inside its ``iat`` window
    (RFC 9449 §11.1; Keycloak #43505).
``raw_htu``
    compares ``htu`` to the request URL as raw strings, query included and without RFC 3986
    normalisation (RFC 9449 §4.3 check 9): conforming clients are refused.
``trusts_client_cert``
    believes a ``Client-Cert`` header from any peer (RFC 9440 §4): anyone holding a
    stolen certificate-bound token and the (public) certificate gets in.

Everything else is done right (token signature and claims, every other proof check,
``cnf.jkt`` and ``cnf.x5t#S256`` matching, challenges), so a probe reports exactly the
seeded weaknesses: :data:`WEAKNESS_CHECKS` maps each to the probe checks it fails.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any, Final

from tokenlib._headers import collect, multiple_dpop_fields
from tokenlib.bearer import TokenVerifier
from tokenlib.dpop import verify_proof
from tokenlib.errors import (
    InvalidDPoPProof,
    InvalidRequest,
    InvalidToken,
    MissingToken,
    TokenError,
)
from tokenlib.integrations.asgi import tls_client_certificate
from tokenlib.jwk import DEFAULT_ALGORITHMS
from tokenlib.jwks import JWKSet
from tokenlib.lab._serve import answer_lifespan
from tokenlib.mtls import parse_client_cert_header, verify_certificate_binding
from tokenlib.replay import MemoryReplayCache, ReplayCache

__all__ = ["WEAKNESSES", "WEAKNESS_CHECKS", "WeakResourceServer"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

WEAKNESSES: Final = ("bearer_downgrade", "no_replay_store", "raw_htu", "trusts_client_cert")
#: The probe checks each weakness fails (and, all weaknesses off, none of these fail).
WEAKNESS_CHECKS: Final[Mapping[str, frozenset[str]]] = {
    "bearer_downgrade": frozenset({"dpop.bearer_downgrade", "dpop.bearer_downgrade_with_proof"}),
    "no_replay_store": frozenset({"dpop.jti_replayed"}),
    "raw_htu": frozenset(
        {"dpop.htu_query", "dpop.htu_fragment", "dpop.htu_default_port", "dpop.htu_case"}
    ),
    "trusts_client_cert": frozenset({"mtls.injected_client_cert"}),
}


class _NoReplayStore:
    """A replay store that has never seen anything (the ``no_replay_store`` weakness)."""

    def check_and_store(
        self, key: str, *, expires_at: float, now: float, owner: str | None = None
    ) -> bool:
        return True


def _claim_htu(proof: str) -> object:
    parts = proof.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    return claims.get("htu") if isinstance(claims, dict) else None


class WeakResourceServer:
    """The weak RS as an ASGI app answering ``{"ok": true, "weak": true}`` when it accepts.

    ``public_base_url``: the URL clients use (``htu`` base). ``weaknesses``: which of
    :data:`WEAKNESSES` to seed (default: all).
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks: JWKSet | Mapping[str, Any],
        public_base_url: str,
        weaknesses: Iterable[str] = WEAKNESSES,
    ) -> None:
        self.weaknesses = frozenset(weaknesses)
        unknown = self.weaknesses - set(WEAKNESSES)
        if unknown:
            raise ValueError(f"unknown weaknesses {sorted(unknown)}; choose from {WEAKNESSES}")
        self.verifier = TokenVerifier(issuer=issuer, audience=audience, jwks=jwks)
        self.public_base_url = public_base_url.rstrip("/")
        self.replay: ReplayCache = (
            _NoReplayStore() if "no_replay_store" in self.weaknesses else MemoryReplayCache()
        )

    def __repr__(self) -> str:
        return f"WeakResourceServer(weaknesses={sorted(self.weaknesses)!r})"

    def _url(self, scope: Scope) -> str:
        raw = scope.get("raw_path") or str(scope.get("path", "/")).encode()
        query = scope.get("query_string", b"")
        suffix = raw.decode("latin-1") + (("?" + query.decode("latin-1")) if query else "")
        return self.public_base_url + suffix

    def _cert(self, scope: Scope, headers: list[tuple[str, str]]) -> Any:
        injected = [v for k, v in headers if k.lower() == "client-cert"]
        if injected and "trusts_client_cert" in self.weaknesses:
            return parse_client_cert_header(injected)  # from anyone: the weakness
        return tls_client_certificate(scope)

    def verify(self, scope: Scope) -> None:
        """Raise :class:`~tokenlib.errors.TokenError` unless the request is accepted."""
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        method = str(scope.get("method", "GET")).upper()
        authorization, proofs = collect(headers)
        if len(authorization) > 1:
            raise InvalidRequest("Multiple methods used to include access token")
        if not authorization:
            raise MissingToken("no access token was presented")
        scheme, _, raw = authorization[0].partition(" ")
        scheme, raw = scheme.lower(), raw.strip()
        if scheme not in ("dpop", "bearer") or not raw:
            raise MissingToken("the authorization scheme is not supported here")
        token = self.verifier.verify(raw)
        if scheme == "dpop":
            if token.jkt is None:
                raise InvalidToken("the access token is not DPoP-bound")
            if len(proofs) > 1:
                raise multiple_dpop_fields(len(proofs))
            if not proofs:
                raise InvalidDPoPProof("the DPoP scheme requires a DPoP proof header")
            url = self._url(scope)
            if "raw_htu" in self.weaknesses and _claim_htu(proofs[0]) != url:
                raise InvalidDPoPProof("the DPoP proof htu does not match the request URI")
            try:
                verify_proof(
                    proofs[0],
                    htm=method,
                    htu=url,
                    access_token=raw,
                    replay_cache=self.replay,
                    expected_jkt=token.jkt,
                )
            except InvalidDPoPProof as err:
                if err.check == "jkt":
                    raise InvalidToken("Invalid DPoP key binding") from None
                raise
        elif token.jkt is not None and "bearer_downgrade" not in self.weaknesses:
            raise InvalidToken("a DPoP-bound access token must be sent with the DPoP scheme")
        if token.x5t_s256 is not None:
            verify_certificate_binding(token, self._cert(scope, headers))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        status, body, extra = 200, b'{"ok":true,"weak":true}', []
        try:
            self.verify(scope)
        except TokenError as err:
            scheme = "DPoP" if err.scheme is None or err.scheme == "DPoP" else err.scheme
            err.with_context(
                scheme=scheme,
                algs=DEFAULT_ALGORITHMS if scheme == "DPoP" else (),
                extra_challenges=["Bearer"] if scheme == "DPoP" else ["DPoP"],
            )
            status, body = err.status_code, json.dumps(err.json_body()).encode()
            extra = [
                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in err.headers.items()
            ]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
