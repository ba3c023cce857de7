"""tokenlib.integrations.django over real HTTP: Django in its own process on 127.0.0.1, under
werkzeug's WSGI server and under uvicorn (ASGI) with uvicorn's default settings."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.integrations.examples._support import (
    DPOP_KEY,
    README_API,
    django_server,
    readme_token,
)
from tests.lab.conftest import SelfSigned
from tokenlib.dpop import create_proof
from tokenlib.jwk import jwk_thumbprint
from tokenlib.mtls import format_client_cert_header

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with django_server(tmp_path_factory.mktemp("django")) as url:
        yield url


def dpop_headers(method: str, path: str, *, scope: str = "read") -> dict[str, str]:
    at = readme_token(scope=scope, jkt=jwk_thumbprint(DPOP_KEY))
    proof = create_proof(DPOP_KEY, method, f"{README_API}{path}", access_token=at)
    return {"Authorization": f"DPoP {at}", "DPoP": proof}


def calls(url: str) -> list[str]:
    return list(httpx.get(f"{url}/calls").json()["calls"])


def test_scoped_view(site: str) -> None:
    response = httpx.get(f"{site}/plain/read", headers=dpop_headers("GET", "/plain/read"))
    assert response.status_code == 200, response.text
    assert response.json() == {"binding": "dpop", "client_id": "svc", "scopes": ["read"]}


def test_missing_token(site: str) -> None:
    response = httpx.get(f"{site}/plain/read")
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("DPoP algs=")
    assert "Bearer resource_metadata=" in challenge
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "no access token was presented",
    }


def test_insufficient_scope_get_and_head(site: str) -> None:
    before = calls(site)
    for method in ("GET", "HEAD"):
        response = httpx.request(
            method, f"{site}/plain/admin", headers=dpop_headers(method, "/plain/admin")
        )
        assert response.status_code == 403
        assert 'scope="admin"' in response.headers["www-authenticate"]
    assert calls(site) == before  # the view never ran


def test_per_method_scopes(site: str) -> None:
    path = "/plain/mixed"
    assert httpx.get(f"{site}{path}", headers=dpop_headers("GET", path)).status_code == 200
    assert httpx.head(f"{site}{path}", headers=dpop_headers("HEAD", path)).status_code == 200
    denied = httpx.post(f"{site}{path}", headers=dpop_headers("POST", path))
    assert denied.status_code == 403
    assert 'scope="write"' in denied.headers["www-authenticate"]
    allowed = httpx.post(f"{site}{path}", headers=dpop_headers("POST", path, scope="write"))
    assert allowed.status_code == 200


def test_default_is_authenticated_and_public_exempt(site: str) -> None:
    assert httpx.get(f"{site}/plain/any").status_code == 401
    ok = httpx.get(f"{site}/plain/any", headers=dpop_headers("GET", "/plain/any", scope="x"))
    assert ok.status_code == 200
    assert httpx.get(f"{site}/health").json() == {"ok": True}


def test_downgrade_and_replay(site: str) -> None:
    at = readme_token(scope="read", jkt=jwk_thumbprint(DPOP_KEY))
    downgrade = httpx.get(f"{site}/plain/read", headers={"Authorization": f"Bearer {at}"})
    assert downgrade.status_code == 401
    headers = dpop_headers("GET", "/plain/read")
    assert httpx.get(f"{site}/plain/read", headers=headers).status_code == 200
    assert httpx.get(f"{site}/plain/read", headers=headers).status_code == 401


# ------------------------------------------------------------------ trust boundary


def cert_get(url: str, cert: SelfSigned, **extra: str) -> httpx.Response:
    headers = {
        "Client-Cert": format_client_cert_header(cert.pem),
        "Authorization": f"Bearer {readme_token(scope='read', x5t=cert.thumbprint)}",
        **extra,
    }
    return httpx.get(f"{url}/plain/read", headers=headers)


def test_wsgi_spoofed_proxy_refused(
    tmp_path_factory: pytest.TempPathFactory, self_signed: SelfSigned
) -> None:
    proxies = json.dumps(["10.0.0.5"])
    with django_server(tmp_path_factory.mktemp("w1"), "--trusted-proxies", proxies) as url:
        response = cert_get(url, self_signed, **{"X-Forwarded-For": "10.0.0.5"})
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_wsgi_trusted_proxy_certificate(
    tmp_path_factory: pytest.TempPathFactory, self_signed: SelfSigned
) -> None:
    proxies = json.dumps(["127.0.0.1"])
    with django_server(tmp_path_factory.mktemp("w2"), "--trusted-proxies", proxies) as url:
        response = cert_get(url, self_signed)
        assert response.status_code == 200, response.text
        assert response.json()["binding"] == "mtls"


def test_asgi_default_uvicorn_without_wrapper_fails_closed(
    tmp_path_factory: pytest.TempPathFactory, self_signed: SelfSigned
) -> None:
    # uvicorn's defaults rewrite scope["client"] from X-Forwarded-For for loopback peers;
    # with TRUSTED_PROXIES set, the middleware refuses to guess (500), never trusts it.
    proxies = json.dumps(["10.0.0.5"])
    with django_server(
        tmp_path_factory.mktemp("a1"), "--asgi", "--trusted-proxies", proxies
    ) as url:
        response = cert_get(url, self_signed, **{"X-Forwarded-For": "10.0.0.5"})
        assert response.status_code == 500
        assert (
            httpx.get(f"{url}/plain/read", headers=dpop_headers("GET", "/plain/read")).status_code
            == 500
        )


def test_asgi_default_uvicorn_with_wrapper(
    tmp_path_factory: pytest.TempPathFactory, self_signed: SelfSigned
) -> None:
    proxies = json.dumps(["10.0.0.5"])
    args = ("--asgi", "--wrap", "--trusted-proxies", proxies)
    with django_server(tmp_path_factory.mktemp("a2"), *args) as url:
        spoofed = cert_get(url, self_signed, **{"X-Forwarded-For": "10.0.0.5"})
        assert spoofed.status_code == 500  # rewritten peer detected at the connection
        plain = cert_get(url, self_signed)  # real peer 127.0.0.1: header ignored
        assert plain.status_code == 401
        ok = httpx.get(f"{url}/plain/read", headers=dpop_headers("GET", "/plain/read"))
        assert ok.status_code == 200, ok.text


def test_asgi_without_trusted_proxies(tmp_path_factory: pytest.TempPathFactory) -> None:
    with django_server(tmp_path_factory.mktemp("a3"), "--asgi") as url:
        ok = httpx.get(f"{url}/plain/read", headers=dpop_headers("GET", "/plain/read"))
        assert ok.status_code == 200, ok.text
        drf = httpx.get(f"{url}/items", headers=dpop_headers("GET", "/items", scope="items:read"))
        assert drf.status_code == 200, drf.text
