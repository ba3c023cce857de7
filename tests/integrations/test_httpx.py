"""tokenlib.integrations.httpx over real HTTPS: proofs per request, nonce retries, mTLS, tokens."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from tests.lab.conftest import server_context
from tokenlib.dpop import access_token_hash, verify_proof
from tokenlib.integrations.httpx import (
    AsyncTokenClient,
    BearerAuth,
    DPoPAuth,
    NonceStore,
    TokenClient,
    TokenRequestError,
    async_mtls_client,
    fetch_token,
    mtls_client,
)
from tokenlib.jwk import generate_key, jwk_thumbprint, public_jwk
from tokenlib.lab._serve import ServedApp
from tokenlib.lab.authserver import ClientRegistration, LabAuthorizationServer
from tokenlib.lab.pki import LabPKI
from tokenlib.mtls import cert_thumbprint

pytestmark = pytest.mark.slow

KEY = generate_key("ES256")
SVC_KEY = generate_key("ES256")
NOW = float(int(time.time()))


def clock() -> float:
    return NOW


class Recorder:
    """An ASGI app that records each request and answers from a script.

    ``script`` maps a request number to (status, headers, body); default 200 ``{}``.
    ``demand`` = ("rs"|"as", n): answer use_dpop_nonce (nonce ``n<i>``) to the first
    n requests.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.mode: str | None = None
        self.demands = 0
        self.same_nonce = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body_in = b""
        while True:
            message = await receive()
            body_in += message.get("body", b"")
            if not message.get("more_body"):
                break
        tls = (scope.get("extensions") or {}).get("tls") or {}
        self.requests.append(
            {
                "method": scope["method"],
                "path": scope["path"],
                "headers": headers,
                "certs": tls.get("client_cert_chain", []),
                "form": dict(parse_qsl(body_in.decode())),
            }
        )
        index = len(self.requests)
        nonce = "nonce-fixed" if self.same_nonce else f"nonce-{index}"
        status, out, body = 200, [(b"dpop-nonce", nonce.encode())], b"{}"
        if self.mode and index <= self.demands:
            if self.mode == "rs":
                status = 401
                out.append(
                    (
                        b"www-authenticate",
                        b'DPoP error="use_dpop_nonce", error_description="x", algs="ES256"',
                    )
                )
                body = b'{"error": "use_dpop_nonce"}'
            elif self.mode == "as":
                status, body = 400, b'{"error": "use_dpop_nonce", "error_description": "x"}'
            elif self.mode == "other400":
                status, body = 400, b'{"error": "invalid_request"}'
            elif self.mode == "bearer401":
                status = 401
                out.append((b"www-authenticate", b'Bearer error="use_dpop_nonce"'))
        out.append((b"content-type", b"application/json"))
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})

    def proofs(self) -> list[str]:
        return [r["headers"].get("dpop", "") for r in self.requests]


@pytest.fixture(scope="module")
def recorder_server(pki: LabPKI) -> Iterator[tuple[Recorder, str]]:
    recorder = Recorder()
    with ServedApp(recorder, ssl_context=server_context(pki)) as served:
        yield recorder, served.url


@pytest.fixture
def recorder(recorder_server: tuple[Recorder, str]) -> tuple[Recorder, str]:
    rec, url = recorder_server
    rec.requests.clear()
    rec.mode, rec.demands, rec.same_nonce = None, 0, False
    return rec, url


def _claims(proof: str, url: str, method: str = "GET", token: str | None = None) -> Any:
    return verify_proof(proof, htm=method, htu=url, access_token=token, now=NOW)


def test_fresh_proof_per_request_with_ath(pki: LabPKI, recorder: tuple[Recorder, str]) -> None:
    rec, base = recorder
    auth = DPoPAuth(KEY, clock=clock).with_token("tok-123")
    with httpx.Client(verify=pki.client_context(), auth=auth) as http:
        for _ in range(3):
            http.get(f"{base}/r?q=1")
    proofs = [_claims(p, f"{base}/r", token="tok-123") for p in rec.proofs()]
    assert len({p.jti for p in proofs}) == 3
    assert all(
        p.ath == access_token_hash("tok-123") and p.jkt == jwk_thumbprint(KEY) for p in proofs
    )
    assert all(r["headers"]["authorization"] == "DPoP tok-123" for r in rec.requests)
    # The nonce the server sent with each answer rides on the next proof.
    assert [p.nonce for p in proofs] == [None, "nonce-1", "nonce-2"]


