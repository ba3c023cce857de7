"""ASGI middleware enforcing bearer, DPoP-bound and certificate-bound tokens.

:class:`DPoPMiddleware` (alias :class:`TokenAuthMiddleware`) wraps any ASGI app
(Starlette, FastAPI, a bare callable) and a :class:`tokenlib.server.ResourceServer`.
Pure ASGI: nothing from Starlette is needed at import.

* **The request URL** that ``htu`` is compared with (RFC 9449 §4.3 check 9) is built
  from the configured ``public_base_url`` plus the raw request path — never from
  ``Host`` or ``X-Forwarded-*``, which a client controls. Only when the TCP peer is in
  ``trusted_proxies`` and no base URL is configured are ``X-Forwarded-Proto`` /
  ``X-Forwarded-Host`` used. Without either, the server's own socket address is used.
* **The client certificate** (RFC 8705 §3) comes from the TLS connection through the
  ASGI TLS extension (``scope["extensions"]["tls"]["client_cert_chain"]``, leaf first,
  PEM). uvicorn (0.54 checked) does not fill it in; run it with
  ``http=tokenlib.lab._serve.TLSScopeH11Protocol`` (what :class:`~tokenlib.lab._serve.ServedApp`
  does), or terminate TLS in a proxy that forwards ``Client-Cert`` and trust that proxy.
  From a peer in ``trusted_proxies`` the certificate is instead read from the RFC 9440
  ``Client-Cert`` header (the proxy terminated TLS); from any other peer that header is
  ignored and a warning is logged (RFC 9440 §4: accept it only from a trusted proxy).
* **The verified grant** is put in ``scope["state"]["grant"]`` (what Starlette's
  ``request.state.grant`` reads) and in ``scope["tokenlib.grant"]``.
* **Errors** become 400/401/403/503 responses with ``WWW-Authenticate`` (RFC 6750 §3,
  RFC 9449 §7.1), ``DPoP-Nonce`` (§9), ``Cache-Control: no-store`` and a JSON body
  ``{"error", "error_description"}``. Successful responses get the grant's response
  headers (a fresh ``DPoP-Nonce``).
* **CORS** for browser clients: for a configured origin, responses expose
  ``WWW-Authenticate`` and ``DPoP-Nonce`` and a preflight allows the ``DPoP`` and
  ``Authorization`` request headers (RFC 9449 §8 notes the browser case).
* **Scopes per route**: ``routes={"GET /items/*": ["items:read"], "/admin/*": ["admin"]}``
  (``fnmatch`` patterns on the path, optional method prefix, first match wins) and
  :func:`require_scopes` inside a route.

Verification runs in a worker thread by default (signature checks and a Redis replay
cache block). Nothing here logs tokens, proofs or certificates.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlsplit

import anyio.to_thread
from cryptography import x509

from tokenlib.errors import InsufficientScope, InvalidRequest, TokenError
from tokenlib.mtls import load_certificate, parse_client_cert_header
from tokenlib.server import Grant, ResourceServer

__all__ = [
    "GRANT_SCOPE_KEY",
    "DPoPMiddleware",
    "RouteScopes",
    "TokenAuthMiddleware",
    "get_grant",
    "require_scopes",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The scope key holding the verified :class:`~tokenlib.server.Grant` (also in ``state``).
GRANT_SCOPE_KEY: Final = "tokenlib.grant"
_EXPOSE: Final = "WWW-Authenticate, DPoP-Nonce"
_ALLOW_HEADERS: Final = "Authorization, DPoP, Content-Type"
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RouteScopes:
    """Required scopes for requests whose method and path match (``fnmatch`` pattern)."""

    pattern: str
    scopes: frozenset[str]
    methods: frozenset[str] | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return fnmatch.fnmatchcase(path, self.pattern)

    @classmethod
    def parse(cls, spec: str, scopes: Iterable[str]) -> RouteScopes:
        """``"GET,POST /items/*"`` or ``"/items/*"`` (any method)."""
        method_part, _, pattern = spec.strip().rpartition(" ")
        if not pattern.startswith("/"):
            raise ValueError(f"route pattern must start with '/': {spec!r}")
        methods = (
            frozenset(m.strip().upper() for m in method_part.split(",") if m.strip())
            if method_part
            else None
        )
        scope_set = frozenset([scopes] if isinstance(scopes, str) else scopes)
        return cls(pattern, scope_set, methods or None)


def _networks(values: Iterable[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"public_base_url must be an absolute http(s) URL, got {value!r}")
    if "@" in parts.netloc:
        raise ValueError("public_base_url must not contain userinfo")
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def tls_client_certificate(scope: Scope) -> x509.Certificate | None:
    """The peer's certificate from the ASGI TLS extension (the leaf of
    ``client_cert_chain``), or ``None``; ``ValueError`` if it is not a certificate."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or ()
    return load_certificate(str(chain[0])) if chain else None


