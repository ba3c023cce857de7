"""A small OAuth authorization server for prototypes and the lab — not a production AS.

:class:`LabAuthorizationServer` is a pure ASGI app with:

* ``POST /token`` — the client-credentials grant (RFC 6749 §4.4) and the refresh-token
  grant (§6). Client authentication: ``private_key_jwt`` (RFC 7523 §2.2, assertion
  checked per §3: ``iss``/``sub`` = client, ``aud`` = token endpoint or issuer, ``exp``,
  single-use ``jti``), ``tls_client_auth`` (the TLS-verified certificate's subject DN,
  RFC 8705 §2.1), ``self_signed_tls_client_auth`` (a registered certificate thumbprint,
  §2.2) or ``none`` (public clients; refresh only). Issued access tokens (RFC 9068) are
  DPoP-bound (``cnf.jkt``, ``token_type: DPoP``, RFC 9449 §5/§6) when the request has a
  valid proof, certificate-bound (``cnf.x5t#S256``, RFC 8705 §3) when it came over mTLS,
  or plain bearer — as each client's registration allows. Optional AS nonces: ``400
  use_dpop_nonce`` with a ``DPoP-Nonce`` header (RFC 9449 §8). Refresh tokens rotate on
  use; a public client's refresh token is bound to its DPoP key (RFC 9449 §5).
* ``GET /jwks`` — the signing key set; ``GET /.well-known/oauth-authorization-server``
  — RFC 8414 metadata with ``dpop_signing_alg_values_supported`` (RFC 9449 §5.1) and
  ``tls_client_certificate_bound_access_tokens`` (RFC 8705 §3.3).
* ``POST /introspect`` — RFC 7662, for authenticated clients; the response keeps
  ``cnf`` and says ``token_type: DPoP`` for DPoP-bound tokens.

Certificates come from the TLS connection (ASGI TLS extension, see
:mod:`tokenlib.lab._serve`); the server's TLS context decides which are accepted.
Python's ``ssl`` cannot request a client certificate without validating it, so for
``self_signed_tls_client_auth`` load each registered self-signed certificate into the
context as a trust anchor (``ctx.load_verify_locations(cadata=pem)``).

Replay state (RFC 9449 §11.1, RFC 7523 §3): a proof's ``jti`` is checked first (so a
nonce demand comes before the client assertion is spent) but *recorded* only after the
client authenticated — unauthenticated requests add nothing — and each store holds at
most 1,000 live entries per client (a public client: per DPoP key), so one client cannot
fill it for the others (429 with ``Retry-After``).

What it is not: there is no authorization endpoint, user, consent, revocation
endpoint, persistent storage, general rate limiting, key rotation or clustering; state
(refresh tokens, assertion ``jti``s) is in memory. Use it to try tokenlib and to run
the lab on loopback, never to protect real data.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import parse_qsl

from cryptography import x509

from tokenlib import _jws
from tokenlib.bearer import Issuer, verify_access_token
from tokenlib.binding import Binding
from tokenlib.dpop import DPoPPolicy
from tokenlib.errors import InvalidDPoPProof, InvalidToken, TokenError
from tokenlib.integrations.asgi import tls_client_certificate
from tokenlib.introspection import introspect
from tokenlib.jwk import ALGORITHMS, DEFAULT_ALGORITHMS, PrivateKey, generate_key
from tokenlib.jwks import JWKSet
from tokenlib.lab._serve import ServedApp, answer_lifespan
from tokenlib.mtls import cert_thumbprint
from tokenlib.nonce import NonceManager
from tokenlib.replay import MemoryReplayCache
from tokenlib.token_endpoint import TOKEN_ENDPOINT_MAX_PER_CLIENT, TokenEndpoint, TokenRequest

__all__ = ["ClientRegistration", "LabAuthorizationServer", "OAuthError"]

AuthMethod = Literal["private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth", "none"]
#: A registration's binding policy: a :class:`tokenlib.binding.Binding` name, or "auto".
RegisteredBinding = Literal["auto", Binding.DPOP, Binding.MTLS, Binding.BEARER]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CLIENT_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_MAX_BODY: Final = 64 * 1024
_MAX_ASSERTION_LIFETIME: Final = 300
_log = logging.getLogger(__name__)


class OAuthError(Exception):
    """A token-endpoint error response (RFC 6749 §5.2): ``error`` code, HTTP status."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class ClientRegistration:
    """One registered client.

    ``auth_method`` and its material: ``jwks`` (public keys) for ``private_key_jwt``;
    ``subject_dn`` (RFC 4514, e.g. ``"CN=alice,O=tokenlib lab"``) for ``tls_client_auth``;
    ``cert_thumbprints`` (``x5t#S256``) for ``self_signed_tls_client_auth``.
    ``binding``: ``"dpop"``/``"mtls"`` require that binding for issued tokens,
    ``"bearer"`` issues unbound tokens, ``"auto"`` binds to whatever the request proves.
    ``refresh_tokens``: also issue a (rotating) refresh token.
    """

    client_id: str
    auth_method: AuthMethod = "private_key_jwt"
    jwks: Mapping[str, Any] | None = field(default=None, repr=False)
    subject_dn: str | None = None
    cert_thumbprints: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    binding: RegisteredBinding = "auto"
    refresh_tokens: bool = False

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ValueError("client_id must be non-empty")
        if self.auth_method == "private_key_jwt" and not self.jwks:
            raise ValueError(f"client {self.client_id!r}: private_key_jwt needs jwks")
        if self.auth_method == "tls_client_auth" and not self.subject_dn:
            raise ValueError(f"client {self.client_id!r}: tls_client_auth needs subject_dn")
        if self.auth_method == "self_signed_tls_client_auth" and not self.cert_thumbprints:
            raise ValueError(
                f"client {self.client_id!r}: self_signed_tls_client_auth needs cert_thumbprints"
            )