def test_token_endpoint_proof_has_no_ath(pki: LabPKI, recorder: tuple[Recorder, str]) -> None:
    rec, base = recorder
    with httpx.Client(verify=pki.client_context(), auth=DPoPAuth(KEY, clock=clock)) as http:
        http.post(f"{base}/token", data={"a": "b"})
    proof = _claims(rec.proofs()[0], f"{base}/token", method="POST")
    assert proof.ath is None
    assert "authorization" not in rec.requests[0]["headers"]


@pytest.mark.parametrize(
    ("mode", "demands", "same_nonce", "statuses"),
    [
        ("rs", 1, False, [401, 200]),  # RS nonce demand: one retry
        ("as", 1, False, [400, 200]),  # AS nonce demand (JSON body): one retry
        ("rs", 5, False, [401, 401]),  # keeps demanding: exactly one retry, then give up
        ("as", 5, False, [400, 400]),
        ("other400", 1, False, [400]),  # another error: no retry
        ("bearer401", 1, False, [401]),  # not a DPoP challenge: no retry
    ],
)
def test_exactly_one_retry_on_nonce_demand(
    pki: LabPKI,
    recorder: tuple[Recorder, str],
    mode: str,
    demands: int,
    same_nonce: bool,
    statuses: list[int],
) -> None:
    rec, base = recorder
    rec.mode, rec.demands, rec.same_nonce = mode, demands, same_nonce
    seen: list[int] = []
    with httpx.Client(
        verify=pki.client_context(),
        auth=DPoPAuth(KEY, clock=clock).with_token("t"),
        event_hooks={"response": [lambda r: seen.append(r.status_code)]},
    ) as http:
        final = http.post(f"{base}/x", json={"v": 1})
    assert seen == statuses  # response hooks see every response, the retry's too
    assert len(rec.requests) == len(statuses)
    assert final.status_code == statuses[-1]
    proofs = rec.proofs()
    assert len(set(proofs)) == len(proofs)  # a retry never re-sends a proof
    if len(statuses) == 2:
        assert _claims(proofs[1], f"{base}/x", "POST", "t").nonce == "nonce-1"
        assert int(rec.requests[1]["headers"]["content-length"]) == len(b'{"v":1}')


def test_no_retry_when_server_repeats_the_nonce_already_used(
    pki: LabPKI, recorder: tuple[Recorder, str]
) -> None:
    rec, base = recorder
    auth = DPoPAuth(KEY, clock=clock).with_token("t")
    with httpx.Client(verify=pki.client_context(), auth=auth) as http:
        rec.same_nonce = True
        http.get(f"{base}/warm")  # learns "nonce-fixed"
        rec.mode, rec.demands = "rs", 10
        rec.requests.clear()
        assert http.get(f"{base}/x").status_code == 401
    assert len(rec.requests) == 1


def test_nonce_store_is_per_origin_and_bounded() -> None:
    store = NonceStore(max_origins=2)
    store.put("https://a:443", "1")
    store.put("https://b:443", "2")
    assert store.get("https://a:443") == "1"  # touch a: b is now least recent
    store.put("https://c:443", "3")
    assert (store.get("https://b:443"), store.get("https://a:443"), len(store)) == (None, "1", 2)
    with pytest.raises(ValueError, match="max_origins"):
        NonceStore(max_origins=0)


def test_reprs_hold_no_secrets() -> None:
    auth = DPoPAuth(KEY).with_token("secret-token-value")
    assert "secret-token-value" not in repr(auth)
    assert "secret" not in repr(BearerAuth("secret-token-value"))


@pytest.mark.anyio
async def test_async_dpop_auth_retries_once(pki: LabPKI, recorder: tuple[Recorder, str]) -> None:
    rec, base = recorder
    rec.mode, rec.demands = "as", 1
    async with httpx.AsyncClient(
        verify=pki.client_context(), auth=DPoPAuth(KEY, clock=clock)
    ) as http:
        response = await http.post(f"{base}/token", data={"grant_type": "client_credentials"})
    assert response.status_code == 200
    assert len(rec.requests) == 2


def test_mtls_client_presents_the_certificate(pki: LabPKI, recorder: tuple[Recorder, str]) -> None:
    rec, base = recorder
    alice = pki.clients["alice"]
    with mtls_client(alice.cert_file, alice.key_file, ca_file=pki.ca_cert_file) as http:
        http.get(f"{base}/m")
    (pem,) = rec.requests[0]["certs"]
    assert cert_thumbprint(pem) == alice.x5t_s256


