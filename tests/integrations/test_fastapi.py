"""tokenlib.integrations.fastapi against a real FastAPI app under uvicorn on 127.0.0.1.

uvicorn runs with its default settings unless a test says otherwise: the issue-12 spoofing
attack (X-Forwarded-For naming the trusted proxy, rewritten into scope["client"] by uvicorn)
must fail against them.
"""

# No "from __future__ import annotations": FastAPI resolves the Annotated[...] of endpoints
# defined inside functions at definition time.
import asyncio
import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Security

from tests.integrations.examples._support import (
    AS,
    AUD,
    DPOP_KEY,
    ISSUER,
    token,
    uvicorn_server,
)
from tests.lab.conftest import SelfSigned, free_port
from tokenlib.bearer import Issuer
from tokenlib.dpop import create_proof
from tokenlib.integrations.fastapi import TokenSecurity
from tokenlib.integrations.httpx import BearerAuth, DPoPAuth
from tokenlib.jwk import generate_key, jwk_thumbprint
from tokenlib.metadata import (
    protected_resource_metadata_url,
    resource_server_metadata,
    validate_protected_resource_metadata,
)
from tokenlib.mtls import format_client_cert_header
from tokenlib.server import Grant, ResourceServer

pytestmark = pytest.mark.slow

RESOURCE = "https://api.lab.invalid/api"
META_URL = protected_resource_metadata_url(RESOURCE)
EXAMPLES = Path(__file__).parent / "examples"


def build(calls: list[str], *, require_nonce: bool = False, **options: Any) -> FastAPI:
    rs = ResourceServer(issuer=AS, audience=AUD, jwks=ISSUER.jwks(), require_nonce=require_nonce)
    auth = TokenSecurity(rs, resource_metadata=META_URL, **options)
    app = FastAPI()
    auth.add_metadata_route(app, resource_server_metadata(rs, RESOURCE, authorization_servers=[AS]))

    @app.get("/items")
    async def items(grant: Annotated[Grant, Security(auth, scopes=["read"])]) -> dict[str, Any]:
        calls.append("items")
        return {
            "binding": grant.binding,
            "client_id": grant.client_id,
            "scopes": sorted(grant.scopes),
        }

    @app.api_route("/admin", methods=["GET", "HEAD"], include_in_schema=False)
    async def admin(grant: Annotated[Grant, Security(auth, scopes=["admin"])]) -> dict[str, Any]:
        calls.append("admin")
        return {"ok": True}

    # A router-level dependency and an endpoint dependency with other scopes: one
    # verification per request (a second would replay the DPoP proof).
    router = APIRouter(dependencies=[Security(auth, scopes=["read"])])

    @router.post("/write")
    async def write(grant: Annotated[Grant, Security(auth, scopes=["write"])]) -> dict[str, Any]:
        calls.append("write")
        return {"ok": grant.client_id}

    app.include_router(router)
    return app


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, list[str]]]:
    calls: list[str] = []
    with uvicorn_server(build(calls, public_base_url=None)) as url:
        yield url, calls


def dpop(scope: str = "read") -> DPoPAuth:
    return DPoPAuth(DPOP_KEY).with_token(token(scope=scope, jkt=jwk_thumbprint(DPOP_KEY)))


def test_dpop_and_bearer(served: tuple[str, list[str]]) -> None:
    url, _ = served
    # No trusted proxies, no public_base_url: htu is the socket address; uvicorn's default
    # proxy handling did not rewrite anything for these requests, so they pass.
    response = httpx.get(f"{url}/items", auth=dpop())
    assert response.status_code == 200, response.text
    assert response.json() == {"binding": "dpop", "client_id": "svc", "scopes": ["read"]}
    bearer = httpx.get(f"{url}/items", auth=BearerAuth(token()))
    assert bearer.json()["binding"] == "bearer"


def test_missing_token(served: tuple[str, list[str]]) -> None:
    url, _ = served
    response = httpx.get(f"{url}/items")
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("DPoP algs=")
    assert challenge.endswith(f'Bearer resource_metadata="{META_URL}"')
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "detail": {"error": "invalid_request", "error_description": "no access token was presented"}
    }


def test_insufficient_scope_and_head(served: tuple[str, list[str]]) -> None:
    url, calls = served
    before = list(calls)
    for method in ("GET", "HEAD"):
        response = httpx.request(method, f"{url}/admin", auth=dpop())
        assert response.status_code == 403
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('DPoP error="insufficient_scope"')
        assert 'scope="admin"' in challenge
    assert calls == before


