"""tokenlib.integrations.requests over real HTTPS on loopback: DPoPMiddleware in front of a
Starlette-free app, the requests client behind — proofs per request, nonce retries (RS
and AS), mTLS with a certificate-bound token, a nonce memory shared with httpx."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests

from tests.lab.conftest import server_context
from tokenlib.bearer import Issuer
from tokenlib.dpop import verify_proof
from tokenlib.integrations import httpx as tl_httpx
from tokenlib.integrations._client import NonceStore, demands_nonce, htu, origin_of
from tokenlib.integrations.asgi import DPoPMiddleware, get_grant
from tokenlib.integrations.requests import BearerAuth, DPoPAuth, mtls_session
from tokenlib.jwk import generate_key, jwk_thumbprint
from tokenlib.lab._serve import ServedApp
from tokenlib.lab.pki import LabPKI
from tokenlib.server import ResourceServer

pytestmark = pytest.mark.slow

AS = "https://as.lab.invalid"
AUD = "https://api.lab.invalid"
ISSUER = Issuer(AS, generate_key("ES256"))
KEY = generate_key("ES256")
NOW = float(int(time.time()))


def clock() -> float:
    return NOW


async def whoami(scope: Any, receive: Any, send: Any) -> None:
    body_in = b""
    while True:
        message = await receive()
        body_in += message.get("body", b"")
        if not message.get("more_body"):
            break
    grant = get_grant(scope)
    body = json.dumps({"binding": grant.binding, "echo": body_in.decode()}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def rs_server(pki: LabPKI) -> Iterator[ServedApp]:
    rs = ResourceServer(issuer=AS, audience=AUD, jwks=ISSUER.jwks(), require_nonce=True)
    middleware = DPoPMiddleware(whoami, resource_server=rs, clock=clock)
    served = ServedApp(middleware, ssl_context=server_context(pki), lifespan="off")
    middleware.public_base_url = served.bind()
    with served:
        yield served


def plain_session(pki: LabPKI) -> requests.Session:
    """A session trusting the lab CA and nothing from the environment (requests lets
    REQUESTS_CA_BUNDLE override Session.verify)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(pki.ca_cert_file)
    return session


def token(**kw: Any) -> str:
    return ISSUER.issue(subject="svc", client_id="svc", audience=AUD, scope="read", now=NOW, **kw)


def test_dpop_with_rs_nonce_retry(rs_server: ServedApp, pki: LabPKI) -> None:
    auth = DPoPAuth(KEY, clock=clock).with_token(token(jkt=jwk_thumbprint(KEY)))
    seen: list[int] = []
    with plain_session(pki) as session:
        session.hooks["response"].append(lambda r, **_: seen.append(r.status_code))
        first = session.get(f"{rs_server.url}/items?x=1", auth=auth)
        second = session.post(f"{rs_server.url}/items", data=b"payload", auth=auth)
    assert first.status_code == 200, first.text
    assert first.json()["binding"] == "dpop"
    assert [r.status_code for r in first.history] == [401]
    assert second.status_code == 200
    assert second.json()["echo"] == "payload"
    assert second.history == []  # the remembered nonce was used straight away
    assert auth.nonce_for(rs_server.url) is not None
    assert repr(auth) == "DPoPAuth(alg='ES256', token=set)"


def test_non_rewindable_body_is_not_retried(rs_server: ServedApp, pki: LabPKI) -> None:
    auth = DPoPAuth(KEY, clock=clock).with_token(token(jkt=jwk_thumbprint(KEY)))

    def stream() -> Iterator[bytes]:
        yield b"once"

    with plain_session(pki) as session:
        refused = session.post(f"{rs_server.url}/items", data=stream(), auth=auth)
        rewound = session.post(f"{rs_server.url}/items", data=io.BytesIO(b"file"), auth=auth)
    assert refused.status_code == 401
    assert 'error="use_dpop_nonce"' in refused.headers["WWW-Authenticate"]
    assert rewound.status_code == 200  # the nonce from the refusal is now remembered


def test_file_body_rewound_for_the_retry(rs_server: ServedApp, pki: LabPKI) -> None:
    auth = DPoPAuth(KEY, clock=clock).with_token(token(jkt=jwk_thumbprint(KEY)))
    with plain_session(pki) as session:
        response = session.post(f"{rs_server.url}/items", data=io.BytesIO(b"file"), auth=auth)
    assert response.status_code == 200
    assert response.json()["echo"] == "file"
    assert len(response.history) == 1


def test_nonce_memory_shared_with_httpx(rs_server: ServedApp, pki: LabPKI) -> None:
    shared = NonceStore()
    at = token(jkt=jwk_thumbprint(KEY))
    r_auth = DPoPAuth(KEY, clock=clock, nonces=shared).with_token(at)
    h_auth = tl_httpx.DPoPAuth(KEY, clock=clock, nonces=shared).with_token(at)
    with plain_session(pki) as session:
        assert session.get(f"{rs_server.url}/a", auth=r_auth).status_code == 200
    seen: list[int] = []
    with httpx.Client(
        verify=pki.client_context(),
        event_hooks={"response": [lambda r: seen.append(r.status_code)]},
    ) as http:
        assert http.get(f"{rs_server.url}/b", auth=h_auth).status_code == 200
    assert seen == [200]  # no nonce round trip: the requests client already learned it
    assert len(shared) == 1


