"""The lab reverse proxy in each mode, against an HTTPS echo upstream that reports what it saw."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tokenlib.lab.pki import LabPKI, create_pki
from tokenlib.lab.proxy import PROXY_MODES, BackgroundLoop, ProxyMode, ReverseProxy
from tokenlib.mtls import cert_thumbprint, parse_client_cert_header


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LabPKI:
    return create_pki(tmp_path_factory.mktemp("pki"))


class EchoUpstream:
    """A minimal HTTPS/1.1 server: answers every request with JSON describing it."""

    def __init__(self, name: str, context: ssl.SSLContext) -> None:
        self.name = name
        self.context = context
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                lines = head.decode("latin-1").split("\r\n")
                headers = [tuple(x.strip() for x in ln.split(":", 1)) for ln in lines[1:] if ln]
                length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
                body = await reader.readexactly(length)
                payload = json.dumps(
                    {
                        "upstream": self.name,
                        "request_line": lines[0],
                        "tls_peer_x5t": cert_thumbprint(der) if der else None,
                        "client_cert": [v for k, v in headers if k.lower() == "client-cert"],
                        "headers": [k.lower() for k, _ in headers],
                        "body": body.decode(),
                    }
                ).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + b"Transfer-Encoding: chunked\r\n\r\n"
                    + f"{len(payload):x}\r\n".encode()
                    + payload
                    + b"\r\n0\r\n\r\n"
                )
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


@pytest.fixture
def loop() -> Iterator[BackgroundLoop]:
    with BackgroundLoop() as background:
        yield background


@pytest.fixture
def upstreams(pki: LabPKI, loop: BackgroundLoop) -> Iterator[list[EchoUpstream]]:
    servers = [EchoUpstream(n, pki.server_context(client_auth="optional")) for n in ("a", "b")]
    for server in servers:
        loop.run(server.start())
    yield servers
    for server in servers:
        loop.run(server.stop())


def start_proxy(
    loop: BackgroundLoop, pki: LabPKI, mode: ProxyMode, upstreams: list[EchoUpstream]
) -> ReverseProxy:
    return loop.start(ReverseProxy.for_mode(mode, [("127.0.0.1", u.port) for u in upstreams], pki))


def get(
    pki: LabPKI, url: str, *, client: str | None = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    with httpx.Client(verify=pki.client_context(client), timeout=5) as http:
        response = http.get(url + "/r?x=1", headers=headers)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def cert_header(pki: LabPKI, name: str) -> str:
    return pki.clients[name].client_cert_header


@pytest.mark.parametrize(
    ("mode", "tls_peer", "forwarded"),
    [
        ("passthrough", "alice", []),
        ("terminate", None, []),
        ("terminate_forward_cert", None, ["alice"]),
        ("misconfigured_forward", None, ["alice"]),
    ],
)
def test_what_the_upstream_sees_of_the_client_certificate(
    pki: LabPKI,
    loop: BackgroundLoop,
    upstreams: list[EchoUpstream],
    mode: ProxyMode,
    tls_peer: str | None,
    forwarded: list[str],
) -> None:
    proxy = start_proxy(loop, pki, mode, upstreams)
    seen = get(pki, proxy.url, client="alice")
    expected_peer = pki.clients[tls_peer].x5t_s256 if tls_peer else None
    assert seen["tls_peer_x5t"] == expected_peer
    assert [cert_thumbprint(parse_client_cert_header(v)) for v in seen["client_cert"]] == [
        pki.clients[n].x5t_s256 for n in forwarded
    ]
    assert seen["request_line"] == "GET /r?x=1 HTTP/1.1"


@pytest.mark.parametrize(
    ("mode", "reaching"),
    [
        ("passthrough", ["bob"]),  # plain bytes: the RS must not trust the header
        ("terminate", ["bob"]),  # RFC 9440-unaware proxy passes it on; RS must not trust it
        ("terminate_forward_cert", []),  # stripped (RFC 9440 §4)
        ("misconfigured_forward", ["bob"]),  # the injection hole
    ],
)
def test_injected_client_cert_header_without_tls_cert(
    pki: LabPKI,
    loop: BackgroundLoop,
    upstreams: list[EchoUpstream],
    mode: ProxyMode,
    reaching: list[str],
) -> None:
    proxy = start_proxy(loop, pki, mode, upstreams)
    seen = get(pki, proxy.url, headers={"Client-Cert": cert_header(pki, "bob")})
    assert seen["tls_peer_x5t"] is None
    if mode == "misconfigured_forward":
        assert proxy.stats.client_cert_passed_through == 1
    assert [cert_thumbprint(parse_client_cert_header(v)) for v in seen["client_cert"]] == [
        pki.clients[n].x5t_s256 for n in reaching
    ]


def test_forwarding_proxy_replaces_injected_header_with_the_real_cert(
    pki: LabPKI, loop: BackgroundLoop, upstreams: list[EchoUpstream]
) -> None:
    proxy = start_proxy(loop, pki, "terminate_forward_cert", upstreams)
    seen = get(
        pki,
        proxy.url,
        client="mallory",
        headers={"Client-Cert": cert_header(pki, "alice"), "Client-Cert-Chain": "x"},
    )
    assert [cert_thumbprint(parse_client_cert_header(v)) for v in seen["client_cert"]] == [
        pki.clients["mallory"].x5t_s256
    ]
    assert "client-cert-chain" not in seen["headers"]
    assert proxy.stats.client_cert_stripped == 2
    assert proxy.stats.client_cert_forwarded == 1


@pytest.mark.parametrize("mode", [m for m in PROXY_MODES if m != "passthrough"])
def test_l7_modes_relay_bodies_and_keep_alive(
    pki: LabPKI, loop: BackgroundLoop, upstreams: list[EchoUpstream], mode: ProxyMode
) -> None:
    proxy = start_proxy(loop, pki, mode, upstreams)

    def chunks() -> Iterator[bytes]:
        yield b"hello "
        yield b"world"

    with httpx.Client(verify=pki.client_context(), timeout=5) as http:
        first = http.post(proxy.url + "/a", content=b"x" * 1000).json()
        second = http.post(proxy.url + "/b", content=chunks()).json()
        third = http.get(
            proxy.url + "/c", headers={"Connection": "keep-alive, X-Drop", "X-Drop": "1"}
        )
    assert first["body"] == "x" * 1000
    assert second["body"] == "hello world"
    assert "x-drop" not in third.json()["headers"]
    assert "x-forwarded-proto" in first["headers"]
    assert proxy.stats.connections == 1
    assert proxy.stats.requests == 3


@pytest.mark.parametrize("mode", PROXY_MODES)
def test_backend_selects_the_upstream_for_new_connections(
    pki: LabPKI, loop: BackgroundLoop, upstreams: list[EchoUpstream], mode: ProxyMode
) -> None:
    proxy = start_proxy(loop, pki, mode, upstreams)
    assert get(pki, proxy.url)["upstream"] == "a"
    proxy.backend = 1
    assert get(pki, proxy.url)["upstream"] == "b"


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ],
)
def test_malformed_requests_get_400(
    pki: LabPKI, loop: BackgroundLoop, upstreams: list[EchoUpstream], raw: bytes
) -> None:
    proxy = start_proxy(loop, pki, "terminate", upstreams)
    ctx = pki.client_context()
    with (
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock,
        ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(raw)
        answer = tls.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400 ")


def test_upstream_down_gives_502(pki: LabPKI, loop: BackgroundLoop) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    proxy = loop.start(ReverseProxy.for_mode("terminate", [("127.0.0.1", dead_port)], pki))
    with httpx.Client(verify=pki.client_context(), timeout=5) as http:
        assert http.get(proxy.url + "/").status_code == 502
    assert proxy.stats.errors == 1


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "localhost"])  # noqa: S104
def test_only_loopback_addresses(pki: LabPKI, host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        ReverseProxy("passthrough", [("127.0.0.1", 1)], host=host)
    with pytest.raises(ValueError, match="loopback"):
        ReverseProxy("passthrough", [(host, 1)])


def test_l7_mode_needs_tls_contexts() -> None:
    with pytest.raises(ValueError, match="server_context"):
        ReverseProxy("terminate", [("127.0.0.1", 1)])
    with pytest.raises(ValueError, match="mode"):
        ReverseProxy("sideways", [("127.0.0.1", 1)])  # type: ignore[arg-type]


def _port_is_free(port: int) -> bool:
    """Nothing listens on ``port`` (SO_REUSEADDR ignores TIME_WAIT leftovers of closed
    connections, but not a socket that is still bound and listening)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
        return True


