"""DPoPMiddleware in-process: HEAD/OPTIONS/default-rule semantics, forwarded headers from a
trusted proxy, escaped log lines and the server-rewrite detection (no sockets needed)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenlib.bearer import Issuer
from tokenlib.dpop import create_proof
from tokenlib.integrations._trust import MAX_REMEMBERED_PEERS, TrustedProxies
from tokenlib.integrations.asgi import (
    DPoPMiddleware,
    RouteScopes,
    _printable,
    server_rewrites_peer,
)
from tokenlib.jwk import generate_key, jwk_thumbprint
from tokenlib.server import ResourceServer

AS = "https://as.lab.invalid"
AUD = "https://api.lab.invalid"
ISSUER = Issuer(AS, generate_key("ES256"))
DPOP_KEY = generate_key("ES256")
NOW = float(int(time.time()))


def token(scope: str = "read", jkt: str | None = None) -> str:
    return ISSUER.issue(subject="svc", client_id="svc", audience=AUD, scope=scope, jkt=jkt, now=NOW)


class Inner:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls.append((scope["method"], scope["path"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def call(
    middleware: DPoPMiddleware,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    client: str = "192.0.2.7",
    receive: Any = None,
) -> tuple[int, dict[str, str]]:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def default_receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode("utf-8"),
        "query_string": b"",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": (client, 40000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    asyncio.run(middleware(scope, receive or default_receive, send))
    start = sent[0]
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}


def middleware(inner: Inner, **options: Any) -> DPoPMiddleware:
    rs = ResourceServer(issuer=AS, audience=AUD, jwks=ISSUER.jwks())
    options.setdefault("public_base_url", "https://api.example")
    return DPoPMiddleware(inner, resource_server=rs, clock=lambda: NOW, **options)


BEARER = {"Authorization": f"Bearer {token()}"}


@pytest.mark.parametrize(
    ("method", "path", "expected", "ran"),
    [
        ("GET", "/admin", 403, False),
        ("HEAD", "/admin", 403, False),  # HEAD inherits GET's rule (was 200 + handler ran)
        ("GET", "/admin/x", 403, False),
        ("HEAD", "/items", 200, True),
        ("POST", "/admin", 200, True),  # the rule names GET only; default "allow"
        ("OPTIONS", "/admin", 200, True),  # not a preflight: an ordinary method
    ],
)
def test_head_inherits_get_rules(method: str, path: str, expected: int, ran: bool) -> None:
    inner = Inner()
    mw = middleware(inner, routes={"GET /admin": ["admin"], "GET /admin/*": ["admin"]})
    status, headers = call(mw, method, path, BEARER)
    assert status == expected
    assert bool(inner.calls) is ran
    if expected == 403:
        assert 'error="insufficient_scope"' in headers["www-authenticate"]


def test_explicit_head_rule_and_rule_parsing() -> None:
    rule = RouteScopes.parse("GET /a", ["x"])
    assert rule.matches("HEAD", "/a")
    assert not RouteScopes.parse("POST /a", ["x"]).matches("HEAD", "/a")
    assert RouteScopes.parse("HEAD /a", ["x"]).matches("HEAD", "/a")
    assert not RouteScopes.parse("HEAD /a", ["x"]).matches("GET", "/a")


def test_preflight_unchanged() -> None:
    inner = Inner()
    mw = middleware(inner, routes={"GET /admin": ["admin"]}, cors_origins=["https://app.example"])
    status, headers = call(
        mw,
        "OPTIONS",
        "/admin",
        {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
    )
    assert status == 204
    assert headers["access-control-allow-origin"] == "https://app.example"
    assert inner.calls == []


@pytest.mark.parametrize(
    ("unmatched", "path", "headers", "expected", "ran"),
    [
        ("allow", "/other", BEARER, 200, True),
        ("deny", "/other", BEARER, 403, False),
        ("deny", "/other", {}, 401, False),  # authentication is still checked first
        ("deny", "/items", BEARER, 200, True),
        ("deny", "/health", {}, 200, True),  # public paths stay public
    ],
)
def test_unmatched_default(
    unmatched: Any, path: str, headers: dict[str, str], expected: int, ran: bool
) -> None:
    inner = Inner()
    mw = middleware(
        inner, routes={"/items": ["read"]}, unmatched=unmatched, public_paths=["/health"]
    )
    status, _ = call(mw, "GET", path, headers)
    assert status == expected
    assert bool(inner.calls) is ran


def test_bad_options_refused() -> None:
    with pytest.raises(ValueError, match="unmatched"):
        middleware(Inner(), unmatched="maybe")
    with pytest.raises(ValueError, match="forwarded"):
        middleware(Inner(), forwarded="x-real-ip")
    with pytest.raises(ValueError, match="trusted_proxies"):
        middleware(Inner(), trusted_proxies=["*"])
    with pytest.raises(ValueError, match="without routes"):
        middleware(Inner(), unmatched="deny")
    with pytest.raises(ValueError, match="replay_timeout"):
        middleware(Inner(), replay_timeout=0)


@pytest.mark.parametrize(
    "path",
    ["/items\nINFO refused GET /forged", "/a\r\nb", "/x\x1b[31m", "/u\u2028v", "/c\x85d"],
)
def test_logged_values_are_escaped(path: str, caplog: pytest.LogCaptureFixture) -> None:
    mw = middleware(Inner())
    with caplog.at_level(logging.INFO, logger="tokenlib.integrations.asgi"):
        status, _ = call(mw, "GET", path, {})
    assert status == 401
    (record,) = [r for r in caplog.records if r.getMessage().startswith("refused")]
    message = record.getMessage()
    for control in ("\n", "\r", "\x1b", "\u2028", "\x85"):
        assert control not in message
    assert message.startswith("refused GET /")


def test_printable() -> None:
    assert _printable("a\nb") == "a\\x0ab"
    assert _printable("x" * 400).endswith("...")
    assert _printable("plain/path") == "plain/path"
    assert _printable("/caf\u00e9/\u202egnp.exe") == "/caf\u00e9/\\u202egnp.exe"  # bidi override
    assert _printable("\U000e0001") == "\\U000e0001"


# ----------------------------------------------------------------- forwarded headers


def dpop_headers(htu: str, extra: dict[str, str]) -> dict[str, str]:
    at = token(jkt=jwk_thumbprint(DPOP_KEY))
    proof = create_proof(DPOP_KEY, "GET", htu, access_token=at, now=NOW)
    return {"Authorization": f"DPoP {at}", "DPoP": proof, **extra}


@pytest.mark.parametrize(
    ("forwarded", "client", "headers", "htu", "expected"),
    [
        # RFC 7239 from the trusted proxy: its (rightmost) element names the public origin.
        (
            "rfc7239",
            "10.0.0.5",
            {"Forwarded": 'for=a;host=evil.example, for=b;proto=https;host="api.example"'},
            "https://api.example/items",
            200,
        ),
        # ... and only the configured family is read: X-Forwarded-Host is ignored.
        (
            "rfc7239",
            "10.0.0.5",
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"},
            "https://evil.example/items",
            401,
        ),
        (
            "x-forwarded",
            "10.0.0.5",
            {"Forwarded": "proto=https;host=evil.example"},
            "https://evil.example/items",
            401,
        ),
        # Untrusted peer: forwarded headers never count.
        (
            "x-forwarded",
            "192.0.2.7",
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"},
            "https://evil.example/items",
            401,
        ),
        # A malformed forwarded host from the trusted proxy is a 400, not a URL.
        (
            "x-forwarded",
            "10.0.0.5",
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example/x@y"},
            "https://evil.example/items",
            400,
        ),
        (
            "x-forwarded",
            "10.0.0.5",
            {"X-Forwarded-Proto": "javascript", "X-Forwarded-Host": "api.example"},
            "https://api.example/items",
            400,
        ),
        (
            "x-forwarded",
            "::ffff:10.0.0.5",
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example:8443"},
            "https://api.example:8443/items",
            200,
        ),
    ],
)
def test_forwarded_origin_only_from_trusted_peer(
    forwarded: Any, client: str, headers: dict[str, str], htu: str, expected: int
) -> None:
    mw = middleware(
        Inner(), public_base_url=None, trusted_proxies=["10.0.0.5"], forwarded=forwarded
    )
    status, _ = call(mw, "GET", "/items", dpop_headers(htu, headers), client=client)
    assert status == expected


# --------------------------------------------------------------- server detection


class FakeConfig:
    def __init__(self, proxy_headers: bool, forwarded_allow_ips: Any) -> None:
        self.proxy_headers = proxy_headers
        self.forwarded_allow_ips = forwarded_allow_ips


def uvicorn_like(name: str, **attributes: Any) -> Any:
    """An object whose class lives in a ``uvicorn.`` module, like uvicorn's own."""
    cls = type(name, (), {"__module__": "uvicorn.lifespan.on"})
    owner = cls()
    for key, value in attributes.items():
        setattr(owner, key, value)

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    return receive.__get__(owner)


