"""ASGI middleware enforcing bearer, DPoP-bound and certificate-bound tokens.

:class:`DPoPMiddleware` (alias :class:`TokenAuthMiddleware`) wraps any ASGI app
(Starlette, FastAPI, a bare callable) and a :class:`tokenlib.server.ResourceServer`.
Pure ASGI: nothing from Starlette is needed at import.

**Trust boundary.** A forwarded header (RFC 9440 ``Client-Cert``, a vendor certificate
header, ``X-Forwarded-Proto``/``-Host``, RFC 7239 ``Forwarded``) is believed only when
the *transport* peer — the other end of the TCP connection — is in ``trusted_proxies``.
The middleware reads that peer from ``scope["client"]``, so the server must not have
rewritten it from ``X-Forwarded-For`` first. uvicorn does exactly that by default
(``proxy_headers=True``, ``forwarded_allow_ips="127.0.0.1,::1"``: any loopback client
chooses its own address and scheme). Whenever the trust decision matters
(``trusted_proxies`` configured, or no ``public_base_url`` so that the scheme is read
from the scope) the middleware therefore:

* refuses **start-up** (``lifespan.startup.failed``, the server exits) when it can see
  that the server rewrites the peer or scheme (uvicorn's and gunicorn's configuration,
  read at lifespan), and
* refuses **every request** with HTTP 500 and an ERROR log naming the fix when it sees
  that ``scope["client"]``/``scope["scheme"]`` differ from the connection (uvicorn's or
  gunicorn's transport; covers ``--lifespan off``, mounted apps and proxy-fix middleware placed
  outside this one), and
* refuses both when a proxy-header middleware wraps it (hypercorn's
  ``ProxyFixMiddleware``, uvicorn's ``ProxyHeadersMiddleware`` applied by hand with
  trusted hosts; found on the awaiting call chain).

Required server settings (see README): uvicorn ``--no-proxy-headers`` (or
``--forwarded-allow-ips ''``; ``uvicorn.Config(proxy_headers=False)``); gunicorn, with its
own ASGI worker (which sets ``scope["scheme"]`` from ``X-Forwarded-Proto`` for loopback
peers by default) or ``UvicornWorker``, ``--forwarded-allow-ips ''``; hypercorn and
granian need nothing (neither rewrites the peer by default) — do not wrap the app in
``hypercorn.middleware.ProxyFixMiddleware`` or granian's
``wrap_asgi_with_proxy_headers``. Behind a proxy, name it in ``trusted_proxies``.

* **The request URL** that ``htu`` is compared with (RFC 9449 §4.3 check 9) is built
  from the configured ``public_base_url`` plus the raw request path — never from
  ``Host`` or forwarded headers, which a client controls. Only when the transport peer
  is a trusted proxy and no base URL is configured is the proxy's own (rightmost)
  ``X-Forwarded-Proto``/``-Host`` (or, with ``forwarded="rfc7239"``, ``Forwarded``
  ``proto``/``host``) value used. Otherwise the server's own socket address is used.
* **The client certificate** (RFC 8705 §3) comes from the TLS connection through the
  ASGI TLS extension (``scope["extensions"]["tls"]["client_cert_chain"]``, leaf first,
  PEM). uvicorn does not fill it in; run it with
  ``http=tokenlib.lab._serve.TLSScopeH11Protocol`` (what :class:`~tokenlib.lab._serve.ServedApp`
  does), or terminate TLS in a proxy and trust that proxy: from a trusted peer the
  certificate is read from the header format ``client_cert_source`` names (default
  ``"rfc9440"``, ``Client-Cert``; any source of :mod:`tokenlib.integrations.certs`).
  From any other peer certificate headers are ignored, removed from the scope the app
  sees, and a warning is logged (RFC 9440 §4: accept them only from a trusted proxy).
* **Methods and routes**: ``routes={"GET /items/*": ["items:read"], "/admin/*":
  ["admin"]}`` (``fnmatch`` patterns on the decoded path, optional method list, first
  match wins). ``HEAD`` is matched by rules that list ``GET`` (RFC 9110 §9.3.2: HEAD is
  GET without the body — the app runs the GET handler). A CORS preflight (``OPTIONS``
  with ``Origin`` and ``Access-Control-Request-Method`` from a configured origin) is
  answered without a token; any other ``OPTIONS`` is an ordinary method. A request
  matching no rule gets ``unmatched``: ``"allow"`` (default: any valid token, no scope
  required) or ``"deny"`` (a valid token is still checked first, then 403).
* **Verification** runs inline on the event loop when it needs no I/O (bearer tokens,
  DPoP with the in-process replay cache, or ``ResourceServer.averify`` with an async
  replay store under a ``replay_timeout`` bound → 503), and in a worker thread only for
  DPoP requests with a blocking replay store. A hung Redis costs DPoP requests a 503,
  bearer requests nothing.
* **The verified grant** is put in ``scope["state"]["grant"]`` (what Starlette's
  ``request.state.grant`` reads) and in ``scope["tokenlib.grant"]``.
* **Errors** become 400/401/403/503 responses with ``WWW-Authenticate`` (RFC 6750 §3,
  RFC 9449 §7.1), ``DPoP-Nonce`` (§9), ``Cache-Control: no-store`` and a JSON body
  ``{"error", "error_description"}``. Successful responses get the grant's response
  headers (a fresh ``DPoP-Nonce``).
* **CORS** for browser clients: for a configured origin, responses expose
  ``WWW-Authenticate`` and ``DPoP-Nonce`` and a preflight allows the ``DPoP`` and
  ``Authorization`` request headers (RFC 9449 §8 notes the browser case).
* **Logs** carry the method, path, error code and failed check — escaped (no CR/LF or
  other control characters from the request reach a log line) — never a token, proof
  or certificate.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, Final, Literal
from urllib.parse import quote, urlsplit

from cryptography import x509

from tokenlib.errors import (
    InsufficientScope,
    InvalidRequest,
    TokenError,
)
from tokenlib.integrations._trust import TrustedProxies
from tokenlib.integrations._verify import VerifyMode, verify_mode, verify_on_loop
from tokenlib.mtls import load_certificate, parse_client_cert_header
from tokenlib.server import Grant, ResourceServer

__all__ = [
    "GRANT_SCOPE_KEY",
    "DPoPMiddleware",
    "RouteScopes",
    "TokenAuthMiddleware",
    "get_grant",
    "peer_rewritten",
    "require_scopes",
    "server_rewrites_peer",
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
#: Certificate headers always ignored (and warned about) from an untrusted peer.
_CERT_HEADERS: Final = frozenset({"client-cert", "client-cert-chain"})
_FIX: Final = (
    "run uvicorn with --no-proxy-headers (uvicorn.Config(proxy_headers=False)) or "
    "--forwarded-allow-ips '' (gunicorn, with its asgi worker or UvicornWorker: "
    "--forwarded-allow-ips '') and name the proxies in DPoPMiddleware(trusted_proxies=...); "
    "do not wrap the app in a proxy-header middleware (hypercorn ProxyFixMiddleware, "
    "granian wrap_asgi_with_proxy_headers)"
)
_HOST: Final = re.compile(
    r"\A(?:[A-Za-z0-9](?:[A-Za-z0-9\-.]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])"
    r"(?::[0-9]{1,5})?\Z"
)
_LOG_LIMIT: Final = 300
_MAX_FRAMES: Final = 64
_MAX_CLOSURE_DEPTH: Final = 4
_MAX_CLOSURE_ITEMS: Final = 64
_PROXY_FIXES: Final = (("hypercorn/middleware/proxy_fix.py", "hypercorn's ProxyFixMiddleware"),)
_UVICORN_PROXY_HEADERS: Final = "uvicorn/middleware/proxy_headers.py"
_UVICORN: Final = ("uvicorn",)
_GUNICORN: Final = ("gunicorn",)
_SERVERS: Final = ("uvicorn", "gunicorn")
_log = logging.getLogger(__name__)

Unmatched = Literal["allow", "deny"]
Forwarded = Literal["x-forwarded", "rfc7239"]


def _printable(value: object, limit: int = _LOG_LIMIT) -> str:
    """``value`` safe for one log line: every character that is not printable — CR, LF,
    ESC and other controls, U+2028/9, bidi overrides, unassigned code points — becomes a
    ``\\xNN``/``\\uNNNN``/``\\UNNNNNNNN`` escape, and long values are cut."""
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


@dataclass(frozen=True, slots=True)
class RouteScopes:
    """Required scopes for requests whose method and path match (``fnmatch`` pattern).

    A rule listing ``GET`` also matches ``HEAD`` (RFC 9110 §9.3.2): a HEAD request runs
    the GET handler, so it must need what GET needs.
    """

    pattern: str
    scopes: frozenset[str]
    methods: frozenset[str] | None = None

    def matches(self, method: str, path: str) -> bool:
        if (
            self.methods is not None
            and method not in self.methods
            and not (method == "HEAD" and "GET" in self.methods)
        ):
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


# ------------------------------------------------------------------ server detection


def _allows_any(value: object) -> bool:
    """Does uvicorn's ``forwarded_allow_ips`` name any peer at all?"""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, Iterable):
        return True  # unknown shape: assume the worst
    return any(str(item).strip() for item in items)