def test_downgrade_and_replay(served: tuple[str, list[str]]) -> None:
    url, _ = served
    downgrade = httpx.get(f"{url}/items", auth=BearerAuth(token(jkt=jwk_thumbprint(DPOP_KEY))))
    assert downgrade.status_code == 401
    assert 'error="invalid_token"' in downgrade.headers["www-authenticate"]
    at = token(jkt=jwk_thumbprint(DPOP_KEY))
    headers = {
        "Authorization": f"DPoP {at}",
        "DPoP": create_proof(DPOP_KEY, "GET", f"{url}/items", access_token=at),
    }
    assert httpx.get(f"{url}/items", headers=headers).status_code == 200
    replay = httpx.get(f"{url}/items", headers=headers)
    assert replay.status_code == 401
    assert 'error="invalid_dpop_proof"' in replay.headers["www-authenticate"]


def test_router_and_endpoint_dependencies_verify_once(served: tuple[str, list[str]]) -> None:
    url, calls = served
    response = httpx.post(f"{url}/write", auth=dpop("read write"))
    assert response.status_code == 200, response.text
    assert calls[-1] == "write"
    missing = httpx.post(f"{url}/write", auth=dpop("read"))
    assert missing.status_code == 403
    assert 'scope="write"' in missing.headers["www-authenticate"]


def test_openapi_security_scheme_and_scopes() -> None:
    schema = build([]).openapi()
    assert schema["components"]["securitySchemes"]["DPoP"]["type"] == "http"
    assert schema["components"]["securitySchemes"]["DPoP"]["scheme"] == "DPoP"
    assert schema["paths"]["/items"]["get"]["security"] == [{"DPoP": ["read"]}]
    assert schema["paths"]["/write"]["post"]["security"] == [{"DPoP": ["read", "write"]}]
    assert "/.well-known/oauth-protected-resource/api" not in schema["paths"]


def test_metadata_route(served: tuple[str, list[str]]) -> None:
    url, _ = served
    response = httpx.get(f"{url}/.well-known/oauth-protected-resource/api")
    assert response.status_code == 200
    document = validate_protected_resource_metadata(response.json(), resource=RESOURCE)
    assert document["dpop_bound_access_tokens_required"] is False
    assert document["bearer_methods_supported"] == ["header"]


def test_nonce_flow() -> None:
    with uvicorn_server(build([], require_nonce=True)) as url:
        auth = dpop()
        with httpx.Client(auth=auth) as client:
            assert client.get(f"{url}/items").status_code == 200  # after one nonce retry
        first_nonce = auth.nonce_for(url)
        assert first_nonce
        at = token(jkt=jwk_thumbprint(DPOP_KEY))
        bare = httpx.get(
            f"{url}/items",
            headers={
                "Authorization": f"DPoP {at}",
                "DPoP": create_proof(DPOP_KEY, "GET", f"{url}/items", access_token=at),
            },
        )
        assert bare.status_code == 401
        assert 'error="use_dpop_nonce"' in bare.headers["www-authenticate"]
        assert bare.headers["dpop-nonce"]


# ------------------------------------------------------------------ trust boundary


def cert_get(url: str, cert: SelfSigned, **extra: str) -> httpx.Response:
    headers = {"Client-Cert": format_client_cert_header(cert.pem), **extra}
    return httpx.get(f"{url}/items", headers=headers, auth=BearerAuth(token(x5t=cert.thumbprint)))


def test_spoofed_proxy_refused_under_default_uvicorn(
    self_signed: SelfSigned, caplog: pytest.LogCaptureFixture
) -> None:
    # issue 12: stolen certificate-bound token + victim's public certificate in Client-Cert +
    # X-Forwarded-For naming the trusted proxy. uvicorn's default proxy handling rewrites
    # scope["client"] to 10.0.0.5; the dependency sees the connection is really 127.0.0.1.
    calls: list[str] = []
    app = build(calls, public_base_url="https://api.lab.invalid", trusted_proxies=["10.0.0.5"])
    with uvicorn_server(app) as url, caplog.at_level(logging.ERROR, logger="tokenlib.integrations"):
        response = cert_get(url, self_signed, **{"X-Forwarded-For": "10.0.0.5"})
        assert response.status_code == 500
        assert calls == []
        assert any("--no-proxy-headers" in r.getMessage() for r in caplog.records)
        # without the forged X-Forwarded-For the peer is 127.0.0.1: untrusted, header ignored
        assert cert_get(url, self_signed).status_code == 401


