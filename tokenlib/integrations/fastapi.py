"""FastAPI: a ``Security(...)`` dependency verifying bearer, DPoP- and certificate-bound tokens.

::

    rs = ResourceServer(issuer=AS, audience=API, jwks=JWKS)
    auth = TokenSecurity(rs, public_base_url="https://api.example.com")
    app = FastAPI()

    @app.get("/items")
    async def items(grant: Grant = Security(auth, scopes=["items:read"])):
        return {"client": grant.client_id}

* :class:`TokenSecurity` is a FastAPI security scheme (``SecurityBase``): OpenAPI shows an
  ``http`` scheme named after the server's first scheme (``DPoP``), and each operation lists
  the scopes of its ``Security(..., scopes=[...])`` (all of them, merged by FastAPI through
  ``SecurityScopes``). The dependency returns the :class:`~tokenlib.server.Grant`.
* Verification never stalls the event loop: with an async replay store (e.g. the asyncio
  Redis store) :meth:`ResourceServer.averify <tokenlib.server.ResourceServer.averify>`
  bounded by ``replay_timeout`` (a hung store costs DPoP requests a 503, bearer requests
  nothing); with the in-process memory store inline; with a blocking store in a worker
  thread. RFC 6750, RFC 9449 §7 and RFC 8705 §3 checks, then the required scopes.
* Failures raise :class:`TokenHTTPException` (a FastAPI ``HTTPException``): status 400 /
  401 / 403 / 429 / 503 with the exact ``WWW-Authenticate`` of the
  :class:`~tokenlib.errors.TokenError` (plus ``resource_metadata``, RFC 9728 §5.1, when
  configured), ``DPoP-Nonce`` and ``Cache-Control: no-store``; the body is
  ``{"detail": {"error", "error_description"}}``. A rotated ``DPoP-Nonce`` is added to
  successful responses (for endpoints returning data rather than a ``Response`` object,
  as FastAPI merges dependency headers only then).
* **htu** is ``public_base_url`` (here or on the ``ResourceServer``) plus the raw path;
  without it the server's socket address, or — for a trusted proxy only — its rightmost
  ``X-Forwarded-Proto``/``-Host``. Never the ``Host`` header.
* **Trust boundary**: forwarded certificate headers (``client_cert_source``, see
  :mod:`tokenlib.integrations.certs`) and ``X-Forwarded-*`` are believed only when the
  *transport* peer is in ``trusted_proxies``. The peer is ``scope["client"]``, which
  uvicorn rewrites from ``X-Forwarded-For`` by default; when trust matters, each request
  is compared with the connection (:mod:`tokenlib.integrations.asgi`'s check) and a
  rewritten peer gets HTTP 500 and an ERROR log naming the fix (``uvicorn
  --no-proxy-headers``) — never a forwarded header believed on the server's word.
* :meth:`TokenSecurity.add_metadata_route` serves RFC 9728 protected-resource metadata.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.openapi.models import HTTPBase
from fastapi.responses import JSONResponse
from fastapi.security import SecurityScopes
from fastapi.security.base import SecurityBase

from tokenlib.errors import InsufficientScope, TokenError
from tokenlib.integrations import asgi as _asgi
from tokenlib.integrations._framework import Guard, log_safe
from tokenlib.integrations._trust import TrustedProxies
from tokenlib.metadata import protected_resource_metadata_path
from tokenlib.server import Grant, ResourceServer

__all__ = ["TokenHTTPException", "TokenSecurity"]

_log = logging.getLogger("tokenlib.integrations")
_GRANT_KEY: Final = "tokenlib.grant"


class TokenHTTPException(HTTPException):
    """The ``HTTPException`` for a refused request; ``token_error`` is the
    :class:`~tokenlib.errors.TokenError` (its ``explain()`` view for logs)."""

    def __init__(self, error: TokenError, headers: Mapping[str, str]) -> None:
        super().__init__(error.status_code, detail=error.json_body(), headers=dict(headers))
        self.token_error = error


# The per-request connection check of tokenlib.integrations.asgi (scope["client"] and
# scope["scheme"] against the server's transport). Resolved at import: if it ever goes
# missing, importing this module fails rather than silently skipping the check.
_transport_mismatch: Callable[[Any, Any], str | None] = (
    getattr(_asgi, "transport_mismatch", None) or _asgi._transport_mismatch
)


def _transport_problem(request: Request) -> str | None:
    return _transport_mismatch(request.scope, request.receive)


class TokenSecurity(SecurityBase):
    """The dependency: ``Security(auth, scopes=[...])`` → :class:`~tokenlib.server.Grant`.

    ``resource_server``: the configured :class:`~tokenlib.server.ResourceServer`.
    ``public_base_url``, ``trusted_proxies``, ``client_cert_source``,
    ``client_cert_header``, ``resource_metadata`` (RFC 9728 metadata URL for challenges)
    ``clock`` and ``replay_timeout`` (an async replay store's bound before 503): see
    :mod:`tokenlib.integrations._framework`. ``scheme_name`` /
    ``description``: how OpenAPI names and describes the scheme.
    """

    def __init__(
        self,
        resource_server: ResourceServer,
        *,
        public_base_url: str | None = None,
        trusted_proxies: Iterable[str] | TrustedProxies = (),
        client_cert_source: str = "rfc9440",
        client_cert_header: str | None = None,
        resource_metadata: str | None = None,
        scheme_name: str | None = None,
        description: str | None = None,
        clock: Any = None,
        replay_timeout: float = 1.0,
    ) -> None:
        self.guard = Guard(
            resource_server,
            public_base_url=public_base_url,
            trusted_proxies=trusted_proxies,
            client_cert_source=client_cert_source,
            client_cert_header=client_cert_header,
            resource_metadata=resource_metadata,
            clock=clock,
            replay_timeout=replay_timeout,
        )
        schemes = resource_server.schemes
        self.scheme_name = scheme_name or schemes[0]
        text = description or (
            f"Access token with the {' or '.join(schemes)} scheme"
            + (
                f"; DPoP proofs signed with {', '.join(resource_server.policy.algorithms)}"
                " (RFC 9449)"
                if "DPoP" in schemes
                else ""
            )
            + "."
        )
        self.model = HTTPBase(scheme=schemes[0], description=text)
        # Trust matters when a forwarded header could be believed, or when the scheme
        # and host come from the scope (no public base URL): then the peer must be real.
        self._check_transport = bool(self.guard.trusted_proxies) or (
            self.guard.public_base_url is None and resource_server.public_base_url is None
        )

    def __repr__(self) -> str:
        return f"TokenSecurity({self.guard!r})"

    def _refuse(self, request: Request, error: TokenError) -> TokenHTTPException:
        self.guard.log_refusal(request.method, request.url.path, error)
        return TokenHTTPException(error, self.guard.error_headers(error))

    async def __call__(
        self, request: Request, response: Response, security_scopes: SecurityScopes
    ) -> Grant:
        scope = request.scope
        cached = scope.get(_GRANT_KEY)
        if isinstance(cached, Grant):
            # Verified earlier in this request (another dependency or the middleware):
            # verifying again would replay the proof. Check the scopes only.
            return self._scoped(request, cached, security_scopes.scopes)
        if self._check_transport:
            problem = _transport_problem(request)
            if problem is not None:
                _log.error(
                    "refusing request: %s; run uvicorn with --no-proxy-headers "
                    "(or forwarded_allow_ips='') and name your proxy in trusted_proxies",
                    log_safe(problem, 400),
                )
                raise HTTPException(500, detail="server misconfiguration (see server log)")
        client = scope.get("client")
        peer = str(client[0]) if client else None
        trusted = self.guard.peer_trusted(peer)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", ())]
        raw = scope.get("raw_path")
        path = (
            raw.decode("latin-1")
            if isinstance(raw, bytes) and raw
            else quote(str(scope.get("path", "/")), safe="/:@!$&'()*+,;=-._~")
        )
        try:
            url = self.guard.request_url(
                path=path.partition("?")[0],
                query=scope.get("query_string", b"").decode("latin-1"),
                headers=headers,
                trusted=trusted,
                scheme=str(scope.get("scheme", "http")),
                server=scope.get("server"),
            )
            try:
                tls_cert = _asgi.tls_client_certificate(scope)
            except ValueError:
                tls_cert = None
            cert, thumbprint = self.guard.client_certificate(
                headers, trusted=trusted, peer=peer, tls_certificate=tls_cert
            )
            grant = await self.guard.averify(
                request.method,
                url,
                headers,
                cert=cert,
                thumbprint=thumbprint,
                required_scopes=security_scopes.scopes,
            )
        except TokenError as error:
            raise self._refuse(request, error) from None
        scope[_GRANT_KEY] = grant
        scope.setdefault("state", {})["grant"] = grant
        for name, value in grant.response_headers.items():
            response.headers[name] = value
        return grant

    def _scoped(self, request: Request, grant: Grant, scopes: Iterable[str]) -> Grant:
        needed = frozenset(scopes)
        if needed and not grant.scopes.issuperset(needed):
            error = InsufficientScope(
                "the access token lacks a required scope",
                details={
                    "check": "scope",
                    "required": sorted(needed),
                    "missing": sorted(needed - grant.scopes),
                    "rfc": "RFC 6750 §3.1",
                },
                scheme="DPoP" if grant.binding in ("dpop", "dpop+mtls") else "Bearer",
                algs=self.guard.resource_server.policy.algorithms
                if grant.binding in ("dpop", "dpop+mtls")
                else (),
                realm=self.guard.resource_server.realm,
            )
            raise self._refuse(request, error)
        return grant

    def add_metadata_route(self, app: FastAPI, metadata: Mapping[str, Any]) -> str:
        """Serve ``metadata`` (an RFC 9728 document, e.g. from
        :func:`tokenlib.metadata.resource_server_metadata`) at the well-known path of its
        ``resource`` (RFC 9728 §3.1), outside the OpenAPI schema. Returns the path."""
        document = dict(metadata)
        resource = document.get("resource")
        if not isinstance(resource, str):
            raise ValueError("metadata must contain the resource identifier")
        path = protected_resource_metadata_path(resource, allow_loopback_http=True)

        async def protected_resource_metadata() -> JSONResponse:
            return JSONResponse(document, headers={"Cache-Control": "max-age=3600"})

        app.add_api_route(
            path.partition("?")[0],
            protected_resource_metadata,
            methods=["GET"],
            include_in_schema=False,
        )
        return path