@dataclass(slots=True)
class _RefreshRecord:
    client_id: str
    scope: frozenset[str]
    audience: tuple[str, ...]
    expires_at: float
    jkt: str | None


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    headers: list[tuple[str, str]]
    form: dict[str, str]
    client_cert: x509.Certificate | None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


class LabAuthorizationServer:
    """The lab authorization server as an ASGI app (see the module docstring).

    ``issuer``: its public base URL (``https://127.0.0.1:8443``); may be set later with
    :meth:`set_issuer` (e.g. once an ephemeral port is known) but before the first
    request. ``audience``: the resource identifier(s) tokens are for; a request may pick
    one with RFC 8707 ``resource``. ``require_nonce``: demand AS-issued DPoP nonces.
    ``clock``: epoch seconds, for tests.
    """

    def __init__(
        self,
        *,
        issuer: str | None = None,
        audience: str | Sequence[str] = "https://rs.lab.invalid",
        clients: Iterable[ClientRegistration] = (),
        signing_key: PrivateKey | None = None,
        access_token_lifetime: int = 300,
        refresh_token_lifetime: int = 3600,
        require_nonce: bool = False,
        nonce_secret: bytes | None = None,
        dpop_policy: DPoPPolicy | None = None,
        dpop_algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.audiences = (audience,) if isinstance(audience, str) else tuple(audience)
        if not self.audiences:
            raise ValueError("at least one audience is required")
        self.clients: dict[str, ClientRegistration] = {c.client_id: c for c in clients}
        self._signing_key = signing_key if signing_key is not None else generate_key("ES256")
        self.access_token_lifetime = access_token_lifetime
        self.refresh_token_lifetime = refresh_token_lifetime
        self.require_nonce = require_nonce
        self._nonce_secret = nonce_secret if nonce_secret is not None else secrets.token_bytes(32)
        self.dpop_policy = dpop_policy or DPoPPolicy(algorithms=tuple(dpop_algorithms))
        self._clock = clock or time.time
        self._dpop_replay = MemoryReplayCache(max_per_owner=TOKEN_ENDPOINT_MAX_PER_CLIENT)
        self._assertion_replay = MemoryReplayCache(max_per_owner=TOKEN_ENDPOINT_MAX_PER_CLIENT)
        self._refresh: dict[str, _RefreshRecord] = {}
        self._lock = threading.Lock()
        self._issuer: Issuer | None = None
        self._nonces: NonceManager | None = None
        self._endpoint: TokenEndpoint | None = None
        self.issuer_url: str | None = None
        if issuer is not None:
            self.set_issuer(issuer)

    def __repr__(self) -> str:
        return (
            f"LabAuthorizationServer(issuer={self.issuer_url!r}, clients={sorted(self.clients)!r})"
        )

    def set_issuer(self, issuer: str) -> None:
        """Fix the issuer URL (no trailing slash); endpoints are ``{issuer}/token`` etc."""
        issuer = issuer.rstrip("/")
        if not issuer.startswith(("https://", "http://")):
            raise ValueError("issuer must be an absolute http(s) URL")
        self.issuer_url = issuer
        self._issuer = Issuer(issuer, self._signing_key, lifetime=self.access_token_lifetime)
        self._nonces = NonceManager(self._nonce_secret, context=issuer.encode())
        self._endpoint = TokenEndpoint(
            f"{issuer}/token",
            replay_cache=self._dpop_replay,
            policy=self.dpop_policy,
            require_nonce=self.require_nonce,
            nonce_manager=self._nonces,
        )

    def serve(self, *, ssl_context: ssl.SSLContext | None = None, **kwargs: Any) -> ServedApp:
        """Start this server on 127.0.0.1 (ephemeral port) with its issuer set to the URL.

        ``with lab_as.serve(ssl_context=pki.server_context()) as served: ...``
        """
        served = ServedApp(self, ssl_context=ssl_context, **kwargs)
        self.set_issuer(served.bind())
        return served.start()

    def register(self, client: ClientRegistration) -> None:
        self.clients[client.client_id] = client

    @property
    def token_endpoint(self) -> str:
        return f"{self._require_issuer().issuer}/token"

    def _require_issuer(self) -> Issuer:
        if self._issuer is None:
            raise RuntimeError("set_issuer() must be called before the server handles requests")
        return self._issuer

    def jwks(self) -> dict[str, Any]:
        return dict(self._require_issuer().jwks())

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 §2 metadata."""
        base = self._require_issuer().issuer
        return {
            "issuer": base,
            "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/jwks",
            "introspection_endpoint": f"{base}/introspect",
            "grant_types_supported": ["client_credentials", "refresh_token"],
            "response_types_supported": [],
            "scopes_supported": sorted(set().union(*(c.scopes for c in self.clients.values()))),
            "token_endpoint_auth_methods_supported": [
                "private_key_jwt",
                "tls_client_auth",
                "self_signed_tls_client_auth",
                "none",
            ],
            "token_endpoint_auth_signing_alg_values_supported": list(DEFAULT_ALGORITHMS),
            "introspection_endpoint_auth_methods_supported": [
                "private_key_jwt",
                "tls_client_auth",
                "self_signed_tls_client_auth",
            ],
            "dpop_signing_alg_values_supported": list(self.dpop_policy.algorithms),
            "tls_client_certificate_bound_access_tokens": True,
        }

    def mint_refresh_token(
        self, client_id: str, *, scope: Iterable[str] = (), jkt: str | None = None
    ) -> str:
        """A refresh token as if from an earlier authorization-code flow (the lab has no
        authorization endpoint). ``jkt`` binds it to a DPoP key (RFC 9449 §5)."""
        if client_id not in self.clients:
            raise ValueError(f"unknown client {client_id!r}")
        return self._store_refresh(client_id, frozenset(scope), self.audiences[:1], jkt)

    def _store_refresh(
        self, client_id: str, scope: frozenset[str], audience: tuple[str, ...], jkt: str | None
    ) -> str:
        token = secrets.token_urlsafe(32)
        record = _RefreshRecord(
            client_id, scope, audience, self._clock() + self.refresh_token_lifetime, jkt
        )
        with self._lock:
            self._refresh[_digest(token)] = record
        return token

    # ------------------------------------------------------------------ client auth

    def _authenticate(self, req: _Request, now: float) -> ClientRegistration:
        form = req.form
        if "client_assertion" in form or "client_assertion_type" in form:
            return self._authenticate_assertion(form, now)
        client_id = form.get("client_id")
        client = self.clients.get(client_id or "")
        if client is None:
            raise OAuthError(
                "invalid_client", "unknown client or no client authentication", status=401
            )
        if client.auth_method == "private_key_jwt":
            raise OAuthError(
                "invalid_client", "this client must authenticate with private_key_jwt", status=401
            )
        if client.auth_method == "none":
            return client
        cert = req.client_cert
        if cert is None:
            raise OAuthError(
                "invalid_client",
                "no client certificate on the TLS connection (RFC 8705 §2)",
                status=401,
            )
        if client.auth_method == "tls_client_auth":
            if cert.subject.rfc4514_string() != client.subject_dn:
                raise OAuthError(
                    "invalid_client",
                    "client certificate subject does not match (RFC 8705 §2.1.2)",
                    status=401,
                )
            return client
        thumbprint = cert_thumbprint(cert)
        if not any(hmac.compare_digest(thumbprint, t) for t in client.cert_thumbprints):
            raise OAuthError(
                "invalid_client", "client certificate is not registered (RFC 8705 §2.2)", status=401
            )
        return client

    def _authenticate_assertion(self, form: Mapping[str, str], now: float) -> ClientRegistration:
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise OAuthError(
                "invalid_client", "unsupported client_assertion_type (RFC 7523 §2.2)", status=401
            )
        assertion = form.get("client_assertion", "")
        try:
            parsed = _jws.parse(
                assertion, max_length=8192, error=InvalidToken, what="client assertion"
            )
        except TokenError:
            raise OAuthError("invalid_client", "malformed client assertion", status=401) from None
        claims = parsed.payload
        client_id = claims.get("iss")
        client = self.clients.get(client_id) if isinstance(client_id, str) else None
        if client is None or client.auth_method != "private_key_jwt" or client.jwks is None:
            raise OAuthError(
                "invalid_client", "unknown client or not registered for private_key_jwt", status=401
            )
        if form.get("client_id", client.client_id) != client.client_id:
            raise OAuthError(
                "invalid_client", "client_id does not match the assertion issuer", status=401
            )
        alg = parsed.header.get("alg")
        kid = parsed.header.get("kid")
        try:
            key = JWKSet.from_dict(client.jwks).select(
                kid if isinstance(kid, str) else None, str(alg)
            )
            _jws.verify_signature(
                parsed, key, algorithms=ALGORITHMS, error=InvalidToken, what="client assertion"
            )
        except TokenError:
            raise OAuthError(
                "invalid_client", "client assertion signature does not verify", status=401
            ) from None
        base = self._require_issuer().issuer
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if claims.get("sub") != client.client_id:
            raise OAuthError(
                "invalid_client", "assertion sub must be the client_id (RFC 7523 §3)", status=401
            )
        if not any(a in (f"{base}/token", base) for a in auds):
            raise OAuthError(
                "invalid_client",
                "assertion aud is not this token endpoint (RFC 7523 §3)",
                status=401,
            )
        exp, iat, jti = claims.get("exp"), claims.get("iat", now), claims.get("jti")
        if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now:
            raise OAuthError(
                "invalid_client", "assertion is expired or has no exp (RFC 7523 §3)", status=401
            )
        if (
            not isinstance(iat, int | float)
            or iat > now + 60
            or exp - now > _MAX_ASSERTION_LIFETIME
        ):
            raise OAuthError(
                "invalid_client", "assertion iat/exp outside the accepted window", status=401
            )
        if not isinstance(jti, str) or not jti:
            raise OAuthError("invalid_client", "assertion has no jti", status=401)
        key_id = hashlib.sha256(f"assertion:{client.client_id}:{jti}".encode()).hexdigest()
        if not self._assertion_replay.check_and_store(
            key_id, expires_at=float(exp), now=now, owner=client.client_id
        ):
            raise OAuthError(
                "invalid_client", "client assertion jti was already used (RFC 7523 §3)", status=401
            )
        return client

    # ------------------------------------------------------------------------- DPoP

    def _proof(self, req: _Request, now: float, *, refresh_jkt: str | None) -> TokenRequest:
        """The request's DPoP proof, checked by :class:`tokenlib.token_endpoint.TokenEndpoint`
        (one ``DPoP`` field, RFC 9449 §4.3, AS nonces, the refresh token's key, §5)."""
        if self._endpoint is None:
            raise RuntimeError("set_issuer() must be called before the server handles requests")
        return self._endpoint.check(req.headers, refresh_token_jkt=refresh_jkt, now=now)

    def _record_proof(self, checked: TokenRequest, client: ClientRegistration, now: float) -> None:
        """Record the proof's ``jti`` once the client is authenticated (RFC 9449 §11.1):
        an unauthenticated request adds nothing to the replay store, and each client
        (a public client: each DPoP key, its refresh token already validated) only fills
        its own quota."""
        if self._endpoint is None:
            raise RuntimeError("set_issuer() must be called before the server handles requests")
        owner = None if client.auth_method == "none" else client.client_id
        self._endpoint.record(checked, client_id=owner, now=now)

    # ------------------------------------------------------------------------ grants

    def _token(self, req: _Request, now: float) -> tuple[dict[str, Any], dict[str, str]]:
        form = req.form
        grant_type = form.get("grant_type")
        if grant_type not in ("client_credentials", "refresh_token"):
            raise OAuthError(
                "unsupported_grant_type", "supported: client_credentials, refresh_token"
            )
        # Order matters: the proof is checked (and a nonce demanded) before client
        # authentication, so a nonce retry does not find its client assertion's jti
        # already used; the proof's jti is recorded only after the client (and its
        # refresh token) passed, so unauthenticated requests cannot fill the replay
        # store; the refresh token is only consumed once everything passed.
        refresh_token = form.get("refresh_token", "")
        peeked = self._peek_refresh(refresh_token, now) if grant_type == "refresh_token" else None
        checked = self._proof(req, now, refresh_jkt=peeked.jkt if peeked is not None else None)
        proof = checked.proof
        client = self._authenticate(req, now)
        if peeked is not None and peeked.client_id != client.client_id:
            raise OAuthError("invalid_grant", "refresh token was issued to another client")
        self._record_proof(checked, client, now)
        if peeked is None:
            if client.auth_method == "none":
                raise OAuthError(
                    "unauthorized_client",
                    "public clients cannot use client_credentials (RFC 6749 §4.4)",
                )
            scope = self._scope(form.get("scope"), client.scopes)
            audience = self._audience(form.get("resource"))
            record: _RefreshRecord | None = None
        else:
            if peeked.client_id != client.client_id:
                raise OAuthError("invalid_grant", "refresh token was issued to another client")
            record = self._consume_refresh(refresh_token)
            scope = (
                self._scope(form.get("scope"), record.scope) if form.get("scope") else record.scope
            )
            audience = record.audience
        jkt, x5t = self._binding(client, proof, req.client_cert)
        issuer = self._require_issuer()
        token = issuer.issue(
            subject=client.client_id, client_id=client.client_id, audience=list(audience),
            scope=sorted(scope), jkt=jkt, x5t_s256=x5t, now=now,
        )  # fmt: skip
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "DPoP" if jkt else "Bearer",
            "expires_in": issuer.lifetime,
            "scope": " ".join(sorted(scope)),
        }
        if client.refresh_tokens or record is not None:
            # Public clients: bound to the DPoP key; confidential clients: to client auth.
            bound_jkt = (record.jkt if record is not None else None) or (
                jkt if client.auth_method == "none" else None
            )
            body["refresh_token"] = self._store_refresh(
                client.client_id, scope, audience, bound_jkt
            )
        return body, checked.response_headers

    def _scope(self, requested: str | None, allowed: frozenset[str]) -> frozenset[str]:
        if not requested:
            return allowed
        wanted = frozenset(requested.split())
        if not wanted <= allowed:
            raise OAuthError("invalid_scope", f"not allowed: {' '.join(sorted(wanted - allowed))}")
        return wanted

    def _audience(self, resource: str | None) -> tuple[str, ...]:
        if resource is None:
            return self.audiences[:1]
        if resource not in self.audiences:
            raise OAuthError("invalid_target", "unknown resource (RFC 8707 §2)")
        return (resource,)

    def _peek_refresh(self, token: str, now: float) -> _RefreshRecord:
        with self._lock:
            record = self._refresh.get(_digest(token)) if token else None
        if record is None or record.expires_at <= now:
            raise OAuthError("invalid_grant", "unknown, used or expired refresh token")
        return record

    def _consume_refresh(self, token: str) -> _RefreshRecord:
        with self._lock:
            record = self._refresh.pop(_digest(token), None)
        if record is None:  # a concurrent request used it first
            raise OAuthError("invalid_grant", "unknown, used or expired refresh token")
        return record

    def _binding(
        self, client: ClientRegistration, proof: Any, cert: x509.Certificate | None
    ) -> tuple[str | None, str | None]:
        if client.binding == Binding.BEARER:
            return None, None
        if client.binding == Binding.DPOP and proof is None:
            raise InvalidDPoPProof(
                "this client must send a DPoP proof",
                details={"check": "presence", "rfc": "RFC 9449 §5"},
            ).with_context(endpoint="token")
        if client.binding == Binding.MTLS and cert is None:
            raise OAuthError("invalid_request", "this client must use mutual TLS (RFC 8705 §3)")
        if proof is not None and client.binding in ("auto", Binding.DPOP):
            return str(proof.jkt), None
        if cert is not None and client.binding in ("auto", Binding.MTLS):
            return None, cert_thumbprint(cert)
        return None, None

    def _introspect(self, req: _Request, now: float) -> dict[str, Any]:
        client = self._authenticate(req, now)
        if client.auth_method == "none":
            raise OAuthError(
                "invalid_client", "introspection needs an authenticated client", status=401
            )
        token = req.form.get("token")
        if not token:
            raise OAuthError("invalid_request", "missing token parameter (RFC 7662 §2.1)")
        issuer = self._require_issuer()
        try:
            verified = verify_access_token(
                token,
                issuer=issuer.issuer,
                audience=list(self.audiences),
                jwks=issuer.jwks(),
                now=now,
            )
        except TokenError:
            return introspect(None)
        return introspect(verified, now=now)

    # -------------------------------------------------------------------------- ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method = scope["method"]
        path = scope["path"]
        now = self._clock()
        try:
            if path == "/.well-known/oauth-authorization-server" and method == "GET":
                await _json(send, 200, self.metadata(), cache=False)
            elif path == "/jwks" and method == "GET":
                await _json(send, 200, self.jwks(), cache=False)
            elif path in ("/token", "/introspect"):
                if method != "POST":
                    raise OAuthError("invalid_request", "use POST", status=405)
                req = await _read_request(scope, receive)
                if path == "/token":
                    body, headers = self._token(req, now)
                    await _json(send, 200, body, headers=headers)
                else:
                    await _json(send, 200, self._introspect(req, now))
            else:
                await _json(send, 404, {"error": "not_found"})
        except OAuthError as err:
            _log.info("token endpoint refused a request: %s", err.error)
            await _json(
                send,
                err.status,
                {"error": err.error, "error_description": err.description},
                headers=err.headers,
            )
        except TokenError as err:
            _log.info("token endpoint refused a DPoP proof: %s (%s)", err.error, err.check)
            await _json(send, err.status_code, err.json_body(), headers=err.headers)


async def _read_request(scope: Scope, receive: Receive) -> _Request:
    headers = [
        (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers", ())
    ]
    content_type = next((v for k, v in headers if k == "content-type"), "")
    if content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise OAuthError("invalid_request", "client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            raise OAuthError("invalid_request", "request body too large", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    try:
        pairs = parse_qsl(
            b"".join(chunks).decode("utf-8"), keep_blank_values=True, strict_parsing=False
        )
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "the body is not UTF-8") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise OAuthError("invalid_request", f"parameter {key!r} repeated (RFC 6749 §3.2)")
        form[key] = value
    return _Request(scope["method"], scope["path"], headers, form, tls_client_certificate(scope))


async def _json(
    send: Send,
    status: int,
    body: Mapping[str, Any],
    *,
    headers: Mapping[str, str] | None = None,
    cache: bool = True,
) -> None:
    data = json.dumps(body).encode("utf-8")
    out = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if cache:
        out += [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
    for key, value in (headers or {}).items():
        if key.lower() in ("cache-control", "content-type", "content-length"):
            continue
        out.append((key.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": data})