def test_forwarded_host_refused_under_default_uvicorn() -> None:
    # No public_base_url: a proof made for https://evil.example with X-Forwarded-Proto/Host.
    at = token(jkt=jwk_thumbprint(DPOP_KEY))
    proof = create_proof(DPOP_KEY, "GET", "https://evil.example/items", access_token=at)
    calls: list[str] = []
    with uvicorn_server(build(calls)) as url:
        response = httpx.get(
            f"{url}/items",
            headers={
                "Authorization": f"DPoP {at}",
                "DPoP": proof,
                "Host": "evil.example",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "evil.example",
                "X-Forwarded-For": "10.0.0.5",
            },
        )
    assert response.status_code in (401, 500)
    assert calls == []


def test_trusted_proxy_certificate_with_proxy_headers_off(self_signed: SelfSigned) -> None:
    app = build([], public_base_url="https://api.lab.invalid", trusted_proxies=["127.0.0.1"])
    with uvicorn_server(app, proxy_headers=False) as url:
        response = cert_get(url, self_signed)
        assert response.status_code == 200, response.text
        assert response.json()["binding"] == "mtls"
        wrong = httpx.get(
            f"{url}/items",
            headers={"Client-Cert": format_client_cert_header(self_signed.pem)},
            auth=BearerAuth(token(x5t="B" * 43)),
        )
        assert wrong.status_code == 401


def test_untrusted_certificate_header_ignored_with_proxy_headers_off(
    self_signed: SelfSigned,
) -> None:
    app = build([], public_base_url="https://api.lab.invalid", trusted_proxies=["10.0.0.5"])
    with uvicorn_server(app, proxy_headers=False) as url:
        response = cert_get(url, self_signed, **{"X-Forwarded-For": "10.0.0.5"})
        assert response.status_code == 401
        assert "invalid_token" in response.headers["www-authenticate"]


# ------------------------------------------------------------------ README example


def test_readme_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    issuer = Issuer("https://as.example.com", generate_key("ES256"))
    (tmp_path / "jwks.json").write_text(json.dumps(issuer.jwks()))
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location("fastapi_readme", EXAMPLES / "fastapi_readme.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    at = issuer.issue(
        subject="svc",
        client_id="svc",
        audience="https://api.example.com",
        scope="items:read",
        jkt=jwk_thumbprint(DPOP_KEY),
    )
    with uvicorn_server(module.app) as url:
        proof = create_proof(DPOP_KEY, "GET", "https://api.example.com/items", access_token=at)
        response = httpx.get(f"{url}/items", headers={"Authorization": f"DPoP {at}", "DPoP": proof})
        assert response.status_code == 200, response.text
        assert response.json() == {"client": "svc", "binding": "dpop"}
        assert httpx.get(f"{url}/items").status_code == 401
        assert module.app.openapi()["paths"]["/items"]["get"]["security"] == [
            {"DPoP": ["items:read"]}
        ]


def test_unused_depends_import_kept_honest() -> None:
    # FastAPI's Depends works too (no scopes): the same dependency object.
    rs = ResourceServer(issuer=AS, audience=AUD, jwks=ISSUER.jwks())
    auth = TokenSecurity(rs, public_base_url="https://api.lab.invalid")
    app = FastAPI()

    @app.get("/x")
    async def x(grant: Annotated[Grant, Depends(auth)]) -> str:
        return grant.client_id

    assert app.openapi()["paths"]["/x"]["get"]["security"] == [{"DPoP": []}]


# ------------------------------------------------------------- replay-store stalls


class HangingAsyncStore:
    """An async replay store that never answers (a hung Redis)."""

    async def check_and_store(
        self, key: str, *, expires_at: float, now: float, owner: str | None = None
    ) -> bool:
        await asyncio.sleep(3600)
        return True