@pytest.mark.anyio
async def test_async_mtls_client(pki: LabPKI, recorder: tuple[Recorder, str]) -> None:
    rec, base = recorder
    bob = pki.clients["bob"]
    async with async_mtls_client(bob.cert_file, bob.key_file, ca_file=pki.ca_cert_file) as http:
        await http.get(f"{base}/m")
    assert cert_thumbprint(rec.requests[0]["certs"][0]) == bob.x5t_s256


def test_token_client_retries_with_a_fresh_client_assertion(
    pki: LabPKI, recorder: tuple[Recorder, str]
) -> None:
    rec, base = recorder
    rec.mode, rec.demands = "as", 1
    with httpx.Client(verify=pki.client_context()) as http:
        client = TokenClient(
            f"{base}/token",
            client_id="svc",
            client_key=SVC_KEY,
            dpop_key=KEY,
            http=http,
            clock=clock,
        )
        with pytest.raises(TokenRequestError, match="access_token"):  # the recorder's {} body
            client.client_credentials()
    first, second = (r["form"] for r in rec.requests)
    assert first["client_assertion"] != second["client_assertion"]  # RFC 7523 §3 jti reuse
    nonces = [_claims(p, f"{base}/token", "POST").nonce for p in rec.proofs()]
    assert nonces == [None, "nonce-1"]


# ------------------------------------------------------------------ token helpers


@pytest.fixture(scope="module")
def lab_as(pki: LabPKI) -> Iterator[LabAuthorizationServer]:
    server = LabAuthorizationServer(
        audience="https://rs.lab.invalid",
        clients=[
            ClientRegistration(
                "svc", jwks={"keys": [public_jwk(SVC_KEY)]}, scopes=frozenset({"a", "b"})
            ),
            ClientRegistration("plain", jwks={"keys": [public_jwk(SVC_KEY)]}, binding="bearer"),
            ClientRegistration(
                "alice",
                auth_method="tls_client_auth",
                subject_dn="CN=alice,O=tokenlib lab",
                binding="mtls",
            ),
        ],
        require_nonce=True,
    )
    with server.serve(ssl_context=server_context(pki)):
        yield server


def test_fetch_token_private_key_jwt_and_dpop(lab_as: LabAuthorizationServer, pki: LabPKI) -> None:
    with httpx.Client(verify=pki.client_context()) as http:
        token = fetch_token(
            lab_as.token_endpoint,
            client_id="svc",
            client_key=SVC_KEY,
            dpop_key=KEY,
            scope="a",
            http=http,
        )
    assert token.is_dpop
    assert token.scope == {"a"}
    assert token.access_token not in repr(token)


def test_token_client_rejects_an_unbound_answer_to_a_dpop_request(
    lab_as: LabAuthorizationServer, pki: LabPKI
) -> None:
    with httpx.Client(verify=pki.client_context()) as http:
        client = TokenClient(
            lab_as.token_endpoint, client_id="plain", client_key=SVC_KEY, dpop_key=KEY, http=http
        )
        with pytest.raises(TokenRequestError, match="token_type") as info:
            client.client_credentials()
    assert info.value.error == "invalid_response"


def test_token_errors_are_typed(lab_as: LabAuthorizationServer, pki: LabPKI) -> None:
    with httpx.Client(verify=pki.client_context()) as http:
        client = TokenClient(lab_as.token_endpoint, client_id="svc", client_key=SVC_KEY, http=http)
        with pytest.raises(TokenRequestError) as info:
            client.client_credentials(scope="nope")
    assert (info.value.error, info.value.status_code) == ("invalid_scope", 400)


def test_mtls_token_and_auth_for(lab_as: LabAuthorizationServer, pki: LabPKI) -> None:
    alice = pki.clients["alice"]
    with mtls_client(alice.cert_file, alice.key_file, ca_file=pki.ca_cert_file) as http:
        client = TokenClient(lab_as.token_endpoint, client_id="alice", http=http)
        token = client.client_credentials()
        assert token.token_type == "Bearer"
        assert isinstance(client.auth_for(token), BearerAuth)


@pytest.mark.anyio
async def test_async_token_client(lab_as: LabAuthorizationServer, pki: LabPKI) -> None:
    async with (
        httpx.AsyncClient(verify=pki.client_context()) as http,
        AsyncTokenClient(
            lab_as.token_endpoint, client_id="svc", client_key=SVC_KEY, dpop_key=KEY, http=http
        ) as client,
    ):
        token = await client.client_credentials(scope="b")
        auth = client.auth_for(token)
    assert token.is_dpop
    assert isinstance(auth, DPoPAuth)
    assert auth.has_token