def _owner(receive: object, attribute: str, packages: tuple[str, ...] = _UVICORN) -> object | None:
    """The server's object behind this call (uvicorn's lifespan handler or request cycle;
    with ``packages`` including gunicorn, its ASGI protocol or lifespan manager) that has
    ``attribute`` (``config``/``transport``/``logger``), or ``None`` under another server.

    First the object ``receive`` is bound to, or one behind the callables a wrapping
    ``receive`` closes over (FastAPI's telemetry, Starlette middleware); then the
    awaiting frames of the current call: uvicorn's ``LifespanOn.main`` /
    ``RequestResponseCycle.run_asgi`` are on that chain when nothing moved the app to
    another task.
    """
    owner = _owner_in_closures(receive, attribute, packages)
    if owner is not None:
        return owner
    frame: FrameType | None = sys._getframe(1)
    for _ in range(_MAX_FRAMES):
        frame = frame.f_back if frame is not None else None
        if frame is None:
            return None
        filename = frame.f_code.co_filename
        if not any(package in filename for package in packages):
            continue
        owner = frame.f_locals.get("self")
        if _is_server(owner, attribute, packages):
            return owner
    return None


def _owner_in_closures(
    receive: object, attribute: str, packages: tuple[str, ...] = _UVICORN
) -> object | None:
    """uvicorn's object behind ``receive``: the object it is bound to, or — when a
    middleware wrapped it (Starlette's ``BaseHTTPMiddleware`` runs the inner app in
    another task, so the call chain does not reach uvicorn) — the one behind a callable
    its closure holds, a few wrappers deep."""
    pending: list[tuple[object, int]] = [(receive, 0)]
    seen: set[int] = set()
    while pending:
        item, depth = pending.pop()
        if id(item) in seen or len(seen) > _MAX_CLOSURE_ITEMS:
            continue
        seen.add(id(item))
        owner: object | None = getattr(item, "__self__", None)
        if _is_server(owner, attribute, packages):
            return owner
        if depth >= _MAX_CLOSURE_DEPTH:
            continue
        function = getattr(item, "__func__", item)
        for cell in getattr(function, "__closure__", None) or ():
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if callable(content):
                pending.append((content, depth + 1))
        # A method of a wrapper object keeps the inner receive as an attribute
        # (Starlette's _CachedRequest.wrapped_receive holds ._receive).
        state = getattr(owner, "__dict__", None)
        if isinstance(state, dict):
            pending.extend(
                (value, depth + 1)
                for name, value in state.items()
                if "receive" in name and callable(value)
            )
    return None


