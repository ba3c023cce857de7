"""What the Django, DRF, Flask and FastAPI integrations share: one request check, one trust rule.

:class:`Guard` wraps a :class:`~tokenlib.server.ResourceServer` with the facts only the web
layer has:

* **htu** (RFC 9449 §4.3 check 9): the URL the client addressed is ``public_base_url``
  (of the ``ResourceServer`` or of the guard) plus the request path. Without one, and only
  when the *transport* peer is a configured trusted proxy, the rightmost
  ``X-Forwarded-Proto``/``X-Forwarded-Host`` values (the ones that proxy added). Otherwise
  the server's own socket address. Never the ``Host`` header: a client controls it, and a
  proof made for ``https://evil.example/...`` must not pass here.
* **The client certificate** (RFC 8705 §3): from a trusted proxy's header, read by the
  :mod:`tokenlib.integrations.certs` adapter named by ``client_cert_source``; from any other
  peer such headers are ignored (and logged, escaped). A certificate the server itself took
  from the TLS handshake (WSGI ``SSL_CLIENT_CERT``, the ASGI TLS extension) is used as is.
* **Errors** are rendered with :func:`tokenlib.metadata.challenge_headers` (exact
  ``WWW-Authenticate``, ``DPoP-Nonce``, ``resource_metadata`` when configured) and the
  RFC 6749 §5.2-style JSON body ``{"error", "error_description"}``.

The transport peer is the caller's business: WSGI passes :func:`wsgi_peer` (``REMOTE_ADDR``,
or werkzeug ``ProxyFix``'s saved original); ASGI passes what
:mod:`tokenlib.integrations.asgi` establishes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

from cryptography import x509

from tokenlib.errors import InvalidRequest, TokenError
from tokenlib.integrations import certs
from tokenlib.integrations._trust import TrustedProxies
from tokenlib.integrations._verify import verify_mode, verify_on_loop
from tokenlib.metadata import challenge_headers
from tokenlib.mtls import load_certificate
from tokenlib.server import Grant, ResourceServer

__all__ = ["Guard", "log_safe", "wsgi_headers", "wsgi_path", "wsgi_peer"]

_log = logging.getLogger("tokenlib.integrations")
_LOG_LIMIT: Final = 200
_WARN_INTERVAL: Final = 60.0


def log_safe(value: object, limit: int = _LOG_LIMIT) -> str:
    """``value`` with control characters, non-ASCII and backslashes escaped (``\\n`` →
    ``\\\\n``), cut to ``limit`` characters: one request can never forge a log line."""
    text = value if isinstance(value, str) else str(value)
    escaped = text.encode("unicode_escape").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[:limit] + "..."


def _base_url(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"public_base_url must be an absolute http(s) URL, got {value!r}")
    if "@" in parts.netloc:
        raise ValueError("public_base_url must not contain userinfo")
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def _rightmost(values: Sequence[str]) -> str:
    return values[-1].split(",")[-1].strip() if values else ""


def _header_values(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name]


class Guard:
    """One resource server plus the deployment facts around it (see the module docstring).

    ``trusted_proxies``: addresses/networks whose forwarded headers are believed
    (:class:`~tokenlib.integrations._trust.TrustedProxies`). ``client_cert_source``: the
    :data:`tokenlib.integrations.certs.SOURCES` format the proxy forwards (``"rfc9440"``
    by default), ``client_cert_header`` its header name when the proxy's configuration
    chooses it. ``resource_metadata``: the RFC 9728 metadata URL put into every challenge
    (§5.1). ``clock``: epoch seconds, for tests. ``replay_timeout``: seconds an async
    replay store may take in :meth:`averify` before the request gets 503.
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
        clock: Any = None,
        replay_timeout: float = 1.0,
    ) -> None:
        if not isinstance(resource_server, ResourceServer):
            raise TypeError("resource_server must be a tokenlib.server.ResourceServer")
        if client_cert_source not in certs.SOURCES:
            raise ValueError(
                f"client_cert_source must be one of {', '.join(certs.SOURCES)}; "
                f"got {client_cert_source!r}"
            )
        self.resource_server = resource_server
        self.public_base_url = _base_url(public_base_url) if public_base_url else None
        self.trusted_proxies = (
            trusted_proxies
            if isinstance(trusted_proxies, TrustedProxies)
            else TrustedProxies(trusted_proxies)
        )
        self.client_cert_source = client_cert_source
        self.client_cert_header = client_cert_header
        self._warn_lock = threading.Lock()
        self._warned_at = float("-inf")
        self._suppressed = 0
        if resource_metadata is not None:
            # Validate once, at start-up (raises ValueError for an unquotable URL).
            challenge_headers(InvalidRequest("probe"), resource_metadata=resource_metadata)
        self.resource_metadata = resource_metadata
        self.clock = clock
        if not (isinstance(replay_timeout, int | float) and replay_timeout > 0):
            raise ValueError("replay_timeout must be positive seconds")
        self.replay_timeout = float(replay_timeout)
        own = resource_server.public_base_url
        if (
            self.public_base_url is not None
            and own is not None
            and _base_url(own) != (self.public_base_url)
        ):
            raise ValueError(
                f"public_base_url {self.public_base_url!r} differs from the ResourceServer's "
                f"{own!r}; configure it in one place"
            )

    def __repr__(self) -> str:
        return (
            f"Guard(public_base_url={self.public_base_url!r}, "
            f"trusted_proxies={self.trusted_proxies!r}, source={self.client_cert_source!r})"
        )

    # ------------------------------------------------------------------ request facts

    def peer_trusted(self, peer: str | None) -> bool:
        return peer is not None and peer in self.trusted_proxies

    def request_url(
        self,
        *,
        path: str,
        query: str,
        headers: Sequence[tuple[str, str]],
        trusted: bool,
        scheme: str,
        server: tuple[str, int | str] | None,
    ) -> str:
        """The URL the client addressed, for ``htu`` (query kept; the core drops it)."""
        suffix = (path or "/") + (f"?{query}" if query else "")
        if self.resource_server.public_base_url is not None:
            return suffix  # the server puts its own origin in front (ResourceServer.htu_for)
        if self.public_base_url is not None:
            return self.public_base_url + suffix
        if trusted:
            proto = _rightmost(_header_values(headers, "x-forwarded-proto")).lower()
            host = _rightmost(_header_values(headers, "x-forwarded-host"))
            if proto in ("http", "https") and host and not any(c in host for c in "/?#@\\ "):
                return f"{proto}://{host}{suffix}"
        if not server or not server[0]:
            raise InvalidRequest(
                "the server address is unknown; configure public_base_url",
                details={"check": "htu", "rfc": "RFC 9449 §4.3"},
            )
        host_text = f"[{server[0]}]" if ":" in str(server[0]) else str(server[0])
        return f"{scheme}://{host_text}:{server[1]}{suffix}"

    def client_certificate(
        self,
        headers: Sequence[tuple[str, str]],
        *,
        trusted: bool,
        peer: str | None,
        tls_certificate: str | bytes | x509.Certificate | None = None,
    ) -> tuple[x509.Certificate | None, str | None]:
        """``(certificate, x5t#S256 of a hash-only form)`` for this request."""
        if trusted:
            forwarded = certs.forwarded_client_cert(
                headers, source=self.client_cert_source, header=self.client_cert_header
            )
            if forwarded is not None:
                return forwarded.certificate, forwarded.thumbprint
        elif self._has_forwarded_cert(headers):
            suppressed = self._warn_gate()
            if suppressed is not None:
                _log.warning(
                    "ignoring forwarded client-certificate header from untrusted peer %s "
                    "(RFC 9440 §4: only a configured proxy may set it)%s",
                    log_safe(peer or "?"),
                    f"; {suppressed} more since the last warning" if suppressed else "",
                )
        if tls_certificate is None:
            return None, None
        try:
            return load_certificate(tls_certificate), None
        except ValueError:
            raise InvalidRequest(
                "the TLS client certificate could not be read",
                details={"check": "client_cert", "source": "tls", "rfc": "RFC 8705 §3"},
            ) from None

    def _warn_gate(self) -> int | None:
        """At most one warning per ``_WARN_INTERVAL`` seconds, so a client sending the
        header on every request cannot flood the log: the number suppressed since the
        last one, or ``None`` to stay quiet."""
        with self._warn_lock:
            now = time.monotonic()
            if now - self._warned_at < _WARN_INTERVAL:
                self._suppressed += 1
                return None
            count, self._suppressed, self._warned_at = self._suppressed, 0, now
            return count

    def _has_forwarded_cert(self, headers: Sequence[tuple[str, str]]) -> bool:
        names = {n.lower() for n in certs.DEFAULT_HEADERS.get(self.client_cert_source, ())}
        if self.client_cert_header:
            names.add(self.client_cert_header.lower())
        names.add("client-cert")
        return any(k.lower() in names for k, _ in headers)

    # ------------------------------------------------------------------------ verify

    def _arguments(
        self,
        headers: Sequence[tuple[str, str]],
        cert: x509.Certificate | None,
        thumbprint: str | None,
        required_scopes: Iterable[str],
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "client_cert": cert,
            "required_scopes": tuple(sorted(set(required_scopes))),
            "now": self.clock() if self.clock is not None else None,
        }
        if cert is None and thumbprint is not None:
            # A hash-only form (XFCC Hash=, CloudFront -Sha256, ...): RFC 8705 §3 compares
            # the x5t#S256 itself.
            kwargs["client_cert_thumbprint"] = thumbprint
        return kwargs

    def verify(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        *,
        cert: x509.Certificate | None,
        thumbprint: str | None,
        required_scopes: Iterable[str] = (),
    ) -> Grant:
        kwargs = self._arguments(headers, cert, thumbprint, required_scopes)
        return self.resource_server.verify(method, url, headers, **kwargs)

    async def averify(
        self,
        method: str,
        url: str,
        headers: Sequence[tuple[str, str]],
        *,
        cert: x509.Certificate | None,
        thumbprint: str | None,
        required_scopes: Iterable[str] = (),
    ) -> Grant:
        """Verify without stalling the event loop: with an async replay store,
        ``ResourceServer.averify`` bounded by ``replay_timeout`` (a hung store costs the
        DPoP request a 503, nothing else); with the in-process memory store, inline (no
        I/O, cheaper than a thread hop); with any other (blocking) store, a worker thread."""
        kwargs = self._arguments(headers, cert, thumbprint, required_scopes)
        rs = self.resource_server
        return await verify_on_loop(
            rs,
            method,
            url,
            headers,
            mode=verify_mode(rs),
            replay_timeout=self.replay_timeout,
            **kwargs,
        )

    # ---------------------------------------------------------------------- responses

    def challenge_error(self) -> TokenError:
        """The error this server answers to a request without credentials (RFC 6750 §3.1:
        every offered challenge, no error code, a fresh ``DPoP-Nonce`` when required)."""
        try:
            self.resource_server.verify("GET", "/", [])
        except TokenError as error:
            return error
        raise AssertionError("a request without credentials was accepted")  # pragma: no cover

    def error_headers(self, error: TokenError) -> dict[str, str]:
        return challenge_headers(error, resource_metadata=self.resource_metadata)

    @staticmethod
    def error_body(error: TokenError) -> bytes:
        return json.dumps(error.json_body()).encode("utf-8")

    def log_refusal(self, method: str, path: str, error: TokenError) -> None:
        # The error code, failed check and path only: never a token, proof or certificate.
        _log.info(
            "refused %s %s: %s (%s)",
            log_safe(method, 16),
            log_safe(path),
            error.error,
            log_safe(error.check or "-"),
        )


