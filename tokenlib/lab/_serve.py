"""Run an ASGI app under uvicorn on 127.0.0.1 in a background thread, with TLS if asked.

:class:`ServedApp` (a context manager) binds an ephemeral loopback port itself — so the
URL is known before the first request and nothing races for the port — starts uvicorn
in a daemon thread with its own event loop, waits until it accepts connections, and on
exit stops it and joins the thread (force-closing connections after a short grace
period), so no thread or port outlives the ``with`` block, also on error.

Client certificates: uvicorn does not put the peer certificate in the ASGI scope. The
server here uses :class:`TLSScopeH11Protocol`, an ``h11`` protocol that adds the ASGI
TLS extension (``scope["extensions"]["tls"]``, with ``client_cert_chain`` as PEM; only
the leaf is available from Python's ``ssl``) from the connection's ``ssl_object``.
:class:`tokenlib.integrations.asgi.DPoPMiddleware` reads the certificate from there. Any other
ASGI server that implements the TLS extension (or a custom protocol like this one)
works the same way.

Proxy headers: uvicorn's ``proxy_headers`` handling is off (``--no-proxy-headers``), so
``scope["client"]`` is always the transport peer — the only address a trust decision
may rest on (see :mod:`tokenlib.integrations.asgi`).

Lab and test tooling only: loopback addresses only, HTTP/1.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final, Literal

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["ASGIApp", "ServedApp", "TLSScopeH11Protocol", "serve", "server_ssl_context"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_TLS_VERSIONS: Final = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_log = logging.getLogger(__name__)


async def answer_lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge ASGI lifespan startup and shutdown for an app with nothing to set up."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _tls_extension(ssl_object: ssl.SSLObject) -> dict[str, Any]:
    der = ssl_object.getpeercert(binary_form=True)
    version = ssl_object.version()
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(version or ""),
        "cipher_suite": None,
    }


class TLSScopeH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus the ASGI TLS extension in every request scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        tls = _tls_extension(ssl_object)
        inner: ASGIApp = self.app

        async def with_tls(scope: Scope, receive: Receive, send: Send) -> None:
            if scope.get("type") in ("http", "websocket"):
                scope = dict(scope)
                scope["extensions"] = {**(scope.get("extensions") or {}), "tls": tls}
            await inner(scope, receive, send)

        self.app = with_tls

    def shutdown(self) -> None:
        # An idle TLS connection would wait for the peer's close_notify (up to 30 s)
        # after the event loop is gone; the lab drops it instead.
        idle = self.cycle is None or self.cycle.response_complete
        super().shutdown()
        if idle and self.transport.get_extra_info("ssl_object") is not None:
            self.transport.abort()


def server_ssl_context(
    cert_file: str | os.PathLike[str],
    key_file: str | os.PathLike[str],
    *,
    ca_file: str | os.PathLike[str] | None = None,
    client_cert: Literal["none", "optional", "required"] = "none",
) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2+, HTTP/1.1 ALPN) for :class:`ServedApp`.

    ``client_cert`` is uvicorn's ``ssl_cert_reqs``: ``"optional"`` requests a client
    certificate (validated against ``ca_file`` when sent), ``"required"`` refuses the
    handshake without one. Python's ``ssl`` validates every certificate it accepts, so
    a self-signed client certificate must itself be loaded as a CA.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    ctx.set_alpn_protocols(["http/1.1"])
    if client_cert != "none":
        if ca_file is None:
            raise ValueError("requesting client certificates needs ca_file to validate them")
        ctx.load_verify_locations(cafile=ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED if client_cert == "required" else ssl.CERT_OPTIONAL
    return ctx


def _check_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the lab serves on loopback addresses only, not {host!r}")


class ServedApp:
    """An ASGI app served by uvicorn on ``127.0.0.1:<ephemeral>`` in a background thread.

    ``ssl_context`` (a server context, e.g. :meth:`tokenlib.lab.pki.LabPKI.server_context`)
    turns on HTTPS; its ``verify_mode`` decides whether a client certificate is
    requested (``CERT_OPTIONAL``) or required. Use as a context manager, or call
    :meth:`start`/:meth:`stop` (``stop`` is idempotent).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        lifespan: Literal["auto", "on", "off"] = "auto",
        log_level: str = "warning",
        graceful_timeout: float = 2.0,
    ) -> None:
        _check_loopback(host)
        self.app = app
        self.ssl_context = ssl_context
        self.host = host
        self._requested_port = port
        self._lifespan = lifespan
        self._log_level = log_level
        self._graceful = graceful_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None
        self.port = 0

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    @property
    def url(self) -> str:
        """The base URL, e.g. ``https://127.0.0.1:41234`` (no trailing slash)."""
        if not self.port:
            raise RuntimeError("the server is not running")
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __repr__(self) -> str:
        state = f"url={self.url!r}" if self.port else "stopped"
        return f"ServedApp({state})"

    def bind(self) -> str:
        """Bind the listening socket now and return :attr:`url` (so an app can be told
        its own URL before :meth:`start`). Idempotent."""
        if self._sock is None:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            # proto=IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets whose
            # proto says TCP; with proto 0 Nagle adds ~40 ms to every response.
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, self._requested_port))
            except OSError:
                sock.close()
                raise
            self._sock = sock
            self.port = int(sock.getsockname()[1])
        return self.url

    def start(self, timeout: float = 10.0) -> ServedApp:
        if self._thread is not None:
            raise RuntimeError("already started")
        self.bind()
        sock = self._sock
        assert sock is not None
        ctx = self.ssl_context
        config = uvicorn.Config(
            self.app,
            http=TLSScopeH11Protocol,
            lifespan=self._lifespan,
            # Proxy headers off: uvicorn would otherwise rewrite scope["client"] and
            # scope["scheme"] from X-Forwarded-For/-Proto for loopback peers, and every
            # lab client is a loopback peer (tokenlib.integrations.asgi, trust boundary).
            proxy_headers=False,
            forwarded_allow_ips="",
            server_header=False,
            log_level=self._log_level,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(max(1, self._graceful)),
            ssl_context_factory=(lambda _config, _default: ctx) if ctx is not None else None,
        )
        server = uvicorn.Server(config)
        self._server = server

        async def main() -> None:
            await server.serve(sockets=[sock])
            # TLS transports finish closing (close_notify, then the socket) a few loop
            # iterations after their protocol saw connection_lost; let them.
            for _ in range(20):
                await asyncio.sleep(0.005)

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # reported to the starting thread
                self._error = exc

        self._thread = threading.Thread(target=run, name=f"tokenlib-serve-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                error = self._error
                self.stop()
                raise RuntimeError(f"server on port {self.port} did not start") from error
            time.sleep(0.005)  # bounded wait for startup, not a clock dependency
        return self

    def stop(self, timeout: float = 10.0) -> None:
        server, thread, sock = self._server, self._thread, self._sock
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout=self._graceful + 1.0)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(timeout=timeout)
            if thread.is_alive():
                _log.warning("server thread on port %s did not stop", self.port)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        self._server = self._thread = self._sock = None
        self.port = 0

    def __enter__(self) -> ServedApp:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(app: ASGIApp, *, ssl_context: ssl.SSLContext | None = None, **kwargs: Any) -> ServedApp:
    """``with serve(app, ssl_context=ctx) as served: httpx.get(served.url + "/")``."""
    return ServedApp(app, ssl_context=ssl_context, **kwargs)