@pytest.mark.parametrize(
    ("proxy_headers", "allow", "refused"),
    [
        (True, "127.0.0.1,::1", True),
        (True, "*", True),
        (True, ["10.0.0.5"], True),
        (True, "", False),
        (True, " , ", False),
        (True, [], False),
        (False, "127.0.0.1", False),
    ],
)
def test_uvicorn_configuration_detected(proxy_headers: bool, allow: Any, refused: bool) -> None:
    receive = uvicorn_like("LifespanOn", config=FakeConfig(proxy_headers, allow))
    problem = server_rewrites_peer(receive)
    assert (problem is not None) is refused


def test_other_servers_not_mistaken_for_uvicorn() -> None:
    class LifespanOn:
        config = FakeConfig(True, "127.0.0.1")

        async def receive(self) -> dict[str, Any]:
            return {}

    assert server_rewrites_peer(LifespanOn().receive) is None
    assert server_rewrites_peer(lambda: None) is None


class FakeTransport:
    def __init__(self, peer: Any, tls: bool) -> None:
        self.info = {"peername": peer, "sslcontext": object() if tls else None}

    def get_extra_info(self, name: str) -> Any:
        return self.info.get(name)


@pytest.mark.parametrize(
    ("peer", "tls", "expected"),
    [
        (("192.0.2.7", 40000), False, 200),
        (("127.0.0.1", 40000), False, 500),  # scope says 192.0.2.7: rewritten
        (("192.0.2.7", 40000), True, 500),  # scope says http on a TLS connection
    ],
)
def test_rewritten_peer_refused_per_request(
    peer: Any, tls: bool, expected: int, caplog: pytest.LogCaptureFixture
) -> None:
    receive = uvicorn_like("RequestResponseCycle", transport=FakeTransport(peer, tls))
    inner = Inner()
    mw = middleware(inner, trusted_proxies=["10.0.0.5"])
    with caplog.at_level(logging.ERROR, logger="tokenlib.integrations.asgi"):
        status, _ = call(mw, "GET", "/items", BEARER, receive=receive)
    assert status == expected
    if expected == 500:
        assert inner.calls == []
        assert "--no-proxy-headers" in caplog.text
    # With nothing to trust and a configured URL, the rewrite cannot change a decision.
    relaxed = middleware(Inner())
    assert call(relaxed, "GET", "/items", BEARER, receive=receive)[0] == 200