def _proxy_fix_on_stack() -> str | None:
    """A known proxy-header middleware awaiting this call (it wraps the app, so it has
    rewritten — or may rewrite — ``scope["client"]`` before us), or ``None``. hypercorn's
    ``ProxyFixMiddleware`` is an ``async`` callable and always on that chain; granian's
    ``wrap_asgi_with_proxy_headers`` returns the inner coroutine and cannot be seen."""
    frame: FrameType | None = sys._getframe(1)
    for _ in range(_MAX_FRAMES):
        frame = frame.f_back if frame is not None else None
        if frame is None:
            return None
        filename = frame.f_code.co_filename.replace("\\", "/")
        for suffix, name in _PROXY_FIXES:
            if filename.endswith(suffix):
                return name
        if filename.endswith(_UVICORN_PROXY_HEADERS) and _trusts_anyone(
            getattr(frame.f_locals.get("self"), "trusted_hosts", None)
        ):
            return "uvicorn's ProxyHeadersMiddleware"
    return None


def _trusts_anyone(hosts: object) -> bool:
    """Does a uvicorn ``_TrustedHosts`` believe any peer? (Unknown shape: yes.)"""
    if hosts is None:
        return False
    literals = getattr(hosts, "trusted_literals", None)
    if not isinstance(literals, set | frozenset):
        return True
    return bool(
        getattr(hosts, "always_trust", True)
        or any(str(item).strip() for item in literals)
        or getattr(hosts, "trusted_hosts", True)
        or getattr(hosts, "trusted_networks", True)
    )


