"""tokenlib.integrations.mcp: the MCP preset (SEP-1932 DPoP profile, RFC 9728 metadata and
``resource_metadata`` challenges), over real HTTP with a Starlette app standing in for an MCP
server's streamable-HTTP endpoint (JSON-RPC over POST /mcp)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.integrations.examples._support import DPOP_KEY, uvicorn_server
from tokenlib.bearer import Issuer
from tokenlib.dpop import create_proof
from tokenlib.errors import InvalidDPoPProof
from tokenlib.integrations.asgi import get_grant
from tokenlib.integrations.mcp import (
    MCP_DPOP_POLICY,
    MCPProtection,
    add_challenge_param,
    mcp_protection,
)
from tokenlib.jwk import generate_key, jwk_thumbprint
from tokenlib.metadata import validate_protected_resource_metadata

AS = "https://auth.mcp.invalid"
RESOURCE = "https://mcp.invalid/mcp"
META = "https://mcp.invalid/.well-known/oauth-protected-resource/mcp"
ISSUER = Issuer(AS, generate_key("ES256"))


def at(*, audience: str = RESOURCE, dpop: bool = True) -> str:
    return ISSUER.issue(
        subject="user",
        client_id="mcp-client",
        audience=audience,
        scope="mcp:tools",
        jkt=jwk_thumbprint(DPOP_KEY) if dpop else None,
    )


def protection(**options: Any) -> MCPProtection:
    return mcp_protection(
        RESOURCE, issuer=AS, jwks=ISSUER.jwks(), scopes_supported=["mcp:tools"], **options
    )


# ---------------------------------------------------------------------------- unit


def test_policy_is_plus_minus_five_minutes() -> None:
    assert MCP_DPOP_POLICY.iat_past == 300
    assert MCP_DPOP_POLICY.iat_future == 300
    assert protection().resource_server.policy is MCP_DPOP_POLICY


@pytest.mark.parametrize(
    ("offset", "accepted"), [(-299, True), (299, True), (-301, False), (301, False)]
)
def test_iat_window(offset: int, accepted: bool) -> None:
    server = protection().resource_server
    now = float(int(time.time()))
    token = at()
    proof = create_proof(DPOP_KEY, "POST", RESOURCE, access_token=token, now=now + offset)
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
    if accepted:
        assert server.verify("POST", "/mcp", headers, now=now).binding == "dpop"
    else:
        with pytest.raises(InvalidDPoPProof) as info:
            server.verify("POST", "/mcp", headers, now=now)
        assert info.value.check == "iat"


def test_metadata_document() -> None:
    guard = protection()
    assert guard.metadata_url == META
    assert guard.metadata_path == "/.well-known/oauth-protected-resource/mcp"
    assert guard.metadata == {
        "resource": RESOURCE,
        "authorization_servers": [AS],
        "scopes_supported": ["mcp:tools"],
        "bearer_methods_supported": [],
        "tls_client_certificate_bound_access_tokens": False,
        "dpop_signing_alg_values_supported": list(MCP_DPOP_POLICY.algorithms),
        "dpop_bound_access_tokens_required": True,
    }
    relaxed = protection(dpop_required=False)
    assert relaxed.metadata["dpop_bound_access_tokens_required"] is False
    assert relaxed.resource_server.schemes == ("DPoP", "Bearer")
    with pytest.raises(ValueError, match="authorization server"):
        protection(authorization_servers=[])


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer", 'Bearer resource_metadata="M"'),
        ('DPoP algs="ES256 PS256"', 'DPoP algs="ES256 PS256", resource_metadata="M"'),
        (
            'DPoP error="invalid_token", error_description="a, Bearer b", algs="ES256", Bearer',
            'DPoP error="invalid_token", error_description="a, Bearer b", algs="ES256", '
            'resource_metadata="M", Bearer resource_metadata="M"',
        ),
        (
            'Bearer realm="x", error="insufficient_scope", scope="a b"',
            'Bearer realm="x", error="insufficient_scope", scope="a b", resource_metadata="M"',
        ),
        ('error="x"', 'error="x"'),  # malformed: no scheme first → unchanged
    ],
)
def test_add_challenge_param(header: str, expected: str) -> None:
    assert add_challenge_param(header, "resource_metadata", "M") == expected


# ------------------------------------------------------------------- over HTTP


async def mcp_endpoint(request: Request) -> JSONResponse:
    grant = get_grant(request)
    message = await request.json()
    return JSONResponse(
        {"jsonrpc": "2.0", "id": message["id"], "result": {"client": grant.client_id}}
    )


def app() -> Starlette:
    return Starlette(routes=[Route("/mcp", mcp_endpoint, methods=["POST"])])


RPC = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    # uvicorn with its default settings: the preset configures a public base URL and no
    # trusted proxies, so nothing depends on uvicorn's proxy-header handling.
    with uvicorn_server(protection().asgi(app())) as url:
        yield url


def call(
    url: str, *, token: str | None = None, iat_offset: float = 0, **headers: str
) -> httpx.Response:
    out = dict(headers)
    if token is not None:
        proof = create_proof(
            DPOP_KEY, "POST", RESOURCE, access_token=token, now=time.time() + iat_offset
        )
        out.update({"Authorization": f"DPoP {token}", "DPoP": proof})
    return httpx.post(f"{url}/mcp", json=RPC, headers=out)


@pytest.mark.slow
def test_metadata_served(served: str) -> None:
    response = httpx.get(f"{served}/.well-known/oauth-protected-resource/mcp")
    assert response.status_code == 200
    document = validate_protected_resource_metadata(response.json(), resource=RESOURCE)
    assert document["dpop_bound_access_tokens_required"] is True
    head = httpx.head(f"{served}/.well-known/oauth-protected-resource/mcp")
    assert head.status_code == 200
    assert head.content == b""
    post = httpx.post(f"{served}/.well-known/oauth-protected-resource/mcp")
    assert post.status_code == 405


@pytest.mark.slow
def test_unauthenticated_401_points_to_metadata(served: str) -> None:
    response = call(served)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("DPoP algs=")
    assert challenge.endswith(f'resource_metadata="{META}"')
    assert "Bearer" not in challenge


@pytest.mark.slow
def test_dpop_call_succeeds(served: str) -> None:
    response = call(served, token=at())
    assert response.status_code == 200, response.text
    assert response.json() == {"jsonrpc": "2.0", "id": 1, "result": {"client": "mcp-client"}}
    four_minutes_old = call(served, token=at(), iat_offset=-240)
    assert four_minutes_old.status_code == 200
    six_minutes_old = call(served, token=at(), iat_offset=-360)
    assert six_minutes_old.status_code == 401
    assert 'error="invalid_dpop_proof"' in six_minutes_old.headers["www-authenticate"]
    assert f'resource_metadata="{META}"' in six_minutes_old.headers["www-authenticate"]


@pytest.mark.slow
def test_token_for_another_resource_refused(served: str) -> None:
    response = call(served, token=at(audience="https://other.invalid/mcp"))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


@pytest.mark.slow
def test_bearer_refused_when_dpop_required(served: str) -> None:
    response = httpx.post(
        f"{served}/mcp", json=RPC, headers={"Authorization": f"Bearer {at(dpop=False)}"}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("DPoP ")


@pytest.mark.slow
def test_bearer_accepted_during_rollout() -> None:
    with uvicorn_server(protection(dpop_required=False).asgi(app())) as url:
        response = httpx.post(
            f"{url}/mcp", json=RPC, headers={"Authorization": f"Bearer {at(dpop=False)}"}
        )
        assert response.status_code == 200, response.text
        bare = httpx.post(f"{url}/mcp", json=RPC)
        assert bare.headers["www-authenticate"].endswith(f'Bearer resource_metadata="{META}"')


@pytest.mark.slow
def test_fastapi_security_from_the_preset() -> None:
    from fastapi import FastAPI, Security

    guard = protection()
    auth = guard.fastapi_security()
    app = FastAPI()

    async def mcp(grant: Any = Security(auth, scopes=["mcp:tools"])) -> dict[str, str]:  # noqa: B008
        return {"client": grant.client_id}

    app.add_api_route("/mcp", mcp, methods=["POST"])
    with uvicorn_server(app) as url:
        ok = call(url, token=at())
        assert ok.status_code == 200, ok.text
        assert ok.json() == {"client": "mcp-client"}
        refused = call(url)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].endswith(f'resource_metadata="{META}"')


@pytest.mark.slow
def test_required_scopes() -> None:
    with uvicorn_server(protection().asgi(app(), required_scopes=["mcp:admin"])) as url:
        response = call(url, token=at())  # the token carries mcp:tools only
        assert response.status_code == 403
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge
        assert 'scope="mcp:admin"' in challenge
        assert challenge.endswith(f'resource_metadata="{META}"')
        metadata = httpx.get(f"{url}/.well-known/oauth-protected-resource/mcp")
        assert metadata.status_code == 200