class BlockingSyncStore:
    """A blocking replay store (a synchronous Redis client waiting on the network): it
    answers only once ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def check_and_store(
        self, key: str, *, expires_at: float, now: float, owner: str | None = None
    ) -> bool:
        self.entered.set()
        return self.release.wait(10)


def store_app(store: Any) -> FastAPI:
    rs = ResourceServer(issuer=AS, audience=AUD, jwks=ISSUER.jwks(), replay_cache=store)
    auth = TokenSecurity(rs, public_base_url="http://127.0.0.1", replay_timeout=0.3)
    app = FastAPI()

    @app.get("/items")
    async def items(grant: Annotated[Grant, Security(auth, scopes=["read"])]) -> dict[str, str]:
        return {"binding": grant.binding}

    return app


def proof_headers(path: str = "/items") -> dict[str, str]:
    at = token(jkt=jwk_thumbprint(DPOP_KEY))
    proof = create_proof(DPOP_KEY, "GET", f"http://127.0.0.1{path}", access_token=at)
    return {"Authorization": f"DPoP {at}", "DPoP": proof}


def test_hung_async_store_costs_dpop_a_503_and_bearer_nothing() -> None:
    with uvicorn_server(store_app(HangingAsyncStore())) as url:
        started = time.monotonic()
        response = httpx.get(f"{url}/items", headers=proof_headers(), timeout=10)
        assert response.status_code == 503
        assert time.monotonic() - started < 3
        assert response.headers["retry-after"] == "1"
        assert response.json()["detail"]["error"] == "temporarily_unavailable"
        bearer = httpx.get(f"{url}/items", auth=BearerAuth(token()))
        assert bearer.status_code == 200


def test_blocking_store_does_not_stall_the_event_loop() -> None:
    # If verification ran on the event loop, the bearer request below could not be
    # answered while the store blocks: it would time out instead of returning 200.
    store = BlockingSyncStore()
    with uvicorn_server(store_app(store)) as url:

        async def scenario() -> None:
            async with httpx.AsyncClient(timeout=5) as client:
                slow = asyncio.create_task(client.get(f"{url}/items", headers=proof_headers()))
                assert await asyncio.to_thread(store.entered.wait, 5)
                fast = await client.get(f"{url}/items", auth=BearerAuth(token()))
                assert fast.status_code == 200
                assert not slow.done()
                store.release.set()
                assert (await slow).status_code == 200

        asyncio.run(scenario())


def readme_blocks(marker: str) -> list[str]:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    # ```py and ```py <file name> fences (the DRF blocks name their file: tests/test_readme.py
    # imports the names of plain ```py blocks, and rest_framework.views needs Django settings).
    blocks = re.findall(r"^```py(?: [\w.]+)?\n(.*?)^```", readme, re.S | re.M)
    return [b for b in blocks if marker in b]


@pytest.mark.parametrize("block", readme_blocks("tokenlib.integrations.fastapi import"))
def test_readme_fastapi_block_is_the_tested_example(block: str) -> None:
    # README's FastAPI example must be exactly the file test_readme_example serves.
    assert block == (EXAMPLES / "fastapi_readme.py").read_text(encoding="utf-8")


def forwarded_request(url: str, htu: str, **headers: str) -> httpx.Response:
    at = token(jkt=jwk_thumbprint(DPOP_KEY))
    proof = create_proof(DPOP_KEY, "GET", htu, access_token=at)
    return httpx.get(
        f"{url}/items", headers={"Authorization": f"DPoP {at}", "DPoP": proof, **headers}
    )


def test_forwarded_host_believed_only_from_trusted_proxy() -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example, api.example"}
    trusted_app = build([], trusted_proxies=["127.0.0.1"])
    with uvicorn_server(trusted_app, proxy_headers=False) as url:
        # the rightmost value is the one the trusted proxy added
        assert forwarded_request(url, "https://api.example/items", **forwarded).status_code == 200
        evil = forwarded_request(url, "https://evil.example/items", **forwarded)
        assert evil.status_code == 401
        assert 'error="invalid_dpop_proof"' in evil.headers["www-authenticate"]
    untrusted_app = build([], trusted_proxies=["10.0.0.5"])
    with uvicorn_server(untrusted_app, proxy_headers=False) as url:
        ignored = forwarded_request(url, "https://api.example/items", **forwarded)
        assert ignored.status_code == 401  # htu is the socket address, not the header's
        assert forwarded_request(url, f"{url}/items", **forwarded).status_code == 200


# ------------------------------------------- hypercorn and granian, default settings


SERVERS = {
    "hypercorn": ["-m", "hypercorn", "--bind", "127.0.0.1:{port}"],
    "granian": ["-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", "{port}"],
}


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_spoofed_proxy_refused_under_other_servers(
    server: str, tmp_path: Path, self_signed: SelfSigned
) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(ISSUER.jwks()))
    port = free_port()
    args = [a.format(port=port) for a in SERVERS[server]]
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "TOKENLIB_TEST_JWKS": str(jwks),
        "TOKENLIB_TEST_TRUSTED": json.dumps(["10.0.0.5"]),
    }
    process = subprocess.Popen(
        [sys.executable, *args, "tests.integrations.examples.fastapi_trust_app:app"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else b""
                assert time.monotonic() < deadline, f"{server} did not start"
                time.sleep(0.1)
        spoofed = cert_get(url, self_signed, **{"X-Forwarded-For": "10.0.0.5"})
        assert spoofed.status_code == 401  # the server did not rewrite the peer: header ignored
        assert 'error="invalid_token"' in spoofed.headers["www-authenticate"]
        ok = httpx.get(f"{url}/items", auth=BearerAuth(token()))
        assert ok.status_code == 200
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=10)