def _is_server(owner: object, attribute: str, packages: tuple[str, ...]) -> bool:
    return (
        owner is not None
        and type(owner).__module__.partition(".")[0] in packages
        and hasattr(owner, attribute)
    )


def _gunicorn_rewrites_scheme(receive: object) -> str | None:
    """Why gunicorn's own ASGI worker (``-k asgi``) would set ``scope["scheme"]`` from a
    client's header, or ``None``. It honours ``secure_scheme_headers``
    (``X-Forwarded-Proto: https`` and two others by default) from peers in
    ``forwarded_allow_ips`` (``127.0.0.1,::1`` by default); the peer address itself is
    never rewritten. Its settings are reached through the lifespan manager's logger."""
    owner = _owner(receive, "logger", _GUNICORN)
    cfg = getattr(getattr(owner, "logger", None), "cfg", None)
    if cfg is None or not hasattr(cfg, "forwarded_allow_ips"):
        return None
    allowed = getattr(cfg, "forwarded_allow_ips", "127.0.0.1")
    secure = getattr(cfg, "secure_scheme_headers", None)
    if secure is None or (secure and _allows_any(allowed)):
        return (
            "gunicorn sets scope['scheme'] from X-Forwarded-Proto (secure_scheme_headers) "
            f"for peers in forwarded_allow_ips={_printable(allowed)!r} (its default), so a "
            "client on such a peer chooses the scheme a DPoP proof's htu is checked against"
        )
    return None


def server_rewrites_peer(receive: object) -> str | None:
    """Why the server behind ``receive`` (a lifespan ``receive``) rewrites
    ``scope["client"]``/``scope["scheme"]`` from forwarded headers, or ``None`` if it
    does not (or cannot be told). Knows uvicorn's ``proxy_headers`` and
    ``forwarded_allow_ips`` (also under gunicorn's ``UvicornWorker``) and gunicorn's own
    ASGI worker's ``secure_scheme_headers``; hypercorn and granian never rewrite on their
    own."""
    config = getattr(_owner(receive, "config"), "config", None)
    if config is not None and hasattr(config, "proxy_headers"):
        allowed = getattr(config, "forwarded_allow_ips", "127.0.0.1")
        if config.proxy_headers and _allows_any(allowed):
            return (
                "uvicorn rewrites scope['client'] and scope['scheme'] from X-Forwarded-For/"
                f"-Proto for peers in forwarded_allow_ips={_printable(allowed)!r} "
                "(its default), so a client on such a peer could claim to be a trusted proxy"
            )
    gunicorn = _gunicorn_rewrites_scheme(receive)
    if gunicorn is not None:
        return gunicorn
    wrapper = _proxy_fix_on_stack()
    if wrapper is not None:
        return (
            f"{wrapper} wraps the app and rewrites scope['client']/['scheme'] from "
            "forwarded headers before DPoPMiddleware sees them"
        )
    return None