def test_trusted_proxies_value_type() -> None:
    proxies = TrustedProxies(["10.0.0.5", "2001:db8::/32"])
    assert "10.0.0.5" in proxies
    assert "[2001:db8::1]" in proxies
    assert "::ffff:10.0.0.5" in proxies
    assert None not in proxies
    assert "10.0.0.6" not in proxies
    assert "unix:/tmp/sock" not in proxies
    assert "" not in proxies
    assert not TrustedProxies([])
    assert repr(proxies) == "TrustedProxies(['10.0.0.5/32', '2001:db8::/32'])"
    assert TrustedProxies("10.0.0.5") == TrustedProxies(["10.0.0.5/32"])


def test_trusted_proxies_remember_a_bounded_number_of_peers() -> None:
    """A flood of distinct source addresses cannot grow the memo of answers past its
    bound, and never changes an answer (the proxy is trusted before, during and after)."""
    proxies = TrustedProxies(["10.0.0.5", "2001:db8::/32"])
    assert "10.0.0.5" in proxies
    for i in range(5 * MAX_REMEMBERED_PEERS):
        peer = f"2001:db9::{i:x}" if i % 2 else f"198.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
        assert peer not in proxies
        assert len(proxies._answers) <= MAX_REMEMBERED_PEERS
        if i % 997 == 0:
            assert "10.0.0.5" in proxies
            assert f"2001:db8::{i:x}" in proxies
    assert "10.0.0.5" in proxies
    assert "::ffff:10.0.0.5" in proxies