def _header_values(scope: Scope, name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == name]


class DPoPMiddleware:
    """Verify the access token (and DPoP proof / client certificate) of every request.

    ``resource_server``: the configured :class:`~tokenlib.server.ResourceServer`.
    ``public_base_url``: e.g. ``"https://api.example.com"`` (a path is a prefix that a
    proxy stripped). ``trusted_proxies``: addresses/networks (``"127.0.0.1"``,
    ``"10.0.0.0/8"``) whose ``Client-Cert`` and ``X-Forwarded-*`` are believed.
    ``routes``: path pattern → required scopes (see :class:`RouteScopes`).
    ``public_paths``: patterns served without a token (health checks). ``cors_origins``:
    origins (or ``"*"``) that get the CORS headers. ``clock``: epoch seconds (tests).
    WebSocket handshakes outside ``public_paths`` are refused (close 1008) because they
    are not verified here; ``allow_websockets=True`` passes them to the app unchecked.
    If ``public_base_url`` is given here, leave the ``ResourceServer``'s unset (or the
    same): the server replaces the origin of the URL it receives with its own.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        resource_server: ResourceServer,
        public_base_url: str | None = None,
        trusted_proxies: Iterable[str] = (),
        routes: Mapping[str, Iterable[str]] | Sequence[RouteScopes] = (),
        public_paths: Iterable[str] = (),
        cors_origins: Iterable[str] = (),
        verify_in_thread: bool = True,
        clock: Callable[[], float] | None = None,
        allow_websockets: bool = False,
    ) -> None:
        self.app = app
        self._clock = clock
        self.allow_websockets = allow_websockets
        self.resource_server = resource_server
        self.public_base_url = _base_url(public_base_url) if public_base_url else None
        self.trusted_proxies = _networks(trusted_proxies)
        if isinstance(routes, Mapping):
            self.routes = tuple(RouteScopes.parse(k, v) for k, v in routes.items())
        else:
            self.routes = tuple(routes)
        self.public_paths = tuple(public_paths)
        self.cors_origins = frozenset(cors_origins)
        self.verify_in_thread = verify_in_thread

    def __repr__(self) -> str:
        return (
            f"DPoPMiddleware(public_base_url={self.public_base_url!r}, "
            f"trusted_proxies={[str(n) for n in self.trusted_proxies]!r}, "
            f"routes={len(self.routes)})"
        )

    # ----------------------------------------------------------------- request facts

    def _peer_trusted(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client or not self.trusted_proxies:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(address in net for net in self.trusted_proxies)

    def request_url(self, scope: Scope, *, trusted: bool) -> str:
        """The absolute URL the client addressed, for the ``htu`` comparison."""
        raw = scope.get("raw_path")
        path = (
            raw.decode("latin-1")
            if raw
            else quote(scope.get("path", "/"), safe="/:@!$&'()*+,;=-._~")
        )
        query = scope.get("query_string", b"")
        suffix = path + (("?" + query.decode("latin-1")) if query else "")
        if self.public_base_url is not None:
            return self.public_base_url + suffix
        if trusted:
            proto = _header_values(scope, b"x-forwarded-proto")
            host = _header_values(scope, b"x-forwarded-host")
            if proto and host:
                # The rightmost value is the one our trusted proxy (one hop) added; values
                # to its left came from the client and are not trusted.
                last_proto = proto[-1].split(",")[-1].strip()
                last_host = host[-1].split(",")[-1].strip()
                return f"{last_proto}://{last_host}{suffix}"
        scheme = scope.get("scheme", "http")
        server = scope.get("server")
        if not server:
            raise InvalidRequest(
                "the server address is unknown; configure public_base_url",
                details={"check": "htu", "rfc": "RFC 9449 §4.3"},
            )
        host_text = f"[{server[0]}]" if ":" in str(server[0]) else str(server[0])
        return f"{scheme}://{host_text}:{server[1]}{suffix}"

    def client_certificate(self, scope: Scope, *, trusted: bool) -> x509.Certificate | None:
        """The client certificate: from a trusted proxy's ``Client-Cert`` header, else
        from the TLS connection; an untrusted ``Client-Cert`` is ignored and logged."""
        header = _header_values(scope, b"client-cert")
        if trusted:
            return parse_client_cert_header(header) if header else None
        if header:
            client = scope.get("client") or ("?", 0)
            _log.warning(
                "ignoring Client-Cert header from untrusted peer %s (RFC 9440 §4)", client[0]
            )
        try:
            return tls_client_certificate(scope)
        except ValueError:
            raise InvalidRequest(
                "the TLS client certificate could not be read",
                details={"check": "client_cert", "source": "tls", "rfc": "RFC 8705 §3"},
            ) from None

    def required_scopes(self, method: str, path: str) -> frozenset[str]:
        for rule in self.routes:
            if rule.matches(method, path):
                return rule.scopes
        return frozenset()

    def _verify(self, scope: Scope, method: str, required: frozenset[str]) -> Grant:
        trusted = self._peer_trusted(scope)
        url = self.request_url(scope, trusted=trusted)
        cert = self.client_certificate(scope, trusted=trusted)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", ())]
        return self.resource_server.verify(
            method,
            url,
            headers,
            client_cert=cert,
            required_scopes=tuple(sorted(required)),
            now=self._clock() if self._clock is not None else None,
        )

    # ---------------------------------------------------------------------- responses

    def _cors_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        origin = _header_values(scope, b"origin")
        if not origin or not self.cors_origins:
            return []
        if "*" in self.cors_origins:
            allowed = "*"
        elif origin[0] in self.cors_origins:
            allowed = origin[0]
        else:
            return []
        out = [
            (b"access-control-allow-origin", allowed.encode("latin-1")),
            (b"access-control-expose-headers", _EXPOSE.encode()),
        ]
        if allowed != "*":
            out.append((b"vary", b"Origin"))
        return out

    async def _preflight(self, scope: Scope, send: Send) -> None:
        headers = self._cors_headers(scope)
        headers += [
            (b"access-control-allow-methods", b"GET, POST, PUT, PATCH, DELETE, OPTIONS"),
            (b"access-control-allow-headers", _ALLOW_HEADERS.encode()),
            (b"access-control-max-age", b"600"),
            (b"content-length", b"0"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _error(self, scope: Scope, send: Send, error: TokenError) -> None:
        body = json.dumps(error.json_body()).encode("utf-8")
        headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()
        ]
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        headers += self._cors_headers(scope)
        await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    # ---------------------------------------------------------------------------- ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "websocket" and not self.allow_websockets:
            path = str(scope.get("path", "/"))
            if not any(fnmatch.fnmatchcase(path, p) for p in self.public_paths):
                # Not verified here: refuse the handshake (the server answers 403).
                await send({"type": "websocket.close", "code": 1008})
                return
        if kind != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope.get("method", "GET")).upper()
        path = str(scope.get("path", "/"))
        cors = self._cors_headers(scope)
        if method == "OPTIONS" and cors and _header_values(scope, b"access-control-request-method"):
            await self._preflight(scope, send)
            return
        if any(fnmatch.fnmatchcase(path, p) for p in self.public_paths):
            await self.app(scope, receive, send)
            return
        required = self.required_scopes(method, path)
        try:
            if self.verify_in_thread:
                grant = await anyio.to_thread.run_sync(self._verify, scope, method, required)
            else:
                grant = self._verify(scope, method, required)
        except TokenError as error:
            # The error code, failed check and path only: never a token, proof or cert.
            _log.info("refused %s %s: %s (%s)", method, path, error.error, error.check)
            await self._error(scope, send, error)
            return
        scope.setdefault("state", {})["grant"] = grant
        scope[GRANT_SCOPE_KEY] = grant
        extra = [
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in grant.response_headers.items()
        ]
        extra += cors

        async def send_with_headers(message: Message) -> None:
            if message.get("type") == "http.response.start" and extra:
                message = dict(message)
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


TokenAuthMiddleware = DPoPMiddleware


def get_grant(request_or_scope: Any) -> Grant:
    """The verified grant of a request (a Starlette ``Request`` or an ASGI scope)."""
    scope = getattr(request_or_scope, "scope", request_or_scope)
    grant = scope.get(GRANT_SCOPE_KEY) if isinstance(scope, Mapping) else None
    if not isinstance(grant, Grant):
        raise RuntimeError("no verified grant: is the route behind DPoPMiddleware?")
    return grant


def require_scopes(*scopes: str) -> Callable[[Any], Grant]:
    """A route helper / FastAPI dependency: the grant, or HTTP 403 ``insufficient_scope``.

    ``grant = require_scopes("items:write")(request)`` in a Starlette endpoint, or
    ``grant: Grant = Depends(require_scopes("items:write"))`` in FastAPI. The refusal is
    a Starlette ``HTTPException`` carrying the RFC 6750 §3.1 challenge headers.
    """
    needed = frozenset(scopes)

    def dependency(request: Any) -> Grant:
        grant = get_grant(request)
        missing = needed - grant.scopes
        if missing:
            from starlette.exceptions import HTTPException

            error = InsufficientScope(
                "the access token lacks a scope this resource requires",
                details={"check": "scope", "required": sorted(needed), "missing": sorted(missing)},
                scheme="DPoP" if grant.binding in ("dpop", "dpop+mtls") else "Bearer",
            )
            raise HTTPException(403, detail=error.description, headers=error.headers)
        return grant

    try:
        from starlette.requests import Request

        dependency.__annotations__ = {"request": Request, "return": Grant}
    except ImportError:  # pragma: no cover - starlette is optional
        pass
    return dependency
