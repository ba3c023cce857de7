"""ServedApp: loopback only, TLS extension in the scope, and nothing outlives the ``with``."""

from __future__ import annotations

import socket
import threading
from typing import Any

import httpx
import pytest

from tokenlib.lab._serve import ServedApp, serve, server_ssl_context
from tokenlib.lab.pki import LabPKI
from tokenlib.mtls import cert_thumbprint

from .conftest import server_context

pytestmark = pytest.mark.slow


async def echo_tls(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    tls = (scope.get("extensions") or {}).get("tls")
    body = b"none" if tls is None else str(len(tls["client_cert_chain"])).encode()
    if tls and tls["client_cert_chain"]:
        body = cert_thumbprint(tls["client_cert_chain"][0]).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("tokenlib-serve")}


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "localhost", "::"])  # noqa: S104
def test_only_loopback_addresses(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        ServedApp(echo_tls, host=host)


def test_tls_extension_and_clean_shutdown(pki: LabPKI) -> None:
    before = _threads()
    with serve(echo_tls, ssl_context=server_context(pki)) as served:
        port = served.port
        assert served.url == f"https://127.0.0.1:{port}"
        with httpx.Client(verify=pki.client_context("alice")) as http:
            assert http.get(served.url).text == pki.clients["alice"].x5t_s256
        with httpx.Client(verify=pki.client_context()) as http:
            assert http.get(served.url).text == "0"
            keep_alive = http.get(served.url)  # a pooled connection is still open at exit
            assert keep_alive.status_code == 200
    assert not served.running
    assert _threads() == before
    with socket.socket() as sock:  # the port is free again
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_plain_http_has_no_tls_extension() -> None:
    with ServedApp(echo_tls, lifespan="off") as served, httpx.Client() as http:
        assert http.get(served.url).text == "none"


def test_bind_gives_the_url_before_start_and_stop_is_idempotent() -> None:
    served = ServedApp(echo_tls)
    url = served.bind()
    assert served.bind() == url
    served.start()
    with pytest.raises(RuntimeError, match="already started"):
        served.start()
    served.stop()
    served.stop()
    with pytest.raises(RuntimeError, match="not running"):
        _ = served.url


def test_stops_on_error_inside_the_block() -> None:
    before = _threads()
    with pytest.raises(KeyError), ServedApp(echo_tls):
        raise KeyError("boom")
    assert _threads() == before


def test_a_failing_startup_is_reported() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "nope"})

    before = _threads()
    with pytest.raises(RuntimeError, match="did not start"):
        ServedApp(broken, lifespan="on").start(timeout=5)
    assert _threads() == before


@pytest.mark.parametrize(("mode", "identity", "outcome"), [
    ("required", "alice", "alice"),
    ("required", None, "refused"),
    ("optional", None, "0"),
    ("none", "alice", "0"),
])  # fmt: skip
def test_server_ssl_context_client_cert_modes(
    pki: LabPKI, mode: str, identity: str | None, outcome: str
) -> None:
    ctx = server_ssl_context(
        pki.server_cert_file,
        pki.server_key_file,
        ca_file=pki.ca_cert_file,
        client_cert=mode,  # type: ignore[arg-type]
    )
    with (
        serve(echo_tls, ssl_context=ctx) as served,
        httpx.Client(verify=pki.client_context(identity)) as http,
    ):
        if outcome == "refused":
            with pytest.raises(httpx.HTTPError):
                http.get(served.url)
            return
        expected = pki.clients["alice"].x5t_s256 if outcome == "alice" else outcome
        assert http.get(served.url).text == expected


def test_server_ssl_context_needs_a_ca_to_request_certs(pki: LabPKI) -> None:
    with pytest.raises(ValueError, match="ca_file"):
        server_ssl_context(pki.server_cert_file, pki.server_key_file, client_cert="optional")