@given(
    st.one_of(
        st.ip_addresses().map(str),
        st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
        st.text(max_size=20),
    )
)
def test_trusted_proxies_memo_gives_the_parsed_answer(peer: str) -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "2001:db8::/32", "::1"])
    expected = peer in TrustedProxies(["10.0.0.0/8", "2001:db8::/32", "::1"])
    assert (peer in proxies) is expected
    assert (peer in proxies) is expected  # remembered
    if expected:
        assert peer in proxies._answers


@pytest.mark.parametrize(
    "bad", ["*", "", "proxy.internal", "10.0.0.0/33", " 10.0.0.5", "1.2.3.4,5.6.7.8"]
)
def test_trusted_proxies_refuses_bad_entries(bad: str) -> None:
    with pytest.raises(ValueError, match=r"trusted_proxies\[1\]"):
        TrustedProxies(["10.0.0.5", bad])


# ------------------------------------------------- forwarded client certificates


class HeaderSpy(Inner):
    def __init__(self) -> None:
        super().__init__()
        self.headers: list[set[str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.headers.append({k.decode() for k, _ in scope["headers"]})
        grant = scope["tokenlib.grant"]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"x-binding", grant.binding.encode())],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def alb_value(cert: Any) -> str:
    from urllib.parse import quote

    from cryptography.hazmat.primitives.serialization import Encoding

    return quote(cert.public_bytes(Encoding.PEM).decode(), safe="+=/")


def xfcc_value(cert: Any) -> str:
    from cryptography.hazmat.primitives import hashes

    return f'Hash={cert.fingerprint(hashes.SHA256()).hex()};Subject="CN=alice"'


