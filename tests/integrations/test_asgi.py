"""DPoPMiddleware over real HTTPS on loopback: a Starlette app behind it, httpx in front."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.lab.conftest import RedisServer, server_context
from tokenlib.bearer import Issuer
from tokenlib.dpop import create_proof
from tokenlib.integrations.asgi import (
    GRANT_SCOPE_KEY,
    DPoPMiddleware,
    RouteScopes,
    get_grant,
    require_scopes,
)
from tokenlib.integrations.httpx import BearerAuth, DPoPAuth
from tokenlib.integrations.redis import RedisReplayCache
from tokenlib.jwk import generate_key, jwk_thumbprint
from tokenlib.lab._serve import ServedApp
from tokenlib.lab.pki import LabPKI
from tokenlib.server import ResourceServer

pytestmark = pytest.mark.slow

AS = "https://as.lab.invalid"
AUD = "https://api.lab.invalid"
ISSUER = Issuer(AS, generate_key("ES256"))
DPOP_KEY = generate_key("ES256")
NOW = float(int(time.time()))


def clock() -> float:
    return NOW


async def items(request: Request) -> JSONResponse:
    grant = get_grant(request)
    assert request.scope[GRANT_SCOPE_KEY] is grant is request.state.grant
    return JSONResponse(
        {"binding": grant.binding, "client_id": grant.client_id, "scopes": sorted(grant.scopes)}
    )


async def write(request: Request) -> JSONResponse:
    grant = require_scopes("write")(request)
    return JSONResponse({"ok": grant.client_id})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def starlette_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/items", items),
            Route("/items/{id}", items, methods=["GET", "DELETE"]),
            Route("/admin", items),
            Route("/write", write, methods=["POST"]),
            Route("/health", health),
        ]
    )


def token(*, scope: str = "read", jkt: str | None = None, x5t: str | None = None) -> str:
    return ISSUER.issue(
        subject="svc", client_id="svc", audience=AUD, scope=scope, jkt=jkt, x5t_s256=x5t, now=NOW
    )


Serve = Callable[..., ServedApp]


@pytest.fixture
def serve(pki: LabPKI) -> Iterator[Serve]:
    """Start DPoPMiddleware(Starlette) over TLS; options go to the middleware/RS."""
    running: list[ServedApp] = []

    def start(
        *,
        base: str | None = "self",
        rs_options: dict[str, Any] | None = None,
        client_auth: str = "optional",
        **options: Any,
    ) -> ServedApp:
        rs = ResourceServer(issuer=AS, audience=AUD, jwks=ISSUER.jwks(), **(rs_options or {}))
        middleware = DPoPMiddleware(
            starlette_app(),
            resource_server=rs,
            routes={"/admin": ["admin"], "DELETE /items/*": ["write"]},
            public_paths=["/health"],
            clock=clock,
            **options,
        )
        served = ServedApp(middleware, ssl_context=server_context(pki, client_auth=client_auth))
        url = served.bind()
        middleware.public_base_url = url if base == "self" else base
        running.append(served.start())
        return served

    try:
        yield start
    finally:
        for served in running:
            served.stop()


def client(pki: LabPKI, identity: str | None = None, **kw: Any) -> httpx.Client:
    return httpx.Client(verify=pki.client_context(identity), **kw)


def test_dpop_bound_token_accepted_and_grant_in_scope(serve: Serve, pki: LabPKI) -> None:
    served = serve()
    auth = DPoPAuth(DPOP_KEY, clock=clock).with_token(token(jkt=jwk_thumbprint(DPOP_KEY)))
    with client(pki, auth=auth) as http:
        for _ in range(3):  # a fresh proof each time: never a replay
            response = http.get(f"{served.url}/items?page=2")
            assert response.status_code == 200, response.text
            assert response.json() == {"binding": "dpop", "client_id": "svc", "scopes": ["read"]}


def test_bearer_token_accepted(serve: Serve, pki: LabPKI) -> None:
    served = serve()
    with client(pki, auth=BearerAuth(token())) as http:
        assert http.get(f"{served.url}/items").json()["binding"] == "bearer"


def test_missing_token_challenge(serve: Serve, pki: LabPKI) -> None:
    served = serve()
    with client(pki) as http:
        response = http.get(f"{served.url}/items")
        assert http.get(f"{served.url}/health").status_code == 200
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("DPoP algs=")
    assert ", Bearer" in challenge
    assert "error=" not in challenge
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"] == "invalid_request"


def test_captured_proof_replay_refused(serve: Serve, pki: LabPKI) -> None:
    served = serve()
    at = token(jkt=jwk_thumbprint(DPOP_KEY))
    url = f"{served.url}/items"
    headers = {
        "Authorization": f"DPoP {at}",
        "DPoP": create_proof(DPOP_KEY, "GET", url, access_token=at, now=NOW),
    }
    with client(pki) as http:
        assert http.get(url, headers=headers).status_code == 200
        replay = http.get(url, headers=headers)
    assert replay.status_code == 401
    assert 'error="invalid_dpop_proof"' in replay.headers["WWW-Authenticate"]
    assert replay.json()["error"] == "invalid_dpop_proof"


@pytest.mark.parametrize(
    ("trusted", "base", "proof_origin", "expected"),
    [
        # A configured public URL wins: Host / X-Forwarded-* never change htu.
        (("127.0.0.1",), "https://api.example.com", "https://api.example.com", 200),
        (("127.0.0.1",), "https://api.example.com", "https://evil.example", 401),
        # No public URL, untrusted peer: the socket address, not the forged headers.
        ((), None, "https://evil.example", 401),
        ((), None, "SERVER", 200),
        # No public URL, trusted proxy peer: X-Forwarded-Proto/Host are believed —
        # the rightmost value, which that proxy appended, not what the client sent.
        (("127.0.0.0/8",), None, "https://evil.example", 200),
        (("127.0.0.0/8",), None, "https://client-forged.example", 401),
    ],
)
def test_htu_never_depends_on_client_headers_unless_trusted(
    serve: Serve,
    pki: LabPKI,
    trusted: tuple[str, ...],
    base: str | None,
    proof_origin: str,
    expected: int,
) -> None:
    served = serve(base=base, trusted_proxies=trusted)
    at = token(jkt=jwk_thumbprint(DPOP_KEY))
    origin = served.url if proof_origin == "SERVER" else proof_origin
    proof = create_proof(DPOP_KEY, "GET", f"{origin}/items", access_token=at, now=NOW)
    headers = {
        "Authorization": f"DPoP {at}",
        "DPoP": proof,
        "Host": "evil.example",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "client-forged.example, evil.example",
    }
    with client(pki) as http:
        response = http.get(f"{served.url}/items", headers=headers)
    assert response.status_code == expected, response.text
    if expected == 401:
        assert response.json()["error"] == "invalid_dpop_proof"


@pytest.mark.parametrize(
    ("identity", "bound_to", "expected", "error"),
    [
        ("alice", "alice", 200, None),
        ("bob", "alice", 401, "invalid_token"),
        (None, "alice", 401, "invalid_token"),
    ],
)
def test_certificate_bound_token_from_the_tls_connection(
    serve: Serve, pki: LabPKI, identity: str | None, bound_to: str, expected: int, error: str | None
) -> None:
    served = serve()
    at = token(x5t=pki.clients[bound_to].x5t_s256)
    with client(pki, identity, auth=BearerAuth(at)) as http:
        response = http.get(f"{served.url}/items")
    assert response.status_code == expected
    if error:
        assert response.json()["error"] == error
    else:
        assert response.json()["binding"] == "mtls"


def test_client_cert_header_only_from_trusted_proxies(
    serve: Serve, pki: LabPKI, caplog: pytest.LogCaptureFixture
) -> None:
    at = token(x5t=pki.clients["alice"].x5t_s256)
    injected = {"Client-Cert": pki.clients["alice"].client_cert_header}
    untrusted = serve(trusted_proxies=["10.0.0.0/8"])
    with (
        caplog.at_level(logging.WARNING, logger="tokenlib.integrations.asgi"),
        client(pki, auth=BearerAuth(at)) as http,
    ):
        refused = http.get(f"{untrusted.url}/items", headers=injected)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_token"
    assert any(
        "ignoring Client-Cert header from untrusted peer 127.0.0.1" in r.message
        for r in caplog.records
    )
    assert pki.clients["alice"].client_cert_header not in caplog.text
    proxy = serve(trusted_proxies=["127.0.0.1"])
    with client(pki, auth=BearerAuth(at)) as http:
        accepted = http.get(f"{proxy.url}/items", headers=injected)
        missing = http.get(f"{proxy.url}/items")
        # From a trusted peer the header, not that peer's own TLS certificate, counts.
    with client(pki, "alice", auth=BearerAuth(at)) as http:
        own_cert = http.get(f"{proxy.url}/items")
    assert accepted.status_code == 200
    assert accepted.json()["binding"] == "mtls"
    assert missing.status_code == 401
    assert own_cert.status_code == 401
    with client(pki, auth=BearerAuth(at)) as http:
        garbage = http.get(f"{proxy.url}/items", headers={"Client-Cert": ":bm90IGEgY2VydA==:"})
    assert garbage.status_code == 400
    assert garbage.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("method", "path", "scope", "expected"),
    [
        ("GET", "/admin", "read", 403),
        ("GET", "/admin", "read admin", 200),
        ("DELETE", "/items/7", "read", 403),
        ("GET", "/items/7", "read", 200),
        ("DELETE", "/items/7", "write", 200),
        ("POST", "/write", "read", 403),
        ("POST", "/write", "write", 200),
    ],
)
def test_route_scopes(
    serve: Serve, pki: LabPKI, method: str, path: str, scope: str, expected: int
) -> None:
    served = serve()
    auth = DPoPAuth(DPOP_KEY, clock=clock).with_token(
        token(scope=scope, jkt=jwk_thumbprint(DPOP_KEY))
    )
    with client(pki, auth=auth) as http:
        response = http.request(method, f"{served.url}{path}")
    assert response.status_code == expected, response.text
    if expected == 403:
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith("DPoP ")
        assert 'error="insufficient_scope"' in challenge
        assert response.headers["Cache-Control"] == "no-store"


def test_route_spec_parsing() -> None:
    rule = RouteScopes.parse("get, POST /a/*", ["x"])
    assert rule.methods == {"GET", "POST"}
    assert rule.scopes == {"x"}
    assert rule.matches("GET", "/a/b")
    assert not rule.matches("PUT", "/a/b")
    assert RouteScopes.parse("/b", "y").methods is None
    with pytest.raises(ValueError, match="start with '/'"):
        RouteScopes.parse("GET b", ["x"])


def test_rs_nonce_demand_answered_with_one_retry(serve: Serve, pki: LabPKI) -> None:
    served = serve(rs_options={"require_nonce": True})
    seen: list[int] = []
    auth = DPoPAuth(DPOP_KEY, clock=clock).with_token(token(jkt=jwk_thumbprint(DPOP_KEY)))
    with client(
        pki, auth=auth, event_hooks={"response": [lambda r: seen.append(r.status_code)]}
    ) as http:
        assert http.get(f"{served.url}/items").status_code == 200
        assert http.get(f"{served.url}/items").status_code == 200
    assert seen == [401, 200, 200]
    assert auth.nonces.get(f"https://127.0.0.1:{served.port}") is not None


def test_nonce_demand_headers(serve: Serve, pki: LabPKI) -> None:
    served = serve(rs_options={"require_nonce": True})
    at = token(jkt=jwk_thumbprint(DPOP_KEY))
    url = f"{served.url}/items"
    with client(pki) as http:
        response = http.get(
            url,
            headers={
                "Authorization": f"DPoP {at}",
                "DPoP": create_proof(DPOP_KEY, "GET", url, access_token=at, now=NOW),
            },
        )
    assert response.status_code == 401
    assert 'error="use_dpop_nonce"' in response.headers["WWW-Authenticate"]
    assert response.headers["DPoP-Nonce"]
    assert response.json()["error"] == "use_dpop_nonce"


def test_cors_preflight_and_exposed_headers(serve: Serve, pki: LabPKI) -> None:
    served = serve(cors_origins=["https://app.example"])
    preflight_headers = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization, dpop",
    }
    with client(pki) as http:
        preflight = http.options(f"{served.url}/items", headers=preflight_headers)
        error = http.get(f"{served.url}/items", headers={"Origin": "https://app.example"})
        other = http.get(f"{served.url}/items", headers={"Origin": "https://evil.example"})
    assert preflight.status_code == 204
    assert "DPoP" in preflight.headers["Access-Control-Allow-Headers"]
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert error.status_code == 401
    assert error.headers["Access-Control-Expose-Headers"] == "WWW-Authenticate, DPoP-Nonce"
    assert error.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Origin" not in other.headers
    auth = DPoPAuth(DPOP_KEY, clock=clock).with_token(token(jkt=jwk_thumbprint(DPOP_KEY)))
    with client(pki, auth=auth) as http:
        ok = http.get(f"{served.url}/items", headers={"Origin": "https://app.example"})
    assert ok.status_code == 200
    assert "DPoP-Nonce" in ok.headers["Access-Control-Expose-Headers"]


@pytest.mark.redis
def test_shared_redis_cache_stops_cross_instance_replay_and_fails_closed(
    serve: Serve, pki: LabPKI, redis_server: RedisServer
) -> None:
    public = "https://api.lab.invalid"  # both instances sit behind one public URL
    at = token(jkt=jwk_thumbprint(DPOP_KEY))

    def captured() -> dict[str, str]:
        return {
            "Authorization": f"DPoP {at}",
            "DPoP": create_proof(DPOP_KEY, "GET", f"{public}/items", access_token=at, now=NOW),
        }

    memory = [serve(base=public), serve(base=public)]
    with client(pki) as http:
        headers = captured()
        assert [http.get(f"{s.url}/items", headers=headers).status_code for s in memory] == [
            200,
            200,
        ]
    with RedisReplayCache.from_url(redis_server.url) as shared:
        shared.initialize()  # a fresh Redis: create its state-loss markers
        instances = [serve(base=public, rs_options={"replay_cache": shared}) for _ in range(2)]
        with client(pki) as http:
            headers = captured()
            statuses = [http.get(f"{s.url}/items", headers=headers).status_code for s in instances]
            assert statuses == [200, 401]
            redis_server.stop()
            down = http.get(f"{instances[0].url}/items", headers=captured())
            assert down.status_code == 503
            assert down.headers["Retry-After"] == "1"
            assert down.json()["error"] == "temporarily_unavailable"
            redis_server.start()
            # Restarted without its data: proofs whose window began before the loss are
            # refused (503, not 200) — the store cannot know they were not used already.
            lost = http.get(f"{instances[1].url}/items", headers=captured())
            assert lost.status_code == 503
            assert lost.json()["error"] == "temporarily_unavailable"


def test_non_http_scopes_pass_through(serve: Serve, pki: LabPKI) -> None:
    # Starlette's lifespan ran through the middleware (the server started), and a
    # middleware without any proxy/base configuration still works.
    served = serve(base=None)
    with client(pki, auth=BearerAuth(token())) as http:
        assert http.get(f"{served.url}/items").status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "allow", "expected"),
    [("/ws", False, "refused"), ("/health", False, "app"), ("/ws", True, "app")],
)
async def test_websockets_are_refused_unless_public_or_allowed(
    path: str, allow: bool, expected: str
) -> None:
    reached: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    rs = ResourceServer(issuer=AS, audience=AUD, jwks=ISSUER.jwks())
    middleware = DPoPMiddleware(
        inner, resource_server=rs, public_paths=["/health"], allow_websockets=allow
    )
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    await middleware({"type": "websocket", "path": path, "headers": []}, receive, send)
    if expected == "refused":
        assert sent == [{"type": "websocket.close", "code": 1008}]
        assert reached == []
    else:
        assert reached == [path]


def test_refusals_are_logged_without_secrets(
    serve: Serve, pki: LabPKI, caplog: pytest.LogCaptureFixture
) -> None:
    served = serve()
    at = token(jkt=jwk_thumbprint(DPOP_KEY))
    url = f"{served.url}/items"
    proof = create_proof(
        DPOP_KEY, "GET", "https://elsewhere.example/items", access_token=at, now=NOW
    )
    with caplog.at_level(logging.DEBUG), client(pki) as http:
        response = http.get(url, headers={"Authorization": f"DPoP {at}", "DPoP": proof})
    assert response.status_code == 401
    assert "refused GET /items: invalid_dpop_proof (htu)" in caplog.text
    for secret in (at, proof, at.split(".")[2], proof.split(".")[2]):
        assert secret not in caplog.text
        assert secret not in response.text


def test_lab_server_ignores_x_forwarded_for(serve: Serve, pki: LabPKI) -> None:
    """ServedApp runs uvicorn without proxy headers: a loopback client naming the
    trusted proxy in X-Forwarded-For stays an untrusted peer (issue 12's attack)."""
    served = serve(base=None, trusted_proxies=["10.0.0.5"])
    at = token(x5t=pki.clients["alice"].x5t_s256)
    headers = {
        "Client-Cert": pki.clients["alice"].client_cert_header,
        "X-Forwarded-For": "10.0.0.5",
        "X-Forwarded-Proto": "https",
    }
    with client(pki, auth=BearerAuth(at)) as http:
        response = http.get(f"{served.url}/items", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