@pytest.mark.parametrize(("identity", "expected"), [("alice", 200), ("bob", 401), (None, 401)])
def test_mtls_session_with_certificate_bound_token(
    rs_server: ServedApp,
    pki: LabPKI,
    identity: str | None,
    expected: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", requests.certs.where())
    at = token(x5t_s256=pki.clients["alice"].x5t_s256)
    if identity is None:
        session = plain_session(pki)
        session.auth = BearerAuth(at)
    else:
        client = pki.clients[identity]
        # The environment's CA bundle (REQUESTS_CA_BUNDLE, set on CI images) must not
        # replace the session's CA: trust_env stays on here on purpose.
        session = mtls_session(
            client.cert_file, client.key_file, ca_file=pki.ca_cert_file, auth=BearerAuth(at)
        )
    with session:
        response = session.get(f"{rs_server.url}/items")
    assert response.status_code == expected
    if expected == 200:
        assert response.json()["binding"] == "mtls"
    assert repr(BearerAuth(at)) == "BearerAuth(token=set)"


class TokenEndpointScript:
    """An AS token endpoint demanding a nonce once (RFC 9449 §8: 400 use_dpop_nonce)."""

    def __init__(self) -> None:
        self.proofs: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.proofs.append(headers["dpop"])
        if len(self.proofs) == 1:
            status, body = 400, {"error": "use_dpop_nonce"}
        else:
            status, body = 200, {"access_token": "x", "token_type": "DPoP"}
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"dpop-nonce", f"n{len(self.proofs)}".encode())],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def test_token_endpoint_nonce_retry_with_a_new_proof(pki: LabPKI) -> None:
    script = TokenEndpointScript()
    with ServedApp(script, ssl_context=server_context(pki), lifespan="off") as served:
        url = f"{served.url}/token"
        response = requests.post(
            url,
            data={"grant_type": "client_credentials"},
            auth=DPoPAuth(KEY, clock=clock),
            verify=str(pki.ca_cert_file),
            timeout=10,
        )
    assert response.status_code == 200
    assert len(script.proofs) == 2
    first = verify_proof(script.proofs[0], htm="POST", htu=url, now=NOW)
    second = verify_proof(script.proofs[1], htm="POST", htu=url, nonce="n1", now=NOW)
    assert first.jti != second.jti
    assert first.nonce is None


@pytest.mark.parametrize(
    ("status", "challenges", "body", "expected"),
    [
        (401, ['DPoP error="use_dpop_nonce", error_description="x"'], None, True),
        (401, ['Bearer error="use_dpop_nonce"'], None, False),
        (401, ['Bearer realm="a", DPoP error="use_dpop_nonce"'], None, True),
        (401, ['DPoP error="invalid_token"'], None, False),
        (400, [], b'{"error": "use_dpop_nonce"}', True),
        (400, [], b'{"error": "invalid_grant"}', False),
        (400, [], b"not json", False),
        (400, [], None, False),
        (500, ['DPoP error="use_dpop_nonce"'], None, False),
    ],
)
def test_demands_nonce(
    status: int, challenges: list[str], body: bytes | None, expected: bool
) -> None:
    assert demands_nonce(status, challenges, body) is expected


def test_url_helpers() -> None:
    assert origin_of("https://API.example/x?y") == "https://api.example:443"
    assert origin_of("http://[::1]:8080/") == "http://::1:8080"
    assert htu("https://api.example/a/b?q=1#f") == "https://api.example/a/b"
    assert htu("https://api.example") == "https://api.example/"


class CookieThenNonce:
    """A resource server that demands a nonce once (RFC 9449 §9) and sets a cookie with
    that refusal; records the Cookie header of every request."""

    def __init__(self) -> None:
        self.cookies: list[str | None] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.cookies.append(headers.get("cookie"))
        first = len(self.cookies) == 1
        out = [(b"dpop-nonce", b"n1")]
        if first:
            out += [
                (b"www-authenticate", b'DPoP error="use_dpop_nonce", algs="ES256"'),
                (b"set-cookie", b"sid=abc; Path=/"),
            ]
        await send({"type": "http.response.start", "status": 401 if first else 200, "headers": out})
        await send({"type": "http.response.body", "body": b""})


def test_retry_carries_cookies_set_by_the_refusal(pki: LabPKI) -> None:
    app = CookieThenNonce()
    with ServedApp(app, ssl_context=server_context(pki), lifespan="off") as served:
        auth = DPoPAuth(KEY, clock=clock).with_token(token(jkt=jwk_thumbprint(KEY)))
        with plain_session(pki) as session:
            response = session.get(f"{served.url}/items", auth=auth)
    assert response.status_code == 200
    assert app.cookies == [None, "sid=abc"]
