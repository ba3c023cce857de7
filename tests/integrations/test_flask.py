"""tokenlib.integrations.flask against a real Flask app under werkzeug's server on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from tests.integrations.examples._support import AS, AUD, DPOP_KEY, ISSUER, token, wsgi_server
from tests.lab.conftest import SelfSigned
from tokenlib.dpop import create_proof
from tokenlib.integrations.flask import TokenAuth, current_grant
from tokenlib.integrations.httpx import BearerAuth, DPoPAuth
from tokenlib.jwk import generate_key, jwk_thumbprint
from tokenlib.metadata import (
    protected_resource_metadata_url,
    resource_server_metadata,
    validate_protected_resource_metadata,
)
from tokenlib.mtls import format_client_cert_header
from tokenlib.replay import MemoryReplayCache
from tokenlib.server import ResourceServer

pytestmark = pytest.mark.slow

RESOURCE = "https://api.lab.invalid"
META_URL = protected_resource_metadata_url(RESOURCE)


@dataclass
class Served:
    url: str
    calls: list[str] = field(default_factory=list)


def build(url: str, calls: list[str], *, proxy_fix: bool = False, **options: Any) -> Flask:
    require_nonce = options.pop("require_nonce", False)
    replay_cache = options.pop("replay_cache", None)
    rs = ResourceServer(
        issuer=AS,
        audience=AUD,
        jwks=ISSUER.jwks(),
        require_nonce=require_nonce,
        replay_cache=replay_cache,
    )
    app = Flask("flask_test")
    auth = TokenAuth(
        app, resource_server=rs, public_base_url=url, resource_metadata=META_URL, **options
    )
    auth.add_metadata_route(
        app,
        resource_server_metadata(rs, RESOURCE, authorization_servers=[AS], certificate_bound=True),
    )

    @app.get("/items")
    @auth.require("read")
    def items() -> dict[str, Any]:
        grant = current_grant()
        calls.append("items")
        return {
            "binding": grant.binding,
            "client_id": grant.client_id,
            "scopes": sorted(grant.scopes),
        }

    @app.get("/admin")
    @auth.require("admin")
    def admin() -> dict[str, Any]:
        calls.append("admin")
        return {"ok": True}

    @app.get("/items/<item_id>")
    @auth.require("read")
    def item(item_id: str) -> dict[str, Any]:
        calls.append("item")
        return {"id": item_id}

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True}

    if proxy_fix:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_host=1, x_proto=1)  # type: ignore[method-assign]
    return app


@pytest.fixture
def served() -> Iterator[Served]:
    with wsgi_server() as (url, set_app):
        state = Served(url)
        set_app(build(url, state.calls))
        yield state


def test_dpop_request_succeeds(served: Served) -> None:
    auth = DPoPAuth(DPOP_KEY).with_token(token(jkt=jwk_thumbprint(DPOP_KEY)))
    response = httpx.get(f"{served.url}/items", auth=auth)
    assert response.status_code == 200, response.text
    assert response.json() == {"binding": "dpop", "client_id": "svc", "scopes": ["read"]}


def test_bearer_request_succeeds(served: Served) -> None:
    response = httpx.get(f"{served.url}/items", auth=BearerAuth(token()))
    assert response.status_code == 200
    assert response.json()["binding"] == "bearer"


def test_missing_token_is_401_with_challenges_and_resource_metadata(served: Served) -> None:
    response = httpx.get(f"{served.url}/items")
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("DPoP algs=")
    assert f'resource_metadata="{META_URL}"' in challenge
    assert ", Bearer resource_metadata=" in challenge
    assert "error=" not in challenge  # RFC 6750 §3.1: no error code without credentials
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["error"] == "invalid_request"
    assert served.calls == []


def test_downgrade_refused(served: Served) -> None:
    # RFC 9449 §7.2: a DPoP-bound token presented as Bearer.
    response = httpx.get(
        f"{served.url}/items", auth=BearerAuth(token(jkt=jwk_thumbprint(DPOP_KEY)))
    )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert served.calls == []


def test_insufficient_scope_is_403_with_scope(served: Served) -> None:
    auth = DPoPAuth(DPOP_KEY).with_token(token(jkt=jwk_thumbprint(DPOP_KEY)))
    response = httpx.get(f"{served.url}/admin", auth=auth)
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('DPoP error="insufficient_scope"')
    assert 'scope="admin"' in challenge
    assert served.calls == []


def test_head_needs_what_get_needs(served: Served) -> None:
    auth = DPoPAuth(DPOP_KEY).with_token(token(jkt=jwk_thumbprint(DPOP_KEY)))
    response = httpx.head(f"{served.url}/admin", auth=auth)
    assert response.status_code == 403
    assert served.calls == []  # the GET view did not run
    ok = httpx.head(f"{served.url}/items", auth=auth)
    assert ok.status_code == 200
    assert served.calls == ["items"]


def test_replayed_proof_refused(served: Served) -> None:
    at = token(jkt=jwk_thumbprint(DPOP_KEY))
    proof = create_proof(DPOP_KEY, "GET", f"{served.url}/items", access_token=at)
    headers = {"Authorization": f"DPoP {at}", "DPoP": proof}
    assert httpx.get(f"{served.url}/items", headers=headers).status_code == 200
    again = httpx.get(f"{served.url}/items", headers=headers)
    assert again.status_code == 401
    assert 'error="invalid_dpop_proof"' in again.headers["www-authenticate"]


def test_host_header_does_not_decide_htu(served: Served) -> None:
    # A proof the victim made for evil.example, replayed here with a matching Host.
    at = token(jkt=jwk_thumbprint(DPOP_KEY))
    proof = create_proof(DPOP_KEY, "GET", "http://evil.example/items", access_token=at)
    headers = {
        "Authorization": f"DPoP {at}",
        "DPoP": proof,
        "Host": "evil.example",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "http",
    }
    response = httpx.get(f"{served.url}/items", headers=headers)
    assert response.status_code == 401
    assert served.calls == []


def test_nonce_flow_with_retry() -> None:
    with wsgi_server() as (url, set_app):
        calls: list[str] = []
        set_app(build(url, calls, require_nonce=True))
        auth = DPoPAuth(DPOP_KEY).with_token(token(jkt=jwk_thumbprint(DPOP_KEY)))
        with httpx.Client(auth=auth) as client:
            first = client.get(f"{url}/items")  # 401 use_dpop_nonce, retried by DPoPAuth
        assert first.status_code == 200
        assert first.history == [] or first.history[0].status_code == 401
        assert auth.nonce_for(url) is not None
        bare = httpx.get(
            f"{url}/items",
            headers={
                "Authorization": f"DPoP {token(jkt=jwk_thumbprint(DPOP_KEY))}",
                "DPoP": create_proof(
                    DPOP_KEY,
                    "GET",
                    f"{url}/items",
                    access_token=token(jkt=jwk_thumbprint(DPOP_KEY)),
                ),
            },
        )
        assert bare.status_code == 401
        assert "use_dpop_nonce" in bare.headers["www-authenticate"]
        assert bare.headers["dpop-nonce"]


def test_metadata_route(served: Served) -> None:
    response = httpx.get(f"{served.url}/.well-known/oauth-protected-resource")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = validate_protected_resource_metadata(response.json(), resource=RESOURCE)
    assert document["dpop_signing_alg_values_supported"]
    assert document["tls_client_certificate_bound_access_tokens"] is True
    assert document["authorization_servers"] == [AS]


# ------------------------------------------------------------------ trust boundary


def cert_request(url: str, pem: str, thumbprint: str, **extra: str) -> httpx.Response:
    headers = {"Client-Cert": format_client_cert_header(pem), **extra}
    return httpx.get(f"{url}/items", headers=headers, auth=BearerAuth(token(x5t=thumbprint)))


@pytest.mark.parametrize("proxy_fix", [False, True])
def test_forwarded_certificate_from_untrusted_peer_ignored(
    self_signed: SelfSigned, proxy_fix: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # The issue-12 attack: a stolen certificate-bound token + the victim's public certificate
    # in Client-Cert + X-Forwarded-For naming the trusted proxy. With werkzeug's ProxyFix the
    # app's REMOTE_ADDR becomes 10.0.0.5; the guard still sees the transport peer 127.0.0.1.
    with wsgi_server() as (url, set_app):
        calls: list[str] = []
        set_app(build(url, calls, proxy_fix=proxy_fix, trusted_proxies=["10.0.0.5"]))
        with caplog.at_level(logging.WARNING, logger="tokenlib.integrations"):
            response = cert_request(
                url, self_signed.pem, self_signed.thumbprint, **{"X-Forwarded-For": "10.0.0.5"}
            )
        assert response.status_code == 401
        assert calls == []
        assert any("untrusted peer 127.0.0.1" in r.getMessage() for r in caplog.records)
        # a client repeating the header cannot flood the log: one warning per minute
        with caplog.at_level(logging.WARNING, logger="tokenlib.integrations"):
            for _ in range(20):
                cert_request(url, self_signed.pem, self_signed.thumbprint)
        warnings = [r for r in caplog.records if "untrusted peer" in r.getMessage()]
        assert len(warnings) == 1


def test_forwarded_certificate_from_trusted_peer_used(self_signed: SelfSigned) -> None:
    with wsgi_server() as (url, set_app):
        calls: list[str] = []
        set_app(build(url, calls, trusted_proxies=["127.0.0.1"]))
        response = cert_request(url, self_signed.pem, self_signed.thumbprint)
        assert response.status_code == 200, response.text
        assert response.json()["binding"] == "mtls"
        other = cert_request(url, self_signed.pem, "A" * 43)  # bound to another certificate
        assert other.status_code == 401


def test_vendor_certificate_source(self_signed: SelfSigned) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    der = x509.load_pem_x509_certificate(self_signed.pem.encode()).public_bytes(Encoding.DER)
    import base64

    with wsgi_server() as (url, set_app):
        set_app(build(url, [], trusted_proxies=["127.0.0.1"], client_cert_source="traefik"))
        headers = {"X-Forwarded-Tls-Client-Cert": base64.b64encode(der).decode()}
        ok = httpx.get(
            f"{url}/items", headers=headers, auth=BearerAuth(token(x5t=self_signed.thumbprint))
        )
        assert ok.status_code == 200, ok.text
        bad = httpx.get(
            f"{url}/items",
            headers={"X-Forwarded-Tls-Client-Cert": "%%%not-base64"},
            auth=BearerAuth(token(x5t=self_signed.thumbprint)),
        )
        assert bad.status_code == 400
        assert bad.json()["error"] == "invalid_request"


def test_log_line_cannot_be_forged(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tokenlib.integrations"):
        response = httpx.get(f"{served.url}/items/x%0Aforged%20entry")
    assert response.status_code == 401
    messages = [r.getMessage() for r in caplog.records if r.name == "tokenlib.integrations"]
    assert any("/items/x\\nforged entry" in m for m in messages), messages
    assert all("\n" not in m for m in messages)


def test_public_base_url_required() -> None:
    rs = ResourceServer(issuer=AS, audience=AUD, jwks=ISSUER.jwks())
    with pytest.raises(ValueError, match="public_base_url"):
        TokenAuth(Flask("x"), resource_server=rs)
    with pytest.raises(ValueError, match="trusted_proxies"):
        TokenAuth(
            Flask("x"),
            resource_server=rs,
            public_base_url="https://a.example",
            trusted_proxies=["*"],
        )
    with pytest.raises(ValueError, match="client_cert_source"):
        TokenAuth(
            Flask("x"),
            resource_server=rs,
            public_base_url="https://a.example",
            client_cert_source="nope",
        )


def test_current_grant_outside_protected_view() -> None:
    app = Flask("x")
    with app.test_request_context("/"), pytest.raises(RuntimeError, match=r"auth\.require"):
        current_grant()


def test_replay_quota_is_429_with_retry_after() -> None:
    # One key filling the shared replay store is refused alone (core quota), and the
    # integration passes the 429 and Retry-After through.
    with wsgi_server() as (url, set_app):
        set_app(build(url, [], replay_cache=MemoryReplayCache(max_per_owner=3)))
        statuses = []
        for _ in range(5):
            response = httpx.get(
                f"{url}/items",
                auth=DPoPAuth(DPOP_KEY).with_token(token(jkt=jwk_thumbprint(DPOP_KEY))),
            )
            statuses.append(response.status_code)
        assert statuses == [200, 200, 200, 429, 429]
        assert int(response.headers["retry-after"]) >= 1
        other = generate_key("ES256")
        fine = httpx.get(
            f"{url}/items", auth=DPoPAuth(other).with_token(token(jkt=jwk_thumbprint(other)))
        )
        assert fine.status_code == 200


def test_hash_only_forwarded_certificate(self_signed: SelfSigned) -> None:
    # Envoy XFCC with only Hash= (hex SHA-256 of the DER): the x5t#S256 is compared.
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    der = x509.load_pem_x509_certificate(self_signed.pem.encode()).public_bytes(Encoding.DER)
    xfcc = f'By=spiffe://mesh/ns/api/sa/api;Hash={hashlib.sha256(der).hexdigest()};Subject="CN=x"'
    with wsgi_server() as (url, set_app):
        set_app(build(url, [], trusted_proxies=["127.0.0.1"], client_cert_source="envoy_xfcc"))
        headers = {"x-forwarded-client-cert": xfcc}
        ok = httpx.get(
            f"{url}/items", headers=headers, auth=BearerAuth(token(x5t=self_signed.thumbprint))
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["binding"] == "mtls"
        wrong = httpx.get(f"{url}/items", headers=headers, auth=BearerAuth(token(x5t="C" * 43)))
        assert wrong.status_code == 401


def test_public_base_url_configured_twice_must_agree() -> None:
    rs = ResourceServer(
        issuer=AS, audience=AUD, jwks=ISSUER.jwks(), public_base_url="https://a.example"
    )
    TokenAuth(Flask("x"), resource_server=rs)  # taken from the ResourceServer
    TokenAuth(Flask("y"), resource_server=rs, public_base_url="https://A.example/")
    with pytest.raises(ValueError, match="differs"):
        TokenAuth(Flask("z"), resource_server=rs, public_base_url="https://b.example")
