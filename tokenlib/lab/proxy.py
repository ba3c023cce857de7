"""A loopback reverse proxy in the four TLS modes that decide whether mTLS binding survives.

RFC 8705 binds a token to the client certificate *of the TLS connection the resource
server sees*. Whether the RS sees it depends on what sits in front of it:

``passthrough``
    An L4 relay: bytes are copied both ways, the client's TLS session (and certificate)
    reaches the RS unchanged.
``terminate``
    TLS ends at the proxy, which opens a new TLS connection to the RS. No client
    certificate is requested or forwarded: certificate-bound tokens cannot be verified.
``terminate_forward_cert``
    RFC 9440: the proxy requests a client certificate, **removes** any ``Client-Cert`` /
    ``Client-Cert-Chain`` the client sent (§2.4, §4) and sets ``Client-Cert`` from its
    own TLS session.
``misconfigured_forward``
    Like the previous one but it does not strip incoming ``Client-Cert`` fields: a client
    can claim any (public) certificate — the injection hole RFC 9440 §4 warns about,
    because the header "does not fail safe".

The L7 modes speak HTTP/1.1 only (request bodies with ``Content-Length`` or chunked,
re-framed with ``Content-Length``), drop hop-by-hop headers and add
``X-Forwarded-For``/``X-Forwarded-Proto``. ``backend`` picks which upstream a *new*
client connection goes to, so the lab can send a captured request to a second RS
instance behind the same public address, as a load balancer would.

Lab code: only loopback addresses are accepted, and it is not hardened for the Internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import threading
from collections.abc import Coroutine, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from tokenlib.mtls import format_client_cert_header

if TYPE_CHECKING:
    from tokenlib.lab.pki import LabPKI

__all__ = ["PROXY_MODES", "BackgroundLoop", "ProxyMode", "ProxyStats", "ReverseProxy"]

ProxyMode = Literal["passthrough", "terminate", "terminate_forward_cert", "misconfigured_forward"]
PROXY_MODES: Final[tuple[ProxyMode, ...]] = (
    "passthrough",
    "terminate",
    "terminate_forward_cert",
    "misconfigured_forward",
)

_MAX_HEAD: Final = 64 * 1024
_MAX_BODY: Final = 1024 * 1024
_CHUNK: Final = 64 * 1024
_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",  # re-computed from the body we actually forward
    }
)
_CLIENT_CERT_FIELDS: Final = frozenset({"client-cert", "client-cert-chain"})
_REASONS: Final = {400: "Bad Request", 502: "Bad Gateway"}

Headers = list[tuple[str, str]]
T = TypeVar("T")


class _BadMessage(Exception):
    """A malformed or oversized HTTP/1.1 message."""


@dataclass(slots=True)
class ProxyStats:
    """Counters a test or the lab can read: what the proxy did to client-cert fields."""

    connections: int = 0
    requests: int = 0
    client_cert_forwarded: int = 0
    client_cert_stripped: int = 0
    client_cert_passed_through: int = 0
    errors: int = 0


def _require_loopback(host: str, what: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"{what} must be a loopback IP address such as 127.0.0.1, got {host!r}")


@dataclass(slots=True)
class _Message:
    start_line: str
    headers: Headers
    body: bytes
    close: bool = False


def _parse_head(raw: bytes) -> tuple[str, Headers]:
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise _BadMessage("undecodable head") from None
    lines = text[:-4].split("\r\n")
    start, headers = lines[0], []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
            raise _BadMessage("malformed header line")
        headers.append((name, value.strip(" \t")))
    return start, headers


def _values(headers: Headers, name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name]


def _wants_close(headers: Headers, version: str) -> bool:
    tokens = {t.strip().lower() for v in _values(headers, "connection") for t in v.split(",")}
    return "close" in tokens or (version == "HTTP/1.0" and "keep-alive" not in tokens)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _BadMessage("bad chunk size") from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers are dropped
                pass
            return bytes(body)
        if len(body) + size > _MAX_BODY:
            raise _BadMessage("body too large")
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise _BadMessage("bad chunk terminator")


async def _read_body(
    reader: asyncio.StreamReader, headers: Headers, *, until_eof: bool
) -> tuple[bytes, bool]:
    """(body, read-until-EOF) per RFC 9112 §6.3 message length rules."""
    encodings = _values(headers, "transfer-encoding")
    lengths = _values(headers, "content-length")
    if encodings:
        if lengths:
            raise _BadMessage("both Transfer-Encoding and Content-Length")  # smuggling guard
        if encodings[-1].split(",")[-1].strip().lower() != "chunked":
            raise _BadMessage("unsupported transfer coding")
        return await _read_chunked(reader), False
    if lengths:
        if len(set(lengths)) != 1 or not lengths[0].isdigit():
            raise _BadMessage("bad Content-Length")
        size = int(lengths[0])
        if size > _MAX_BODY:
            raise _BadMessage("body too large")
        return await reader.readexactly(size), False
    if until_eof:
        data = await reader.read(_MAX_BODY + 1)
        if len(data) > _MAX_BODY:
            raise _BadMessage("body too large")
        return data, True
    return b"", False


async def _read_request(reader: asyncio.StreamReader) -> _Message | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None  # the client closed the connection between requests
        raise _BadMessage("truncated request head") from None
    except asyncio.LimitOverrunError:
        raise _BadMessage("request head too large") from None
    start, headers = _parse_head(raw)
    parts = start.split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise _BadMessage("only HTTP/1.x request lines are supported")
    body, _ = await _read_body(reader, headers, until_eof=False)
    return _Message(start, headers, body, _wants_close(headers, parts[2]))


async def _read_response(reader: asyncio.StreamReader, method: str) -> _Message:
    while True:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            raise _BadMessage("bad upstream response head") from None
        start, headers = _parse_head(raw)
        parts = start.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise _BadMessage("bad upstream status line")
        status = int(parts[1])
        if 100 <= status < 200:
            continue  # interim responses are not relayed
        if method == "HEAD" or status in (204, 304):
            body, eof = b"", False
        else:
            body, eof = await _read_body(reader, headers, until_eof=True)
        return _Message(start, headers, body, eof or _wants_close(headers, parts[0]))


def _serialize(start: str, headers: Headers, body: bytes, *, close: bool) -> bytes:
    lines = [start]
    lines.extend(f"{k}: {v}" for k, v in headers)
    lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _end_to_end(headers: Headers) -> Headers:
    listed = {t.strip().lower() for v in _values(headers, "connection") for t in v.split(",")}
    return [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP and k.lower() not in listed]


def _error(status: int) -> bytes:
    start = f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"
    return _serialize(start, [("Content-Type", "text/plain")], b"proxy error\n", close=True)


async def _close(writer: asyncio.StreamWriter | None, *, graceful: bool = True) -> None:
    """Close a connection; a TLS peer that never answers close_notify (an idle client)
    gets a short grace period, then the socket is aborted so no descriptor leaks."""
    if writer is None:
        return
    if graceful:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 0.5)
        except (asyncio.CancelledError, TimeoutError, OSError, ssl.SSLError):
            pass
        else:
            return
    writer.transport.abort()
    await asyncio.sleep(0)  # let the transport run connection_lost and close its socket


@dataclass(eq=False)
class ReverseProxy:
    """One proxy listening on ``host:port`` (0 = any free port) in front of ``upstreams``.

    ``upstreams`` may be appended to after start (the lab starts the proxy first because
    the resource servers behind it must know its public URL); ``backend`` indexes it.

    ``server_context`` is the TLS context clients meet (L7 modes); ``upstream_context``
    the one the proxy uses towards the RS. :meth:`for_mode` builds both from a
    :class:`~tokenlib.lab.pki.LabPKI`. Start and stop it on an event loop with
    :meth:`start`/:meth:`stop` (or from sync code through :class:`BackgroundLoop`).
    """

    mode: ProxyMode
    upstreams: list[tuple[str, int]]
    server_context: ssl.SSLContext | None = None
    upstream_context: ssl.SSLContext | None = None
    host: str = "127.0.0.1"
    port: int = 0
    backend: int = 0
    stats: ProxyStats = field(default_factory=ProxyStats)
    _server: asyncio.Server | None = field(default=None, init=False, repr=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in PROXY_MODES:
            raise ValueError(f"mode must be one of {', '.join(PROXY_MODES)}, got {self.mode!r}")
        _require_loopback(self.host, "the proxy address")
        for host, _ in self.upstreams:
            _require_loopback(host, "an upstream address")
        if self.mode != "passthrough" and (
            self.server_context is None or self.upstream_context is None
        ):
            raise ValueError(f"mode {self.mode} needs server_context and upstream_context")

    @classmethod
    def for_mode(
        cls, mode: ProxyMode, upstreams: Sequence[tuple[str, int]], pki: LabPKI
    ) -> ReverseProxy:
        """A proxy in ``mode`` using the lab PKI's server certificate and CA."""
        if mode == "passthrough":
            return cls(mode, list(upstreams))
        client_auth: Literal["none", "optional"] = "none" if mode == "terminate" else "optional"
        return cls(
            mode,
            list(upstreams),
            server_context=pki.server_context(client_auth=client_auth),
            upstream_context=pki.client_context(),
        )

    @property
    def url(self) -> str:
        """The public base URL clients use (``https://127.0.0.1:PORT``)."""
        return f"https://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind and start accepting connections (sets ``port`` when it was 0)."""
        if self._server is not None:
            raise RuntimeError("the proxy is already running")
        ssl_ctx = None if self.mode == "passthrough" else self.server_context
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, ssl=ssl_ctx, limit=_MAX_HEAD
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening, cancel every open connection and wait until all are closed."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._handle(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            if not self.upstreams:
                raise OSError("no upstream configured yet")
            host, port = self.upstreams[self.backend % len(self.upstreams)]
            if self.mode == "passthrough":
                up_reader, upstream_writer = await asyncio.open_connection(host, port)
                await asyncio.gather(
                    self._pump(reader, upstream_writer), self._pump(up_reader, writer)
                )
            else:
                try:
                    up_reader, upstream_writer = await asyncio.open_connection(
                        host, port, ssl=self.upstream_context, server_hostname=host, limit=_MAX_HEAD
                    )
                except OSError:  # includes ssl.SSLError
                    self.stats.errors += 1
                    writer.write(_error(502))
                    await writer.drain()
                    return
                await self._relay_http(reader, writer, up_reader, upstream_writer)
        except _BadMessage:
            self.stats.errors += 1
            with contextlib.suppress(Exception):
                writer.write(_error(400))
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            self.stats.errors += 1
        finally:
            graceful = self._server is not None  # abort at once when the proxy is stopping
            await _close(upstream_writer, graceful=graceful)
            await _close(writer, graceful=graceful)

    @staticmethod
    async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(_CHUNK):
                dst.write(data)
                await dst.drain()
        finally:
            if dst.can_write_eof():
                with contextlib.suppress(OSError):
                    dst.write_eof()

    def _peer_cert(self, writer: asyncio.StreamWriter) -> bytes | None:
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is None:
            return None
        der = ssl_object.getpeercert(binary_form=True)
        return bytes(der) if der else None

    def _rewrite(self, headers: Headers, peer_cert: bytes | None) -> Headers:
        out = _end_to_end(headers)
        if self.mode in ("terminate_forward_cert", "misconfigured_forward"):
            incoming = [h for h in out if h[0].lower() in _CLIENT_CERT_FIELDS]
            if self.mode == "terminate_forward_cert":
                out = [h for h in out if h[0].lower() not in _CLIENT_CERT_FIELDS]
                self.stats.client_cert_stripped += len(incoming)
            else:
                self.stats.client_cert_passed_through += len(incoming)
            if peer_cert is not None:
                out.append(("Client-Cert", format_client_cert_header(peer_cert)))
                self.stats.client_cert_forwarded += 1
        out.append(("X-Forwarded-For", self.host))
        out.append(("X-Forwarded-Proto", "https"))
        return out

    async def _relay_http(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        peer_cert = self._peer_cert(writer)
        while True:
            request = await _read_request(reader)
            if request is None:
                return
            self.stats.requests += 1
            headers = self._rewrite(request.headers, peer_cert)
            up_writer.write(_serialize(request.start_line, headers, request.body, close=False))
            await up_writer.drain()
            method = request.start_line.split(" ", 1)[0]
            try:
                response = await _read_response(up_reader, method)
            except (_BadMessage, asyncio.IncompleteReadError, OSError):
                self.stats.errors += 1
                writer.write(_error(502))
                await writer.drain()
                return
            close = request.close or response.close
            writer.write(
                _serialize(
                    response.start_line, _end_to_end(response.headers), response.body, close=close
                )
            )
            await writer.drain()
            if close:
                return


class BackgroundLoop:
    """An asyncio event loop in a daemon thread, so sync code (tests, the lab runner,
    a notebook) can start and stop proxies. Use as a context manager; ``close()`` stops
    the loop and joins the thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tokenlib-lab-proxy", daemon=True
        )
        self._thread.start()
        self._proxies: list[ReverseProxy] = []

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float = 10.0) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def start(self, proxy: ReverseProxy) -> ReverseProxy:
        """Start ``proxy`` on this loop; it is stopped by :meth:`close`."""
        self.run(proxy.start())
        self._proxies.append(proxy)
        return proxy

    def close(self) -> None:
        """Stop every proxy started here, then the loop and its thread."""
        if self._loop.is_closed():
            return
        try:
            while self._proxies:
                proxy = self._proxies.pop()
                with contextlib.suppress(Exception):
                    self.run(proxy.stop())
            with contextlib.suppress(Exception):
                self.run(self._cancel_leftovers())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    @staticmethod
    async def _cancel_leftovers() -> None:
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.get_running_loop().shutdown_asyncgens()

    def __enter__(self) -> BackgroundLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def serving(self, proxy: ReverseProxy) -> Iterator[ReverseProxy]:
        """Start ``proxy`` for the duration of a ``with`` block."""
        self.start(proxy)
        try:
            yield proxy
        finally:
            self._proxies.remove(proxy)
            self.run(proxy.stop())