@pytest.mark.parametrize(
    ("source", "header", "make"),
    [
        ("envoy_xfcc", "x-forwarded-client-cert", xfcc_value),  # hash only → thumbprint
        ("aws_alb", "x-amzn-mtls-clientcert-leaf", alb_value),  # a certificate
    ],
)
def test_vendor_certificate_header_only_from_trusted_proxy(
    pki: Any, source: str, header: str, make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    alice = pki.clients["alice"]
    at = ISSUER.issue(
        subject="svc", client_id="svc", audience=AUD, scope="read", x5t_s256=alice.x5t_s256, now=NOW
    )
    bound = {"Authorization": f"Bearer {at}"}
    forwarded = {header: make(alice.certificate)}
    spy = HeaderSpy()
    mw = middleware(spy, trusted_proxies=["10.0.0.5"], client_cert_source=source)
    status, headers = call(mw, "GET", "/items", {**bound, **forwarded}, client="10.0.0.5")
    assert status == 200
    assert headers["x-binding"] == "mtls"
    with caplog.at_level(logging.WARNING, logger="tokenlib.integrations.asgi"):
        status, _ = call(mw, "GET", "/items", {**bound, **forwarded}, client="192.0.2.7")
    assert status == 401
    assert f"ignoring {header} header from untrusted peer 192.0.2.7" in caplog.text
    # An unbound token passes, but the app never sees the untrusted certificate header.
    status, _ = call(mw, "GET", "/items", {**BEARER, **forwarded}, client="192.0.2.7")
    assert status == 200
    assert header not in spy.headers[-1]
    assert "authorization" in spy.headers[-1]
    # Bob's certificate forwarded by the trusted proxy does not satisfy alice's binding.
    bob = {header: make(pki.clients["bob"].certificate)}
    assert call(mw, "GET", "/items", {**bound, **bob}, client="10.0.0.5")[0] == 401
    # A malformed value from the trusted proxy is a 400 invalid_request, not a crash.
    assert call(mw, "GET", "/items", {**bound, header: "%%%"}, client="10.0.0.5")[0] == 400


def test_unknown_client_cert_source_refused() -> None:
    with pytest.raises(ValueError, match="client_cert_source"):
        middleware(Inner(), client_cert_source="apache")


@pytest.mark.parametrize(("trusted_hosts", "expected"), [("", 200), ("192.0.2.7", 500), ("*", 500)])
def test_uvicorn_proxy_headers_wrapper_in_process(trusted_hosts: str, expected: int) -> None:
    """uvicorn's ProxyHeadersMiddleware around the middleware (no transport to compare
    with in-process): refused when it trusts any peer, harmless when it trusts none."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    inner = Inner()
    mw = middleware(inner, trusted_proxies=["10.0.0.5"])
    wrapped = ProxyHeadersMiddleware(mw, trusted_hosts=trusted_hosts)  # type: ignore[arg-type]
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/items",
        "raw_path": b"/items",
        "query_string": b"",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("192.0.2.7", 40000),
        "headers": [
            (b"authorization", BEARER["Authorization"].encode()),
            (b"x-forwarded-for", b"10.0.0.5"),
        ],
    }
    asyncio.run(wrapped(scope, receive, send))
    assert sent[0]["status"] == expected
    assert bool(inner.calls) is (expected == 200)


def test_blocking_store_never_holds_up_bearer_requests() -> None:
    """A blocking replay store (sync Redis) runs DPoP verification in worker threads; with
    every worker thread stuck in the store, bearer requests still answer inline."""
    import threading

    gate = threading.Event()

    class StuckStore:
        def check_and_store(
            self, key: str, *, expires_at: float, now: float, owner: str | None = None
        ) -> bool:
            gate.wait(10)
            return True

    rs = ResourceServer(issuer=AS, audience=AUD, jwks=ISSUER.jwks(), replay_cache=StuckStore())
    inner = Inner()
    mw = DPoPMiddleware(inner, resource_server=rs, public_base_url="https://api.example")
    url = "https://api.example/items"
    stuck = 45  # more than anyio's 40 worker threads

    async def one(headers: dict[str, str]) -> int:
        sent: list[dict[str, Any]] = []

        async def send(message: Any) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/items",
            "raw_path": b"/items",
            "query_string": b"",
            "scheme": "https",
            "server": ("127.0.0.1", 8443),
            "client": ("192.0.2.7", 40000),
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        }
        await mw(scope, receive, send)
        return int(sent[0]["status"])

    async def scenario() -> tuple[list[int], int]:
        at = ISSUER.issue(
            subject="svc", client_id="svc", audience=AUD, jkt=jwk_thumbprint(DPOP_KEY)
        )
        dpop = [
            asyncio.create_task(
                one(
                    {
                        "Authorization": f"DPoP {at}",
                        "DPoP": create_proof(DPOP_KEY, "GET", url, access_token=at),
                    }
                )
            )
            for _ in range(stuck)
        ]
        await asyncio.sleep(0.05)
        try:
            bearer = await asyncio.wait_for(one(BEARER), timeout=5)
            assert not any(task.done() for task in dpop)  # still waiting on the store
        finally:
            gate.set()
        return list(await asyncio.gather(*dpop)), bearer

    statuses, bearer = asyncio.run(scenario())
    assert bearer == 200
    assert statuses == [200] * stuck


# ------------------------------------------------------------------------ properties


@given(st.text())
def test_printable_never_lets_a_line_break_through(text: str) -> None:
    out = _printable(text)
    assert out.isprintable()
    for control in ("\n", "\r", "\x0b", "\x0c", "\x1b", "\x85", "\u2028", "\u2029"):
        assert control not in out


@given(st.ip_addresses(v=4), st.integers(min_value=8, max_value=32))
def test_trusted_networks_contain_their_addresses(address: Any, prefix: int) -> None:
    import ipaddress

    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    proxies = TrustedProxies([str(network)])
    assert str(address) in proxies
    assert f"::ffff:{address}" in proxies
    outside = (
        network.broadcast_address + 1 if network.broadcast_address.packed != b"\xff" * 4 else None
    )
    if outside is not None and outside not in network:
        assert str(outside) not in proxies
