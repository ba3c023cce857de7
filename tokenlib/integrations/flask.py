"""Flask: protect views with bearer, DPoP-bound and certificate-bound tokens.

::

    auth = TokenAuth(app, resource_server=rs, public_base_url="https://api.example.com")

    @app.get("/items")
    @auth.require("items:read")
    def items():
        return {"client": current_grant().client_id}

* :meth:`TokenAuth.require` (a decorator) verifies the request with
  :class:`~tokenlib.server.ResourceServer` (RFC 6750, RFC 9449 §7, RFC 8705 §3) and the
  scopes it names; failures are answered directly with the status, ``WWW-Authenticate``
  (RFC 6750 §3, RFC 9449 §7.1, plus ``resource_metadata`` per RFC 9728 §5.1 when
  configured), ``DPoP-Nonce`` and a JSON body ``{"error", "error_description"}``.
  The scopes belong to the view, so ``HEAD`` (which Flask routes to the ``GET`` view) needs
  exactly what ``GET`` needs, and the automatic ``OPTIONS`` answer never runs the view.
* ``public_base_url`` is **required** (here or on the ``ResourceServer``): it is the
  origin clients use, and the ``htu`` of every proof is compared with it plus the request
  path (RFC 9449 §4.3). WSGI servers fill ``SERVER_NAME`` from the client's ``Host``
  header (gunicorn does), so there is no safe default.
* ``trusted_proxies``: the addresses whose forwarded client-certificate header
  (``client_cert_source``, see :mod:`tokenlib.integrations.certs`) is believed. The peer is
  ``REMOTE_ADDR``; if werkzeug's ``ProxyFix`` rewrote it, its saved original is used. A
  certificate from the server's own TLS handshake (werkzeug's ``SSL_CLIENT_CERT``) is used
  from any peer.
* The grant is :func:`current_grant` (also ``flask.g.tokenlib_grant``); a rotated
  ``DPoP-Nonce`` is added to the successful response.
* :meth:`TokenAuth.add_metadata_route` serves RFC 9728 protected-resource metadata at its
  well-known path.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar, cast

from flask import Flask, Response, g, request

from tokenlib.errors import TokenError
from tokenlib.integrations._framework import Guard, wsgi_headers, wsgi_path, wsgi_peer
from tokenlib.integrations._trust import TrustedProxies
from tokenlib.metadata import protected_resource_metadata_path
from tokenlib.server import Grant, ResourceServer

__all__ = ["TokenAuth", "current_grant"]

F = TypeVar("F", bound=Callable[..., Any])
_GRANT: Final = "tokenlib_grant"
_EXTENSION: Final = "tokenlib"


def current_grant() -> Grant:
    """The verified grant of the current request (inside a view decorated with
    :meth:`TokenAuth.require`)."""
    grant = g.get(_GRANT)
    if not isinstance(grant, Grant):
        raise RuntimeError("no verified grant: is the view decorated with auth.require(...)?")
    return grant


class TokenAuth:
    """The Flask extension (``TokenAuth(app, ...)`` or ``TokenAuth(...).init_app(app)``).

    Arguments are those of :class:`tokenlib.integrations._framework.Guard`:
    ``resource_server``, ``public_base_url``, ``trusted_proxies``, ``client_cert_source``,
    ``client_cert_header``, ``resource_metadata`` (the RFC 9728 metadata URL for
    challenges) and ``clock``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        resource_server: ResourceServer,
        public_base_url: str | None = None,
        trusted_proxies: Iterable[str] | TrustedProxies = (),
        client_cert_source: str = "rfc9440",
        client_cert_header: str | None = None,
        resource_metadata: str | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if public_base_url is None and resource_server.public_base_url is None:
            raise ValueError(
                "public_base_url is required (here or on the ResourceServer): WSGI servers "
                "derive the host from the client's Host header, which must not decide htu"
            )
        self.guard = Guard(
            resource_server,
            public_base_url=public_base_url,
            trusted_proxies=trusted_proxies,
            client_cert_source=client_cert_source,
            client_cert_header=client_cert_header,
            resource_metadata=resource_metadata,
            clock=clock,
        )
        if app is not None:
            self.init_app(app)

    def __repr__(self) -> str:
        return f"TokenAuth({self.guard!r})"

    def init_app(self, app: Flask) -> None:
        app.extensions[_EXTENSION] = self
        app.after_request(self._add_response_headers)

    @staticmethod
    def _add_response_headers(response: Response) -> Response:
        grant = g.get(_GRANT)
        if isinstance(grant, Grant):
            for name, value in grant.response_headers.items():
                response.headers[name] = value
        return response

    def error_response(self, error: TokenError) -> Response:
        response = Response(
            self.guard.error_body(error), status=error.status_code, mimetype="application/json"
        )
        for name, value in self.guard.error_headers(error).items():
            response.headers[name] = value
        return response

    def verify_request(self, scopes: Iterable[str] = ()) -> Grant:
        """Verify the current request (raises :class:`~tokenlib.errors.TokenError`)."""
        environ = request.environ
        peer = wsgi_peer(environ)
        trusted = self.guard.peer_trusted(peer)
        headers = wsgi_headers(environ)
        path, query = wsgi_path(environ)
        url = self.guard.request_url(
            path=path,
            query=query,
            headers=headers,
            trusted=trusted,
            scheme=str(environ.get("wsgi.url_scheme", "http")),
            server=None,
        )
        cert, thumbprint = self.guard.client_certificate(
            headers, trusted=trusted, peer=peer, tls_certificate=environ.get("SSL_CLIENT_CERT")
        )
        return self.guard.verify(
            request.method, url, headers, cert=cert, thumbprint=thumbprint, required_scopes=scopes
        )

    def require(self, *scopes: str) -> Callable[[F], F]:
        """Decorator: the view runs only for a request whose token verifies and carries
        every scope in ``scopes`` (RFC 6750 §3.1: else 401 / 403 ``insufficient_scope``)."""
        needed = tuple(scopes)
        for scope in needed:
            if not isinstance(scope, str) or not scope:
                raise ValueError("scopes must be non-empty strings")

        def decorate(view: F) -> F:
            @functools.wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    grant = self.verify_request(needed)
                except TokenError as error:
                    self.guard.log_refusal(request.method, request.path, error)
                    return self.error_response(error)
                setattr(g, _GRANT, grant)
                return view(*args, **kwargs)

            return cast(F, wrapper)

        return decorate

    def add_metadata_route(self, app: Flask, metadata: Mapping[str, Any]) -> str:
        """Serve ``metadata`` (an RFC 9728 document, e.g. from
        :func:`tokenlib.metadata.resource_server_metadata`) at the well-known path of its
        ``resource`` (RFC 9728 §3.1). Returns the path."""
        document = dict(metadata)
        resource = document.get("resource")
        if not isinstance(resource, str):
            raise ValueError("metadata must contain the resource identifier")
        path = protected_resource_metadata_path(resource, allow_loopback_http=True)
        body = json.dumps(document)

        def protected_resource_metadata() -> Response:
            response = Response(body, mimetype="application/json")
            response.headers["Cache-Control"] = "max-age=3600"
            return response

        app.add_url_rule(
            path.partition("?")[0],
            endpoint="tokenlib_protected_resource_metadata",
            view_func=protected_resource_metadata,
            methods=["GET"],
        )
        return path