def test_shutdown_closes_ports_connections_and_thread(
    pki: LabPKI, tmp_path: Path, upstreams: list[EchoUpstream]
) -> None:
    threads_before = set(threading.enumerate())
    background = BackgroundLoop()
    proxies = [start_proxy(background, pki, m, upstreams) for m in PROXY_MODES]
    ports = [p.port for p in proxies]
    # Leave a keep-alive connection open on every proxy while shutting down.
    clients = [httpx.Client(verify=pki.client_context("alice"), timeout=5) for _ in proxies]
    try:
        for http, proxy in zip(clients, proxies, strict=True):
            assert http.get(proxy.url + "/").status_code == 200
        background.close()
        background.close()  # idempotent
        assert all(_port_is_free(port) for port in ports)
        assert set(threading.enumerate()) <= threads_before
        for http, proxy in zip(clients, proxies, strict=True):
            with pytest.raises(httpx.TransportError):
                http.get(proxy.url + "/")
    finally:
        for http in clients:
            http.close()


def test_serving_context_manager_stops_the_proxy(
    pki: LabPKI, loop: BackgroundLoop, upstreams: list[EchoUpstream]
) -> None:
    proxy = ReverseProxy.for_mode("terminate", [("127.0.0.1", upstreams[0].port)], pki)
    with loop.serving(proxy) as running:
        assert get(pki, running.url)["upstream"] == "a"
        port = running.port
    assert _port_is_free(port)