def peer_rewritten(scope: Scope, receive: object) -> str | None:
    """Why ``scope["client"]``/``scope["scheme"]`` of this request cannot be trusted as the
    transport peer — the server or a proxy-fix middleware rewrote them from forwarded
    headers — or ``None``. Compares them with the connection itself where the server lets
    us see it (uvicorn's request cycle and gunicorn's ASGI protocol hold the transport;
    found through ``receive`` or the awaiting call chain); where there is no connection to
    compare with, a proxy-header middleware on that chain (hypercorn's
    ``ProxyFixMiddleware``, uvicorn's ``ProxyHeadersMiddleware`` trusting any peer) is
    enough. Call it from inside the request's task (any framework's middleware or
    dependency)."""
    transport = getattr(_owner(receive, "transport", _SERVERS), "transport", None)
    get = getattr(transport, "get_extra_info", None)
    if get is None:
        # No connection to compare with: a proxy-header middleware around us is enough.
        wrapper = _proxy_fix_on_stack()
        if wrapper is not None:
            return f"{wrapper} wraps the app and may rewrite the client address"
        return None
    peer = get("peername")
    real = str(peer[0]) if isinstance(peer, tuple | list) and peer else None
    client = scope.get("client")
    claimed = str(client[0]) if client else None
    if real != claimed:
        return (
            f"scope['client'] is {_printable(claimed)!r} but the connection comes from "
            f"{_printable(real)!r}: the server (or a middleware outside DPoPMiddleware) "
            "rewrote the client address from a forwarded header"
        )
    tls = bool(get("sslcontext"))
    if (str(scope.get("scheme", "http")) in ("https", "wss")) != tls:
        return (
            f"scope['scheme'] is {_printable(scope.get('scheme'))!r} on a "
            f"{'TLS' if tls else 'plain-text'} connection: the server rewrote it from "
            "X-Forwarded-Proto"
        )
    return None


# ------------------------------------------------------------------------ middleware


