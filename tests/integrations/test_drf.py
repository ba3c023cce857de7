"""tokenlib.integrations.drf over real HTTP: the README's DRF example (settings and view, run
verbatim from tests/integrations/examples/drf_readme_*.py) in a Django process on 127.0.0.1."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integrations.examples._support import (
    DPOP_KEY,
    README_API,
    django_server,
    readme_token,
)
from tokenlib.dpop import create_proof
from tokenlib.jwk import generate_key, jwk_thumbprint

pytestmark = pytest.mark.slow

META = f"{README_API}/.well-known/oauth-protected-resource"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with django_server(tmp_path_factory.mktemp("drf")) as url:
        yield url


def dpop_headers(
    method: str, path: str, *, scope: str = "items:read", nonce: str | None = None
) -> dict[str, str]:
    at = readme_token(scope=scope, jkt=jwk_thumbprint(DPOP_KEY))
    proof = create_proof(DPOP_KEY, method, f"{README_API}{path}", access_token=at, nonce=nonce)
    return {"Authorization": f"DPoP {at}", "DPoP": proof}


def test_readme_view_with_dpop(site: str) -> None:
    response = httpx.get(f"{site}/items", headers=dpop_headers("GET", "/items"))
    assert response.status_code == 200, response.text
    assert response.json() == {"client": "svc", "binding": "dpop"}


def test_readme_view_with_bearer(site: str) -> None:
    response = httpx.get(f"{site}/items", headers={"Authorization": f"Bearer {readme_token()}"})
    assert response.status_code == 200
    assert response.json()["binding"] == "bearer"


def test_no_credentials_is_401_with_challenge_not_403(site: str) -> None:
    response = httpx.get(f"{site}/items")
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("DPoP algs=")
    assert f'Bearer resource_metadata="{META}"' in challenge
    assert "error=" not in challenge
    assert response.json()["error"] == "invalid_request"


def test_no_credentials_on_view_without_scopes(site: str) -> None:
    # /profile declares no scopes: authenticate() returns None, IsAuthenticated refuses,
    # and authenticate_header still makes it a 401 with the server's challenges.
    response = httpx.get(f"{site}/profile")
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("DPoP algs=")
    assert f'Bearer resource_metadata="{META}"' in challenge
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "no access token was presented",
    }
    ok = httpx.get(f"{site}/profile", headers=dpop_headers("GET", "/profile", scope="any"))
    assert ok.json() == {"user": "alice"}


def test_no_credentials_on_view_with_permission_classes(site: str) -> None:
    # /orders has required_scopes: never runs without a token, 401 with the challenge.
    response = httpx.get(f"{site}/orders")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("DPoP algs=")
    # /open allows anyone: no token → the view runs unauthenticated
    assert httpx.get(f"{site}/open").json() == {"auth": False}
    opened = httpx.get(f"{site}/open", headers=dpop_headers("GET", "/open", scope="x"))
    assert opened.json() == {"auth": True}


def test_insufficient_scope_is_403_with_challenge(site: str) -> None:
    response = httpx.get(f"{site}/items", headers=dpop_headers("GET", "/items", scope="other"))
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('DPoP error="insufficient_scope"')
    assert 'scope="items:read"' in challenge
    assert response.json()["error"] == "insufficient_scope"
    assert response.headers["cache-control"] == "no-store"


def test_invalid_and_downgraded_tokens(site: str) -> None:
    bad = httpx.get(f"{site}/items", headers={"Authorization": "Bearer not.a.token"})
    assert bad.status_code == 401
    assert 'Bearer error="invalid_token"' in bad.headers["www-authenticate"]
    at = readme_token(jkt=jwk_thumbprint(DPOP_KEY))
    downgrade = httpx.get(f"{site}/items", headers={"Authorization": f"Bearer {at}"})
    assert downgrade.status_code == 401
    assert 'error="invalid_token"' in downgrade.headers["www-authenticate"]


def test_proof_for_other_key_and_replay(site: str) -> None:
    headers = dpop_headers("GET", "/items")
    other = create_proof(
        generate_key("ES256"),
        "GET",
        f"{README_API}/items",
        access_token=headers["Authorization"][5:],
    )
    wrong_key = httpx.get(f"{site}/items", headers={**headers, "DPoP": other})
    assert wrong_key.status_code == 401
    assert httpx.get(f"{site}/items", headers=headers).status_code == 200
    replay = httpx.get(f"{site}/items", headers=headers)
    assert replay.status_code == 401
    assert 'error="invalid_dpop_proof"' in replay.headers["www-authenticate"]


def test_proof_for_another_url_refused(site: str) -> None:
    headers = dpop_headers("GET", "/other")
    response = httpx.get(f"{site}/items", headers={**headers, "Host": "evil.example"})
    assert response.status_code == 401


def test_per_method_scopes_and_head(site: str) -> None:
    read = httpx.get(f"{site}/orders", headers=dpop_headers("GET", "/orders", scope="read"))
    assert read.status_code == 200, read.text
    assert read.json() == {"client": "svc", "user": "alice"}
    head = httpx.head(f"{site}/orders", headers=dpop_headers("HEAD", "/orders", scope="read"))
    assert head.status_code == 200
    head_denied = httpx.head(f"{site}/orders", headers=dpop_headers("HEAD", "/orders", scope="x"))
    assert head_denied.status_code == 403
    post = httpx.post(f"{site}/orders", headers=dpop_headers("POST", "/orders", scope="read"))
    assert post.status_code == 403
    assert 'scope="write"' in post.headers["www-authenticate"]
    created = httpx.post(f"{site}/orders", headers=dpop_headers("POST", "/orders", scope="write"))
    assert created.status_code == 201


def test_nonce_flow(tmp_path: Path) -> None:
    with django_server(tmp_path, "--require-nonce") as url:
        first = httpx.get(f"{url}/items", headers=dpop_headers("GET", "/items"))
        assert first.status_code == 401
        assert 'error="use_dpop_nonce"' in first.headers["www-authenticate"]
        nonce = first.headers["dpop-nonce"]
        second = httpx.get(f"{url}/items", headers=dpop_headers("GET", "/items", nonce=nonce))
        assert second.status_code == 200, second.text
        # no credentials: the challenge comes with a nonce too (exception_handler)
        for path in ("/items", "/profile"):
            bare = httpx.get(f"{url}{path}")
            assert bare.status_code == 401
            assert bare.headers["dpop-nonce"]


EXAMPLES = Path(__file__).parent / "examples"


def readme_blocks(*markers: str) -> list[str]:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    # ```py and ```py <file name> fences (the DRF blocks name their file: tests/test_readme.py
    # imports the names of plain ```py blocks, and rest_framework.views needs Django settings).
    blocks = re.findall(r"^```py(?: [\w.]+)?\n(.*?)^```", readme, re.S | re.M)
    return [b for b in blocks if any(m in b for m in markers)]


@pytest.mark.parametrize(
    "block", readme_blocks("tokenlib.integrations.drf", "class Items(APIView)")
)
def test_readme_drf_blocks_are_the_tested_examples(block: str) -> None:
    # README's DRF example (settings.py and views.py blocks) must be exactly the files
    # the Django process above serves.
    examples = {
        (EXAMPLES / name).read_text(encoding="utf-8")
        for name in ("drf_readme_settings.py", "drf_readme_views.py")
    }
    assert block in examples
