"""Django: a middleware that verifies bearer, DPoP-bound and certificate-bound tokens per view.

Settings (``TOKENLIB`` dict)::

    TOKENLIB = {
        "RESOURCE_SERVER": resource_server,        # a ResourceServer, or its dotted path
        "PUBLIC_BASE_URL": "https://api.example.com",
        "TRUSTED_PROXIES": ["10.0.0.5"],           # optional
        "CLIENT_CERT_SOURCE": "rfc9440",           # optional, see tokenlib.integrations.certs
        "CLIENT_CERT_HEADER": None,                # optional
        "RESOURCE_METADATA": None,                 # RFC 9728 metadata URL for challenges
        "DEFAULT": "authenticated",                # or "public": views without a decorator
    }
    MIDDLEWARE = [..., "tokenlib.integrations.django.TokenAuthMiddleware"]

* Scopes belong to the **view** (:func:`require_scopes`, or a ``tokenlib_scopes``
  attribute on a class-based view), so every method that reaches the view needs them;
  per-method scopes (``require_scopes(GET=["read"], POST=["write"])``) give ``HEAD`` what
  ``GET`` needs. Views without a decorator follow ``DEFAULT``: ``"authenticated"`` (any
  valid token; the default, so forgetting a decorator does not open a view) or
  ``"public"``. :func:`public` exempts a view (health checks).
* Failures are answered by the middleware: the status of the
  :class:`~tokenlib.errors.TokenError`, its exact ``WWW-Authenticate`` (plus
  ``resource_metadata``, RFC 9728 §5.1), ``DPoP-Nonce``, ``Cache-Control: no-store`` and a
  JSON body ``{"error", "error_description"}``. The grant is ``request.grant``; a rotated
  ``DPoP-Nonce`` is added to the response.
* Django REST framework views are left to :class:`tokenlib.integrations.drf.DPoPAuthentication`
  (the middleware then only adds the grant's response headers).
* ``PUBLIC_BASE_URL`` is required (or on the ``ResourceServer``): the origin the client
  used, for ``htu`` (RFC 9449 §4.3). ``request.build_absolute_uri()`` depends on ``Host``
  and ``USE_X_FORWARDED_HOST``, which a client can steer.
* **Trust boundary.** Under WSGI the transport peer is ``REMOTE_ADDR`` (werkzeug
  ``ProxyFix``'s original when present). Under ASGI it is ``scope["client"]``, which uvicorn
  rewrites from ``X-Forwarded-For`` by default: when ``TRUSTED_PROXIES`` is set, serve
  :func:`asgi_application` (Django's ASGI app behind the connection check of
  :mod:`tokenlib.integrations.asgi`); a request that did not pass that check is refused
  with HTTP 500 and an ERROR log, never trusted on the server's word.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar, cast

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse

from tokenlib.errors import TokenError
from tokenlib.integrations import asgi as _asgi
from tokenlib.integrations._framework import Guard, log_safe, wsgi_headers, wsgi_path, wsgi_peer
from tokenlib.server import Grant, ResourceServer

__all__ = [
    "TRANSPORT_CHECKED",
    "TokenAuthMiddleware",
    "asgi_application",
    "get_guard",
    "public",
    "require_scopes",
    "scopes_for",
    "verify_request",
]

F = TypeVar("F", bound=Callable[..., Any])
_log = logging.getLogger("tokenlib.integrations")
_SCOPES_ATTR: Final = "tokenlib_scopes"
_PUBLIC_ATTR: Final = "tokenlib_public"
#: ASGI scope key set by :func:`asgi_application` once the peer matched the connection.
TRANSPORT_CHECKED: Final = "tokenlib.transport_checked"
_DEFAULTS: Final = frozenset({"authenticated", "public"})

_guard: Guard | None = None


def _settings() -> Mapping[str, Any]:
    value = getattr(settings, "TOKENLIB", None)
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(
            "settings.TOKENLIB must be a dict (see tokenlib.integrations.django)"
        )
    return value


def get_guard() -> Guard:
    """The :class:`~tokenlib.integrations._framework.Guard` built from ``settings.TOKENLIB``
    (once per process; rebuilt when the setting changes in tests)."""
    global _guard
    if _guard is None:
        config = _settings()
        server = config.get("RESOURCE_SERVER")
        if isinstance(server, str):
            module, _, name = server.rpartition(".")
            try:
                server = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError, ValueError) as exc:
                raise ImproperlyConfigured(
                    f"TOKENLIB['RESOURCE_SERVER'] = {server!r} cannot be imported: {exc}"
                ) from None
        if callable(server) and not isinstance(server, ResourceServer):
            server = server()
        if not isinstance(server, ResourceServer):
            raise ImproperlyConfigured(
                "TOKENLIB['RESOURCE_SERVER'] must be a tokenlib.server.ResourceServer "
                "(or its dotted path, or a function returning one)"
            )
        base = config.get("PUBLIC_BASE_URL")
        if base is None and server.public_base_url is None:
            raise ImproperlyConfigured(
                "TOKENLIB['PUBLIC_BASE_URL'] is required: the Host header must not decide htu"
            )
        default = config.get("DEFAULT", "authenticated")
        if default not in _DEFAULTS:
            raise ImproperlyConfigured("TOKENLIB['DEFAULT'] must be 'authenticated' or 'public'")
        try:
            _guard = Guard(
                server,
                public_base_url=base,
                trusted_proxies=config.get("TRUSTED_PROXIES", ()),
                client_cert_source=config.get("CLIENT_CERT_SOURCE", "rfc9440"),
                client_cert_header=config.get("CLIENT_CERT_HEADER"),
                resource_metadata=config.get("RESOURCE_METADATA"),
                clock=config.get("CLOCK"),
            )
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"TOKENLIB: {exc}") from None
    return _guard


def _reset(*, setting: str, **kwargs: Any) -> None:
    global _guard
    if setting == "TOKENLIB":
        _guard = None


setting_changed.connect(_reset)


# ------------------------------------------------------------------------ decorators


def require_scopes(*scopes: str, **per_method: Iterable[str]) -> Callable[[F], F]:
    """Mark a view (function or class) as needing a valid token with ``scopes``.

    ``require_scopes("read")`` applies to every method; ``require_scopes(GET=["read"],
    POST=["write"])`` per method, with ``HEAD`` taking ``GET``'s and unlisted methods the
    positional ``scopes``.
    """
    rule: dict[str, frozenset[str]] = {"*": frozenset(scopes)}
    for method, values in per_method.items():
        rule[method.upper()] = frozenset([values] if isinstance(values, str) else values)
    for values in rule.values():
        if any(not isinstance(s, str) or not s for s in values):
            raise ValueError("scopes must be non-empty strings")

    def decorate(view: F) -> F:
        return _mark(view, _SCOPES_ATTR, rule)

    return decorate


def public(view: F) -> F:
    """Serve this view without a token (the middleware does not check it)."""
    return _mark(view, _PUBLIC_ATTR, True)


def _mark(view: F, name: str, value: object) -> F:
    """``view`` carrying ``name``: a class gets the attribute (subclasses inherit it); a
    function is wrapped, so one function routed twice with different rules keeps both."""
    if isinstance(view, type):
        setattr(view, name, value)
        return view

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return view(*args, **kwargs)

    setattr(wrapper, name, value)
    return cast(F, wrapper)


def scopes_for(rule: object, method: str) -> frozenset[str]:
    """The scopes ``rule`` (a ``require_scopes`` mapping, or an iterable of scopes)
    requires for ``method``; ``HEAD`` falls back to ``GET`` (RFC 9110 §9.3.2)."""
    if rule is None:
        return frozenset()
    if isinstance(rule, str):
        return frozenset([rule])
    if isinstance(rule, Mapping):
        method = method.upper()
        for key in (method, "GET" if method == "HEAD" else None, "*"):
            if key is not None and key in rule:
                return frozenset(rule[key])
        return frozenset()
    if isinstance(rule, Iterable):
        return frozenset(str(s) for s in rule)
    raise ImproperlyConfigured(f"invalid scope rule {rule!r}")


def _view_attr(view_func: Any, name: str) -> Any:
    value = getattr(view_func, name, None)
    if value is None:
        value = getattr(getattr(view_func, "view_class", None), name, None)
    return value


def _is_drf_view(view_func: Any) -> bool:
    cls = getattr(view_func, "cls", None)
    return cls is not None and hasattr(cls, "authentication_classes")


# ---------------------------------------------------------------------- verification


def _transport(request: HttpRequest, guard: Guard) -> str | None:
    """The transport peer (``None`` when it cannot be established)."""
    scope = getattr(request, "scope", None)
    if isinstance(scope, Mapping):  # ASGI
        client = scope.get("client")
        peer = str(client[0]) if client else None
        if guard.trusted_proxies and not scope.get(TRANSPORT_CHECKED):
            _log.error(
                "refusing request: TRUSTED_PROXIES is set but the ASGI app is not "
                "tokenlib.integrations.django.asgi_application(), so scope['client'] may "
                "have been rewritten by the server from X-Forwarded-For"
            )
            raise _Misconfigured
        return peer
    return wsgi_peer(request.META)


class _Misconfigured(Exception):
    pass


def verify_request(request: HttpRequest, scopes: Iterable[str] = ()) -> Grant:
    """Verify a Django request (raises :class:`~tokenlib.errors.TokenError`)."""
    guard = get_guard()
    peer = _transport(request, guard)
    trusted = guard.peer_trusted(peer)
    headers = wsgi_headers(request.META)
    scope = getattr(request, "scope", None)
    tls_cert: Any = request.META.get("SSL_CLIENT_CERT")
    if isinstance(scope, Mapping):
        raw = scope.get("raw_path")
        path = raw.decode("latin-1") if isinstance(raw, bytes) and raw else request.path
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            tls_cert = _asgi.tls_client_certificate(dict(scope))
        except ValueError:
            tls_cert = None
    else:
        path, query = wsgi_path(request.META)
    url = guard.request_url(
        path=path.partition("?")[0],
        query=query,
        headers=headers,
        trusted=trusted,
        scheme=request.scheme or "http",
        server=None,
    )
    cert, thumbprint = guard.client_certificate(
        headers, trusted=trusted, peer=peer, tls_certificate=tls_cert
    )
    return guard.verify(
        request.method or "GET",
        url,
        headers,
        cert=cert,
        thumbprint=thumbprint,
        required_scopes=scopes,
    )


def error_response(error: TokenError, guard: Guard | None = None) -> HttpResponse:
    guard = guard or get_guard()
    response = HttpResponse(
        guard.error_body(error), status=error.status_code, content_type="application/json"
    )
    for name, value in guard.error_headers(error).items():
        response[name] = value
    return response


class TokenAuthMiddleware:
    """The middleware (see the module docstring). Sync; Django adapts it under ASGI."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        get_guard()  # configuration errors surface at start-up

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        grant = getattr(request, "grant", None)
        if isinstance(grant, Grant):
            for name, value in grant.response_headers.items():
                response[name] = value
        return response

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        if _is_drf_view(view_func) or _view_attr(view_func, _PUBLIC_ATTR):
            return None
        rule = _view_attr(view_func, _SCOPES_ATTR)
        guard = get_guard()
        if rule is None and _settings().get("DEFAULT", "authenticated") == "public":
            return None
        method = request.method or "GET"
        try:
            grant = verify_request(request, scopes_for(rule, method))
        except _Misconfigured:
            return HttpResponse(
                b'{"error": "server_error"}', status=500, content_type="application/json"
            )
        except TokenError as error:
            guard.log_refusal(method, request.path, error)
            return error_response(error, guard)
        request.grant = grant
        return None


def asgi_application(application: Any = None) -> Any:
    """Django's ASGI application (or ``application``) behind the connection check: a
    request whose ``scope["client"]``/``scope["scheme"]`` differ from the TCP connection
    (uvicorn's default proxy-header rewriting) gets HTTP 500 and an ERROR log; the others
    are marked :data:`TRANSPORT_CHECKED` for the middleware."""
    if application is None:
        from django.core.asgi import get_asgi_application

        application = get_asgi_application()
    # Resolved here, not lazily: a missing check must fail loudly, never be skipped.
    check: Callable[[Any, Any], str | None] = (
        getattr(_asgi, "transport_mismatch", None) or _asgi._transport_mismatch
    )

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            problem = check(scope, receive)
            if problem is not None:
                _log.error(
                    "refusing request: %s; run uvicorn with --no-proxy-headers",
                    log_safe(problem, 400),
                )
                body = b'{"error": "server_error"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
            scope = dict(scope)
            scope[TRANSPORT_CHECKED] = True
        await application(scope, receive, send)

    return app