# ---------------------------------------------------------------------------- WSGI


def wsgi_peer(environ: Mapping[str, Any]) -> str | None:
    """The transport peer of a WSGI request: ``REMOTE_ADDR`` as the server saw it.

    werkzeug's ``ProxyFix`` rewrites ``REMOTE_ADDR`` from ``X-Forwarded-For`` and keeps the
    original in ``environ["werkzeug.proxy_fix.orig"]``; that original is used, so the
    application's own proxy handling cannot make a client look like the proxy.
    """
    original = environ.get("werkzeug.proxy_fix.orig")
    if isinstance(original, Mapping) and "REMOTE_ADDR" in original:
        value = original.get("REMOTE_ADDR")
    else:
        value = environ.get("REMOTE_ADDR")
    return value if isinstance(value, str) and value else None


def wsgi_headers(environ: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The request header fields of a WSGI environ as ``(name, value)`` pairs.

    CGI folds ``-`` and ``_`` together (``X_Client_Cert`` and ``X-Client-Cert`` both become
    ``HTTP_X_CLIENT_CERT``): a proxy must strip both spellings of the headers it sets.
    """
    out: list[tuple[str, str]] = []
    for key, value in environ.items():
        if isinstance(key, str) and key.startswith("HTTP_") and isinstance(value, str):
            out.append((key[5:].replace("_", "-").title(), value))
    return out


def wsgi_path(environ: Mapping[str, Any]) -> tuple[str, str]:
    """(path as sent, query) of a WSGI request: ``RAW_URI``/``REQUEST_URI`` when the
    server supplies it (the client's own percent-encoding), else the re-quoted path."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw.startswith("/"):
        path, _, query = raw.partition("?")
        return path, query
    path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", "")) or "/"
    return quote(path, safe="/:@!$&'()*+,;=-._~%"), str(environ.get("QUERY_STRING", ""))