class DPoPMiddleware:
    """Verify the access token (and DPoP proof / client certificate) of every request.

    ``resource_server``: the configured :class:`~tokenlib.server.ResourceServer`.
    ``public_base_url``: e.g. ``"https://api.example.com"`` (a path is a prefix that a
    proxy stripped). ``trusted_proxies``: addresses/networks (``"127.0.0.1"``,
    ``"10.0.0.0/8"``, see :class:`~tokenlib.integrations._trust.TrustedProxies`) whose
    forwarded headers are believed — the *transport* peer, see the module docstring.
    ``client_cert_source``/``client_cert_header``: the format of the certificate header
    a trusted proxy forwards (``"rfc9440"`` ``Client-Cert`` by default; any source of
    :func:`tokenlib.integrations.certs.client_cert_thumbprint`). ``forwarded``: which
    header family a trusted proxy sets for the public scheme/host (``"x-forwarded"`` or
    ``"rfc7239"``; only one is read, so a client cannot slip in the other).
    ``routes``: path pattern → required scopes (see :class:`RouteScopes`);
    ``unmatched``: ``"allow"`` (any valid token) or ``"deny"`` (403) for requests no
    rule matches. ``public_paths``: patterns served without a token (health checks).
    ``cors_origins``: origins (or ``"*"``) that get the CORS headers.
    ``verify_in_thread``: ``None`` (default) decides per replay store — inline (or
    ``averify`` with an async store) unless the store blocks; ``True``/``False`` force
    a thread / the event loop for a blocking store (an async store is always awaited).
    ``replay_timeout``: seconds an async replay store may take before the request gets
    503. ``clock``: epoch seconds (tests).
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
        verify_in_thread: bool | None = None,
        clock: Callable[[], float] | None = None,
        allow_websockets: bool = False,
        unmatched: Unmatched = "allow",
        client_cert_source: str = "rfc9440",
        client_cert_header: str | None = None,
        forwarded: Forwarded = "x-forwarded",
        replay_timeout: float = 1.0,
    ) -> None:
        if unmatched not in ("allow", "deny"):
            raise ValueError(f"unmatched must be 'allow' or 'deny', not {unmatched!r}")
        if forwarded not in ("x-forwarded", "rfc7239"):
            raise ValueError(f"forwarded must be 'x-forwarded' or 'rfc7239', not {forwarded!r}")
        if not replay_timeout > 0:
            raise ValueError("replay_timeout must be positive seconds")
        self.app = app
        self._clock = clock
        self.allow_websockets = allow_websockets
        self.resource_server = resource_server
        self.public_base_url = _base_url(public_base_url) if public_base_url else None
        self.trusted_proxies = TrustedProxies(trusted_proxies)
        if isinstance(routes, Mapping):
            self.routes = tuple(RouteScopes.parse(k, v) for k, v in routes.items())
        else:
            self.routes = tuple(routes)
        if unmatched == "deny" and not self.routes:
            raise ValueError("unmatched='deny' without routes would refuse every request")
        self.unmatched: Unmatched = unmatched
        self.public_paths = tuple(public_paths)
        self.cors_origins = frozenset(cors_origins)
        self.verify_in_thread = verify_in_thread
        self._mode_memo: tuple[object, object, bool | None, VerifyMode] | None = None
        self.forwarded: Forwarded = forwarded
        self.replay_timeout = float(replay_timeout)
        self.client_cert_source = client_cert_source
        self.client_cert_header = client_cert_header
        self._cert_headers = _CERT_HEADERS | _source_headers(client_cert_source, client_cert_header)
        self._server_problem: str | None = None
        self._problem_count = 0
        self._problem_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"DPoPMiddleware(public_base_url={self.public_base_url!r}, "
            f"trusted_proxies={list(self.trusted_proxies)!r}, routes={len(self.routes)}, "
            f"unmatched={self.unmatched!r}, client_cert_source={self.client_cert_source!r})"
        )

    @property
    def trust_matters(self) -> bool:
        """Whether a request's peer address or scheme changes a decision: forwarded
        headers can be believed, or the ``htu`` scheme comes from the scope."""
        return bool(self.trusted_proxies) or self.public_base_url is None

    # ----------------------------------------------------------------- request facts

    def _peer_trusted(self, scope: Scope) -> bool:
        client = scope.get("client")
        return client is not None and len(client) > 0 and str(client[0]) in self.trusted_proxies

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
            forwarded = self._forwarded_origin(scope)
            if forwarded is not None:
                return forwarded + suffix
        scheme = scope.get("scheme", "http")
        server = scope.get("server")
        if not server:
            raise InvalidRequest(
                "the server address is unknown; configure public_base_url",
                details={"check": "htu", "rfc": "RFC 9449 §4.3"},
            )
        host_text = f"[{server[0]}]" if ":" in str(server[0]) else str(server[0])
        return f"{scheme}://{host_text}:{server[1]}{suffix}"

    def _forwarded_origin(self, scope: Scope) -> str | None:
        """The public ``scheme://host`` the trusted proxy reports, or ``None``.

        Only the rightmost value counts: the one our proxy (one hop) appended; values
        to its left came from the client. A malformed value is a 400, not a guess.
        """
        if self.forwarded == "rfc7239":
            fields = _header_values(scope, b"forwarded")
            if not fields:
                return None
            pairs = _forwarded_pairs(fields[-1].split(",")[-1])
            proto, host = pairs.get("proto"), pairs.get("host")
        else:
            protos = _header_values(scope, b"x-forwarded-proto")
            hosts = _header_values(scope, b"x-forwarded-host")
            if not protos or not hosts:
                return None
            proto = protos[-1].split(",")[-1].strip()
            host = hosts[-1].split(",")[-1].strip()
        if proto is None or host is None:
            return None
        proto = proto.lower()
        if proto not in ("http", "https") or _HOST.match(host) is None:
            raise InvalidRequest(
                "the forwarded scheme or host is malformed",
                details={
                    "check": "forwarded",
                    "header": self.forwarded,
                    "proto": _printable(proto, 20),
                    "host": _printable(host, 80),
                },
            )
        return f"{proto}://{host.lower()}"

    def client_certificate(self, scope: Scope, *, trusted: bool) -> x509.Certificate | None:
        """The client certificate: from a trusted proxy's ``Client-Cert`` header, else
        from the TLS connection; an untrusted certificate header is ignored and logged.
        (RFC 9440 source only; see :meth:`client_cert_facts` for every source.)"""
        cert, _ = self.client_cert_facts(scope, trusted=trusted)
        return cert

    def client_cert_facts(
        self, scope: Scope, *, trusted: bool
    ) -> tuple[x509.Certificate | None, str | None]:
        """(certificate, ``x5t#S256``) of the client: from the trusted proxy's header in
        the configured format (a hash-only format gives just the thumbprint), else from
        the TLS connection (ASGI TLS extension)."""
        if trusted:
            if self.client_cert_source == "rfc9440" and self.client_cert_header is None:
                header = _header_values(scope, b"client-cert")
                return (parse_client_cert_header(header) if header else None), None
            return _forwarded_certificate(scope, self.client_cert_source, self.client_cert_header)
        present = sorted(
            {k.decode("latin-1").lower() for k, _ in scope.get("headers", ())} & self._cert_headers
        )
        if present:
            client = scope.get("client") or ("?", 0)
            _log.warning(
                "ignoring %s header from untrusted peer %s (RFC 9440 §4)",
                "Client-Cert" if "client-cert" in present else _printable(present[0]),
                _printable(client[0]),
            )
            # Nor may the app behind us believe it: drop it from the scope it sees.
            scope["headers"] = [
                (k, v)
                for k, v in scope.get("headers", ())
                if k.decode("latin-1").lower() not in self._cert_headers
            ]
        try:
            return tls_client_certificate(scope), None
        except ValueError:
            raise InvalidRequest(
                "the TLS client certificate could not be read",
                details={"check": "client_cert", "source": "tls", "rfc": "RFC 8705 §3"},
            ) from None

    def required_scopes(self, method: str, path: str) -> frozenset[str] | None:
        """The scopes the first matching rule requires; ``None`` when no rule matches
        and ``unmatched="deny"``."""
        for rule in self.routes:
            if rule.matches(method, path):
                return rule.scopes
        return frozenset() if self.unmatched == "allow" else None

    def _mode(self) -> VerifyMode:
        """See :mod:`tokenlib.integrations._verify` (``verify_in_thread`` forces a mode).

        Worked out once per (server, store, setting): the store's coroutine check is ~2 µs
        a request otherwise (py-spy, ``benchmarks/bench_asgi.py`` bearer row)."""
        rs, in_thread = self.resource_server, self.verify_in_thread
        memo = self._mode_memo
        if (
            memo is None
            or memo[0] is not rs
            or memo[1] is not rs.replay_cache
            or (memo[2] is not in_thread)
        ):
            memo = self._mode_memo = (
                rs,
                rs.replay_cache,
                in_thread,
                verify_mode(rs, in_thread=in_thread),
            )
        return memo[3]

    async def _verify(self, scope: Scope, method: str, required: frozenset[str]) -> Grant:
        trusted = self._peer_trusted(scope)
        url = self.request_url(scope, trusted=trusted)
        cert, thumbprint = self.client_cert_facts(scope, trusted=trusted)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", ())]
        options: dict[str, Any] = {
            "client_cert": cert,
            "required_scopes": tuple(sorted(required)),
            "now": self._clock() if self._clock is not None else None,
        }
        if thumbprint is not None:
            options["client_cert_thumbprint"] = thumbprint
        return await verify_on_loop(
            self.resource_server,
            method,
            url,
            headers,
            mode=self._mode(),
            replay_timeout=self.replay_timeout,
            **options,
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

    async def _misconfigured(self, send: Send, problem: str) -> None:
        with self._problem_lock:
            self._problem_count += 1
            count = self._problem_count
        if count == 1 or count % 1000 == 0:
            _log.error(
                "refusing request %d: the trust boundary cannot be enforced: %s; %s",
                count,
                problem,
                _FIX,
            )
        body = json.dumps(
            {
                "error": "server_error",
                "error_description": "the server is misconfigured (see its log)",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    # ---------------------------------------------------------------------------- ASGI

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = server_rewrites_peer(receive) if self.trust_matters else None
        if problem is None:
            await self.app(scope, receive, send)
            return
        self._server_problem = problem
        message = f"DPoPMiddleware refuses to start: {problem}; {_FIX}"
        _log.error("%s", message)
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.failed", "message": message})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
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
        if self.trust_matters:
            problem = self._server_problem or peer_rewritten(scope, receive)
            if problem is not None:
                await self._misconfigured(send, problem)
                return
        required = self.required_scopes(method, path)
        try:
            grant = await self._verify(scope, method, required or frozenset())
            if required is None:
                raise InsufficientScope(
                    "no route rule allows this request (unmatched='deny')",
                    details={"check": "route", "rule": "unmatched=deny"},
                    scheme="DPoP" if grant.binding in ("dpop", "dpop+mtls") else "Bearer",
                )
        except TokenError as error:
            # The error code, failed check and path only: never a token, proof or cert.
            _log.info(
                "refused %s %s: %s (%s)",
                _printable(method, 20),
                _printable(path),
                error.error,
                _printable(error.check),
            )
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
_transport_mismatch = peer_rewritten  # the name the FastAPI integration looked up first


def _forwarded_pairs(element: str) -> dict[str, str]:
    """RFC 7239 §4 ``forwarded-element``: ``;``-separated ``name=value`` pairs, values
    optionally quoted. Unknown or malformed pairs are dropped."""
    out: dict[str, str] = {}
    for pair in element.split(";"):
        name, sep, value = pair.strip().partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"')
        out.setdefault(name.strip().lower(), value)
    return out


def _source_headers(source: str, header: str | None) -> frozenset[str]:
    names: set[str] = set()
    if header:
        names.add(header.lower())
    try:
        from tokenlib.integrations import certs
    except ImportError:
        return frozenset(names)
    defaults = getattr(certs, "DEFAULT_HEADERS", {})
    sources = getattr(certs, "SOURCES", None)
    if sources is not None and source not in sources:
        raise ValueError(f"unknown client_cert_source {source!r}; one of {sorted(sources)}")
    value = defaults.get(source, ())
    names.update(h.lower() for h in ([value] if isinstance(value, str) else value))
    return frozenset(names)


def _forwarded_certificate(
    scope: Scope, source: str, header: str | None
) -> tuple[x509.Certificate | None, str | None]:
    from tokenlib.integrations import certs

    found: Any = certs.forwarded_client_cert(scope.get("headers", ()), source=source, header=header)
    if found is None:
        return None, None
    if found.certificate is not None:
        return found.certificate, None
    return None, found.thumbprint


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
